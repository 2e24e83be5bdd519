// A daemon in a child process, for the restart tests (harness.ts childDaemon): the process tier's VmManager
// on the home in argv[2], doing the call each stdin line names ({"id":1,"op":"start","args":["a"]}) and
// answering it on stdout, until the test kills it with SIGKILL, as a daemon killed with -9. Its QEMUs run
// in their own sessions and outlive it, as a real daemon's do.

import { createInterface } from "node:readline";
import { managerFor, type ManagerKnobs } from "./harness.js";

const { manager } = managerFor(process.argv[2]!, JSON.parse(process.argv[3] ?? "{}") as ManagerKnobs);
const reply = (msg: unknown) => process.stdout.write(`${JSON.stringify(msg)}\n`);

createInterface({ input: process.stdin }).on("line", (line) => {
  const { id, op, args } = JSON.parse(line) as { id: number; op: string; args: unknown[] };
  const method = (manager as unknown as Record<string, (...a: unknown[]) => unknown>)[op];
  Promise.resolve()
    .then(() => method!.apply(manager, args))
    .then(
      (ok) => reply({ id, ok: ok ?? null }),
      (e: unknown) => reply({ id, error: e instanceof Error ? e.message : String(e) }),
    );
});
process.stdout.write("ready\n");
