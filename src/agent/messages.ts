// Typed messages on top of frames and fields: what the host sends and what it reads back.

import { Field } from "./protocol.js";
import { FieldWriter, Fields } from "./fields.js";

export interface ExecRequest {
  argv: string[];
  env?: Record<string, string>;
  cwd?: string;
  user?: string;
  /** Stream stdin to the command; without it the command reads /dev/null. */
  stdin?: boolean;
  /** Kill the command and everything it started (its cgroup) after this long. */
  timeoutMs?: number;
}

export function encodeExec(req: ExecRequest): Buffer {
  const w = new FieldWriter();
  for (const a of req.argv) w.str(Field.ARG, a);
  for (const [k, v] of Object.entries(req.env ?? {})) w.str(Field.ENV, `${k}=${v}`);
  if (req.cwd !== undefined) w.str(Field.CWD, req.cwd);
  if (req.user !== undefined) w.str(Field.USER, req.user);
  w.u8(Field.STDIN, req.stdin ? 1 : 0);
  if (req.timeoutMs !== undefined) w.u32(Field.TIMEOUT_MS, Math.max(1, Math.min(Math.round(req.timeoutMs), 0xffffffff)));
  return w.build();
}

export const encodeSignal = (signo: number): Buffer => new FieldWriter().u32(Field.SIGNO, signo).build();
export const encodeWindow = (bytes: number): Buffer => new FieldWriter().u32(Field.BYTES, bytes).build();

export interface Hello {
  protocol: number;
  agentVersion: string;
  capabilities: string[];
  maxPayload: number;
  window: number;
  maxSessions: number;
  /** Guest uptime when the agent said hello, and when init started (ms since the kernel booted). */
  uptimeMs?: number;
  initUptimeMs?: number;
  kernel?: string;
  hostname?: string;
  /** Changes when the agent restarts (init restarts it if it dies). */
  agentPid?: number;
}

export function decodeHello(payload: Buffer): Hello {
  const f = new Fields(payload);
  return {
    protocol: f.u32(Field.PROTO) ?? 0,
    agentVersion: f.str(Field.AGENT_VERSION) ?? "unknown",
    capabilities: f.strs(Field.CAP),
    maxPayload: f.u32(Field.MAX_PAYLOAD) ?? 0,
    window: f.u32(Field.WINDOW) ?? 0,
    maxSessions: f.u32(Field.MAX_SESSIONS) ?? 0,
    uptimeMs: f.u64(Field.UPTIME_MS),
    initUptimeMs: f.u64(Field.INIT_UPTIME_MS),
    kernel: f.str(Field.KERNEL),
    hostname: f.str(Field.HOSTNAME),
    agentPid: f.u32(Field.AGENT_PID),
  };
}

export interface ExitMessage {
  exitCode: number | null;
  signal: number | null;
  message?: string;
  timedOut?: boolean;
}

export function decodeExit(payload: Buffer): ExitMessage {
  const f = new Fields(payload);
  const signal = f.u32(Field.TERM_SIGNAL) ?? null;
  const timedOut = f.u32(Field.TIMED_OUT) === 1 ? true : undefined;
  return { exitCode: signal === null ? (f.i32(Field.EXIT_CODE) ?? null) : null, signal, message: f.str(Field.MESSAGE), ...(timedOut ? { timedOut } : {}) };
}

export interface ErrorMessage {
  code: number;
  message: string;
}

export function decodeError(payload: Buffer): ErrorMessage {
  const f = new Fields(payload);
  return { code: f.u32(Field.ERROR_CODE) ?? 0, message: f.str(Field.MESSAGE) ?? "" };
}

export const decodePid = (payload: Buffer): number | undefined => new Fields(payload).u32(Field.PID);
export const decodeBytes = (payload: Buffer): number => new Fields(payload).u32(Field.BYTES) ?? 0;
