// The mvm agent protocol, version 1. docs/agent-protocol.md is the specification; guest/agent/proto.h holds
// the guest's copy of these values, and protocol.test.ts checks that the two agree.

export const PROTO_VERSION = 1;
export const MAGIC = Buffer.from("mv", "latin1");
export const HEADER_SIZE = 16;
/** Frames above this are refused on both sides. */
export const MAX_PAYLOAD = 256 * 1024;
/** Initial flow-control credit per session and direction. */
export const WINDOW = 1024 * 1024;
export const MAX_SESSIONS = 128;
/** IDENTITY carries at most this many bytes of entropy. */
export const MAX_ENTROPY = 512;

export const FrameType = {
  // host -> guest
  HELLO_REQ: 0x01,
  EXEC: 0x02,
  STDIN: 0x03,
  SIGNAL: 0x04,
  WINDOW: 0x05,
  POWEROFF: 0x06,
  FS: 0x07,
  READ: 0x08,
  WRITE: 0x09,
  RESIZE: 0x0a,
  LIST: 0x0b,
  /** The host has a session's EXIT: the agent may forget the session (agents with the "exit-ack" capability). */
  EXIT_ACK: 0x0c,
  /** Clock, hostname, entropy, env and address of a restored VM; answered by HELLO (capability "identity"). */
  IDENTITY: 0x0d,
  /** Open a TCP connection to a guest port; bytes as STDIN/STDOUT (capability "forward"). */
  FORWARD: 0x0e,
  /** Watch a guest directory with inotify; events as WATCH_EVENTS (capability "watch"). */
  WATCH: 0x0f,
  // guest -> host
  HELLO: 0x81,
  STARTED: 0x82,
  STDOUT: 0x83,
  STDERR: 0x84,
  EXIT: 0x85,
  STDIN_WINDOW: 0x86,
  ERROR: 0x87,
  POWEROFF_ACK: 0x88,
  FS_ENTRIES: 0x89,
  FS_DONE: 0x8a,
  SESSIONS: 0x8b,
  /** EVENT*: what changed below a watched directory. */
  WATCH_EVENTS: 0x8c,
} as const;
export type FrameType = (typeof FrameType)[keyof typeof FrameType];

export const Field = {
  ARG: 1,
  ENV: 2,
  CWD: 3,
  USER: 4,
  STDIN: 5,
  SIGNO: 6,
  BYTES: 7,
  PID: 8,
  EXIT_CODE: 9,
  TERM_SIGNAL: 10,
  ERROR_CODE: 11,
  MESSAGE: 12,
  PROTO: 13,
  AGENT_VERSION: 14,
  CAP: 15,
  MAX_PAYLOAD: 16,
  WINDOW: 17,
  UPTIME_MS: 18,
  INIT_UPTIME_MS: 19,
  MAX_SESSIONS: 20,
  KERNEL: 21,
  HOSTNAME: 22,
  AGENT_PID: 23,
  TIMEOUT_MS: 24,
  TIMED_OUT: 25,
  TTY: 26,
  ROWS: 27,
  COLS: 28,
  OP: 29,
  PATH: 30,
  PATH2: 31,
  DEPTH: 32,
  MODE: 33,
  OWNER: 34,
  FLAGS: 35,
  ENTRY: 36,
  ERRNO: 37,
  CRC32: 38,
  SIZE: 39,
  SESSION: 40,
  REALTIME_NS: 41,
  ENTROPY: 42,
  NET_MAC: 43,
  NET_ADDRESS: 44,
  NET_GATEWAY: 45,
  /** In the HELLO that answers IDENTITY: one step that failed, repeated. */
  IDENTITY_ERROR: 46,
  /** FORWARD: the TCP port, 1-65535. */
  PORT: 47,
  /** FORWARD: the IPv4 or IPv6 literal to connect to (default 127.0.0.1). */
  ADDRESS: 48,
  /** WATCH_EVENTS: kind u8 (WatchKind), then the name relative to the watched path; repeated. */
  EVENT: 49,
} as const;

/** The kinds of EVENT fields. */
export const WatchKind = {
  CREATE: 1,
  WRITE: 2,
  REMOVE: 3,
  RENAME: 4,
  CHMOD: 5,
  /** Events were lost: the guest kernel's queue overflowed, or the host held back credit too long. */
  OVERFLOW: 6,
  /** A directory was left unwatched: the cap on watched directories (1024 per watch). */
  LIMIT: 7,
} as const;

/** Bits of the FLAGS field of file operations. */
export const FsFlag = {
  PARENTS: 1,
  RECURSIVE: 2,
  EXCLUSIVE: 4,
} as const;

export const ErrorCode = {
  BAD_FRAME: 1,
  FRAME_TOO_LARGE: 2,
  UNKNOWN_TYPE: 3,
  BAD_MESSAGE: 4,
  UNKNOWN_SESSION: 5,
  SESSION_EXISTS: 6,
  TOO_MANY_SESSIONS: 7,
  UNSUPPORTED_VERSION: 8,
  SPAWN_FAILED: 9,
  INTERNAL: 10,
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

export function errorCodeName(code: number): string {
  const hit = Object.entries(ErrorCode).find(([, v]) => v === code);
  return hit ? hit[0] : `ERROR_${code}`;
}
