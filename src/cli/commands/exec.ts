// `mvm exec NAME -- CMD`: a command in a running VM, stdout and stderr apart, its status as ours.

import { connect, type MvmClient } from "../../client/client.js";
import { InvalidArgumentError } from "../../errors.js";
import { printJson } from "../output.js";

export interface ExecFlags {
  interactive?: boolean;
  tty?: boolean;
  detach?: boolean;
  timeout?: string;
  env: string[];
  workdir?: string;
  user?: string;
  json?: boolean;
}

export async function execCommand(ref: string, argv: string[], flags: ExecFlags): Promise<number> {
  if (argv.length === 0) throw new InvalidArgumentError("exec needs a command", { hint: `mvm exec ${ref} -- uname -a` });
  const env: Record<string, string> = {};
  for (const e of flags.env) {
    const eq = e.indexOf("=");
    if (eq <= 0) throw new InvalidArgumentError(`invalid environment entry ${JSON.stringify(e)}`, { hint: "write -e NAME=VALUE" });
    env[e.slice(0, eq)] = e.slice(eq + 1);
  }
  const timeoutMs = flags.timeout === undefined ? undefined : parseDuration(flags.timeout);
  if (flags.detach && (flags.interactive || flags.tty)) throw new InvalidArgumentError("-d cannot be used with -i or -t", { hint: "a detached command takes stdin with mvm session stdin" });
  const client = await connect();
  if (flags.detach) {
    const cmd = await client.spawn(ref, argv, { env, cwd: flags.workdir, user: flags.user, timeoutMs });
    if (flags.json) printJson(await cmd.info());
    else process.stdout.write(`${cmd.id}\n`);
    return 0;
  }
  if (flags.interactive || flags.tty) return execInteractive(client, ref, argv, { env, cwd: flags.workdir, user: flags.user, timeoutMs, tty: flags.tty });
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
      timeoutMs,
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

/** "1500" (ms), "30s", "2m". */
export function parseDuration(text: string): number {
  const m = /^(\d+)(ms|s|m)?$/.exec(text.trim());
  if (!m || Number(m[1]) <= 0) throw new InvalidArgumentError(`invalid timeout ${JSON.stringify(text)}`, { hint: "write milliseconds or with a unit: 1500, 30s, 2m" });
  return Number(m[1]) * (m[2] === "s" ? 1000 : m[2] === "m" ? 60000 : 1);
}

/**
 * -i: stdin streams to the command as it comes; Ctrl-C is SIGINT for it, a second one gives up.
 * -t: the command gets a pseudo-terminal of our terminal's size, kept in step when the window changes;
 * our terminal goes raw, so keys (Ctrl-C included) reach the guest's terminal as typed.
 */
export async function execInteractive(
  client: MvmClient,
  ref: string,
  argv: string[],
  o: { env?: Record<string, string>; cwd?: string; user?: string; timeoutMs?: number; tty?: boolean },
): Promise<number> {
  const size = () => ({ rows: process.stdout.rows || 24, cols: process.stdout.columns || 80 });
  const env = o.tty && process.env.TERM ? { TERM: process.env.TERM, ...o.env } : o.env;
  const stream = await client.execStream(ref, argv, {
    ...o,
    env,
    tty: o.tty ? size() : undefined,
    onStdout: (b) => process.stdout.write(b),
    onStderr: (b) => process.stderr.write(b),
  });
  const raw = o.tty && process.stdin.isTTY;
  if (raw) process.stdin.setRawMode(true);
  const onData = (b: Buffer) => stream.write(b);
  const onEnd = () => stream.end();
  const onResize = () => stream.resize(size().rows, size().cols);
  let interrupts = 0;
  const onSigint = () => (++interrupts === 1 ? stream.signal(2) : stream.close());
  process.stdin.on("data", onData);
  process.stdin.on("end", onEnd);
  process.on("SIGINT", onSigint);
  process.stdout.on("resize", onResize);
  try {
    const r = await stream.result;
    if (r.message) process.stderr.write(`mvm: ${r.message}\n`);
    return r.status;
  } catch (e) {
    if (interrupts > 1) return 130;
    throw e;
  } finally {
    if (raw) process.stdin.setRawMode(false);
    process.stdin.off("data", onData);
    process.stdin.off("end", onEnd);
    process.stdin.pause();
    process.off("SIGINT", onSigint);
    process.stdout.off("resize", onResize);
  }
}
