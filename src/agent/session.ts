// What AgentClient needs from anything that owns a session id: the frames for that id are handed to it.

import type { ExitMessage, FileEntry, FsDone } from "./messages.js";

export interface ChannelSession {
  onStarted?(pid: number | undefined): void;
  onOutput?(stream: "stdout" | "stderr", data: Buffer): void;
  onStdinCredit?(n: number): void;
  onExit?(exit: ExitMessage): void;
  onEntries?(entries: FileEntry[]): void;
  onFsDone?(done: FsDone): void;
  /** WATCH_EVENTS: the raw payload (EVENT fields), decoded by the watch session. */
  onWatchEvents?(payload: Buffer): void;
  /** false: the session's EXIT needs no EXIT_ACK (forwards and watches are forgotten as they end). */
  readonly exitAck?: boolean;
  /** The session ended abnormally (channel closed, agent refused it or restarted). */
  fail(error: Error): void;
}

/** How a session talks back: frames for its own id, and telling the client it is over. */
export interface SessionChannel {
  send(type: number, payload?: Buffer): void;
  done(): void;
}

export interface SessionLimits {
  maxPayload: number;
  window: number;
  /**
   * File sessions fail with TimeoutError when the guest sends nothing for them for this long while the
   * host waits on it (a stalled transfer, an operation never answered). Exec sessions do not use it.
   */
  idleMs?: number;
}
