// Typed messages on top of frames and fields: what the host sends and what it reads back.

import { crc32Hex } from "../api/crc32.js";
import { Field, FsFlag, MAX_ENTROPY } from "./protocol.js";
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
  /** Run it on a pseudo-terminal of this size (stdout and stderr become one stream). */
  tty?: { rows: number; cols: number };
}

export function encodeExec(req: ExecRequest): Buffer {
  const w = new FieldWriter();
  for (const a of req.argv) w.str(Field.ARG, a);
  for (const [k, v] of Object.entries(req.env ?? {})) w.str(Field.ENV, `${k}=${v}`);
  if (req.cwd !== undefined) w.str(Field.CWD, req.cwd);
  if (req.user !== undefined) w.str(Field.USER, req.user);
  w.u8(Field.STDIN, req.stdin ? 1 : 0);
  if (req.timeoutMs !== undefined) w.u32(Field.TIMEOUT_MS, Math.max(1, Math.min(Math.round(req.timeoutMs), 0xffffffff)));
  if (req.tty) w.u8(Field.TTY, 1).u32(Field.ROWS, req.tty.rows).u32(Field.COLS, req.tty.cols);
  return w.build();
}

/**
 * What makes a VM restored from a memory template (or resumed) a machine of its own; see IDENTITY in
 * docs/agent-protocol.md. The agent applies it in this order: clock, hostname, entropy, env, network.
 */
export interface IdentityRequest {
  /** The host's CLOCK_REALTIME in nanoseconds, taken just before sending. */
  realtimeNs: bigint;
  hostname?: string;
  /** At most MAX_ENTROPY bytes from the host's CSPRNG; the guest credits them in full and reseeds. */
  entropy?: Buffer;
  /** Set in the agent's own environment: every command started afterwards inherits it. */
  env?: Record<string, string>;
  /** eth0 of a bridged VM. The address replaces the old one and its routes: give the gateway with it. */
  network?: { mac: string; address?: string; gateway?: string };
}

export function encodeIdentity(req: IdentityRequest): Buffer {
  // What the guest would refuse is refused here, where the caller can see which value is wrong.
  if (req.entropy && req.entropy.length > MAX_ENTROPY) throw new RangeError(`entropy of ${req.entropy.length} bytes is over ${MAX_ENTROPY}`);
  const w = new FieldWriter().u64(Field.REALTIME_NS, req.realtimeNs);
  if (req.hostname !== undefined) w.str(Field.HOSTNAME, req.hostname);
  if (req.entropy) w.bytes(Field.ENTROPY, req.entropy);
  for (const [k, v] of Object.entries(req.env ?? {})) {
    if (!k || k.includes("=")) throw new RangeError(`environment variable name ${JSON.stringify(k)} is empty or holds "="`);
    w.str(Field.ENV, `${k}=${v}`);
  }
  if (req.network) {
    w.str(Field.NET_MAC, req.network.mac);
    if (req.network.address !== undefined) w.str(Field.NET_ADDRESS, req.network.address);
    if (req.network.gateway !== undefined) w.str(Field.NET_GATEWAY, req.network.gateway);
  }
  return w.build();
}

export const encodeResize = (rows: number, cols: number): Buffer => new FieldWriter().u32(Field.ROWS, rows).u32(Field.COLS, cols).build();

/** A file operation (FS, READ or WRITE frames). */
export interface FsRequest {
  op?: "stat" | "list" | "mkdir" | "rename" | "remove" | "chmod" | "chown" | "symlink";
  path: string;
  /** rename: the new path; symlink: the link's target. */
  path2?: string;
  /** list: how deep (1 = the directory's own entries, 0 = everything below). */
  depth?: number;
  mode?: number;
  /** "uid:gid", "user:group", or "user" (with its primary group). */
  owner?: string;
  parents?: boolean;
  recursive?: boolean;
  exclusive?: boolean;
}

