// start, stop, kill, pause, resume, suspend, rm, prune, wait: one VM or several, each reported on its own line.

import { connect } from "../../client/client.js";
import { printJson, removeEach } from "../output.js";

type Op = "start" | "stop" | "kill" | "pause" | "resume" | "suspend";

/** Runs the operation on each VM in turn; the first failure stops the rest and is reported. */
export async function lifecycleCommand(op: Op, refs: string[], flags: { json?: boolean }): Promise<number> {
  const client = await connect();
  const results = [];
  for (const ref of refs) {
    const vm = await client[op](ref);
    results.push(vm);
    if (!flags.json) process.stdout.write(`${vm.name}\n`);
  }
  if (flags.json) printJson(results);
  return 0;
}

export async function removeCommand(refs: string[], flags: { force?: boolean; json?: boolean }): Promise<number> {
  const client = await connect();
  return removeEach(refs, (ref) => client.remove(ref, { force: flags.force }), flags.json);
}

export async function pruneCommand(flags: { json?: boolean }): Promise<number> {
  const client = await connect();
  const { removed } = await client.prune();
  if (flags.json) printJson({ removed });
  else for (const name of removed) process.stdout.write(`${name}\n`);
  return 0;
}

export async function waitCommand(ref: string, flags: { json?: boolean }): Promise<number> {
  const client = await connect();
  const exit = await client.wait(ref);
  const status = exit.commandExit?.status ?? 0;
  if (flags.json) printJson(exit);
  else process.stdout.write(`${status}\n`);
  return 0;
}
