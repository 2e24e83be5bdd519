// `mvm exec NAME -- CMD`: a command in a running VM, stdout and stderr apart, its status as ours.

import { readFileSync } from "node:fs";
import { connect } from "../../client/client.js";
import { MvmError } from "../../errors.js";
import { printJson } from "../output.js";

export interface ExecFlags {
  interactive?: boolean;
  env: string[];
  workdir?: string;
  user?: string;
  json?: boolean;
}

export async function execCommand(ref: string, argv: string[], flags: ExecFlags): Promise<number> {
  if (argv.length === 0) throw new MvmError("exec needs a command", { hint: `mvm exec ${ref} -- uname -a` });
  const env: Record<string, string> = {};
  for (const e of flags.env) {
    const eq = e.indexOf("=");
    if (eq <= 0) throw new MvmError(`invalid environment entry ${JSON.stringify(e)}`, { hint: "write -e NAME=VALUE" });
    env[e.slice(0, eq)] = e.slice(eq + 1);
  }
  const client = await connect();
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  const ac = new AbortController();
  // Ctrl-C goes to the command as SIGINT; a second one gives up on it (disconnecting kills it).
  let control: { signal: (signo: number) => Promise<void> } | undefined;
  let interrupts = 0;
  const onSigint = () => {
    if (++interrupts === 1 && control) void control.signal(2).catch(() => undefined);
    else ac.abort();
  };
  process.on("SIGINT", onSigint);
  try {
    const r = await client.exec(ref, argv, {
      env,
      cwd: flags.workdir,
      user: flags.user,
      input: flags.interactive ? readFileSync(0) : undefined,
      onStdout: (b) => (flags.json ? out.push(b) : process.stdout.write(b)),
      onStderr: (b) => (flags.json ? err.push(b) : process.stderr.write(b)),
      signal: ac.signal,
      onSession: (c) => (control = c),
    });
    if (flags.json) printJson({ ...r, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() });
    else if (r.message) process.stderr.write(`mvm: ${r.message}\n`);
    return r.status;
  } catch (e) {
    if (ac.signal.aborted) return 130;
    throw e;
  } finally {
    process.off("SIGINT", onSigint);
  }
}