export function encodeFs(req: FsRequest): Buffer {
  const w = new FieldWriter();
  if (req.op) w.str(Field.OP, req.op);
  w.str(Field.PATH, req.path);
  if (req.path2 !== undefined) w.str(Field.PATH2, req.path2);
  if (req.depth !== undefined) w.u32(Field.DEPTH, req.depth);
  if (req.mode !== undefined) w.u32(Field.MODE, req.mode);
  if (req.owner !== undefined) w.str(Field.OWNER, req.owner);
  const flags = (req.parents ? FsFlag.PARENTS : 0) | (req.recursive ? FsFlag.RECURSIVE : 0) | (req.exclusive ? FsFlag.EXCLUSIVE : 0);
  if (flags) w.u32(Field.FLAGS, flags);
  return w.build();
}

export type FileType = "file" | "dir" | "symlink" | "other";

export interface FileEntry {
  /** The path asked about (stat, read), or the path relative to the listed directory (list). */
  name: string;
  type: FileType;
  /** Permission bits (0o7777). */
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtimeMs: number;
  /** Where a symlink points (never followed). */
  target?: string;
}

const KINDS: FileType[] = ["file", "dir", "symlink", "other"];

/** ENTRY fields: kind u8, mode u32, uid u32, gid u32, size u64, mtime i64 (ms), name length u16, name, target. */
export function decodeEntries(payload: Buffer): FileEntry[] {
  return new Fields(payload).all(Field.ENTRY).map((v) => {
    if (v.length < 31) throw new Error(`file entry of ${v.length} bytes is too short`);
    const nameLen = v.readUInt16LE(29);
    if (31 + nameLen > v.length) throw new Error("file entry name runs past its field");
    const target = v.subarray(31 + nameLen).toString("utf8");
    return {
      name: v.subarray(31, 31 + nameLen).toString("utf8"),
      type: KINDS[v[0]!] ?? "other",
      mode: v.readUInt32LE(1) & 0o7777,
      uid: v.readUInt32LE(5),
      gid: v.readUInt32LE(9),
      size: Number(v.readBigUInt64LE(13)),
      mtimeMs: Number(v.readBigInt64LE(21)),
      ...(target ? { target } : {}),
    };
  });
}

/** A command the agent is running, as LIST reports it (argv may be cut short). */
export interface ListedSession {
  id: number;
  pid: number;
  tty: boolean;
  argv: string[];
}

export function decodeSessions(payload: Buffer): ListedSession[] {
  return new Fields(payload).all(Field.SESSION).map((v) => {
    if (v.length < 9) throw new Error(`session entry of ${v.length} bytes is too short`);
    const argv = v.subarray(9).toString("utf8").split("\0");
    if (argv.at(-1) === "") argv.pop();
    return { id: v.readUInt32LE(0), pid: v.readUInt32LE(4), tty: v[8] === 1, argv };
  });
}

export interface FsDone {
  errno?: number;
  message?: string;
  /** CRC-32 of every byte of a transfer, as 8 hex digits. */
  crc32?: string;
  size?: number;
}

export function decodeFsDone(payload: Buffer): FsDone {
  const f = new Fields(payload);
  const crc = f.u32(Field.CRC32);
  return { errno: f.u32(Field.ERRNO), message: f.str(Field.MESSAGE), crc32: crc === undefined ? undefined : crc32Hex(crc), size: f.u64(Field.SIZE) };
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
  /** In the answer to IDENTITY: each step that failed, as "clock: EPERM (Operation not permitted)". */
  identityErrors?: string[];
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
    ...(f.all(Field.IDENTITY_ERROR).length ? { identityErrors: f.strs(Field.IDENTITY_ERROR) } : {}),
  };
}

export interface ExitMessage {
  exitCode: number | null;
  signal: number | null;
  message?: string;
  timedOut?: boolean;
  /** Forwards and watches that failed: the guest's errno. */
  errno?: number;
}

export function decodeExit(payload: Buffer): ExitMessage {
  const f = new Fields(payload);
  const signal = f.u32(Field.TERM_SIGNAL) ?? null;
  const timedOut = f.u32(Field.TIMED_OUT) === 1 ? true : undefined;
  const errno = f.u32(Field.ERRNO);
  return { exitCode: signal === null ? (f.i32(Field.EXIT_CODE) ?? null) : null, signal, message: f.str(Field.MESSAGE), ...(timedOut ? { timedOut } : {}), ...(errno !== undefined ? { errno } : {}) };
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
