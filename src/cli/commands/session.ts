// mvm session ls|attach|wait|kill|stdin|rm: commands running in a VM, background ones above all
// (started with mvm exec -d or the library's spawn), found again by their id.

import { connect } from "../../client/client.js";
import { signalNumber } from "../signals.js";
import { formatTable } from "../table.js";
import { printJson, removeEach } from "../output.js";

type Json = { json?: boolean };

export async function sessionLsCommand(vm: string, flags: Json): Promise<number> {
  const sessions = await (await connect()).sessions(vm);
  if (flags.json) printJson(sessions);
  else {
    const status = (s: (typeof sessions)[number]) => (s.state === "running" ? "running" : s.result ? `exited ${s.result.status}` : `failed: ${s.error?.error}`);
    const rows = [["ID", "PID", "STATE", "STARTED", "COMMAND"], ...sessions.map((s) => [s.id, String(s.pid ?? "-"), status(s), s.startedAt, s.argv.join(" ")])];
    process.stdout.write(formatTable(rows));
  }
  return 0;
}

/** Prints the command's output from what was kept, follows it to its end, and exits with its status. */
export async function sessionAttachCommand(vm: string, id: string, flags: Json): Promise<number> {
  const cmd = (await connect()).command(vm, id);
  const kept: Record<"stdout" | "stderr", Buffer[]> = { stdout: [], stderr: [] };
  for await (const c of cmd.output()) {
    if (flags.json) kept[c.stream].push(c.data);
    else (c.stream === "stdout" ? process.stdout : process.stderr).write(c.data);
  }
  const r = await cmd.wait();
  if (flags.json) printJson({ ...r, stdout: Buffer.concat(kept.stdout).toString(), stderr: Buffer.concat(kept.stderr).toString() });
  return r.status;
}

export async function sessionWaitCommand(vm: string, id: string, flags: Json): Promise<number> {
  const r = await (await connect()).command(vm, id).wait();
  if (flags.json) printJson(r);
  else process.stdout.write(`${r.status}\n`);
  return 0;
}

export async function sessionKillCommand(vm: string, id: string, flags: { signal: string; json?: boolean }): Promise<number> {
  const signal = signalNumber(flags.signal);
  await (await connect()).command(vm, id).kill(signal);
  if (flags.json) printJson({ vm, id, signal });
  return 0;
}

/** Our stdin to the command's stdin; the command's stdin is closed at our end-of-file unless --keep-open. */
export async function sessionStdinCommand(vm: string, id: string, flags: { keepOpen?: boolean; json?: boolean }): Promise<number> {
  const cmd = (await connect()).command(vm, id);
  let bytes = 0;
  process.stdin.on("data", (b: Buffer) => (bytes += b.length));
  await cmd.write(process.stdin);
  if (!flags.keepOpen) await cmd.closeStdin();
  if (flags.json) printJson({ vm, id, bytes, closed: !flags.keepOpen });
  return 0;
}

export async function sessionRmCommand(vm: string, ids: string[], flags: Json): Promise<number> {
  const client = await connect();
  return removeEach(ids, (id) => client.command(vm, id).remove(), flags.json);
}
