// A watch on a guest directory (WATCH, docs/agent-protocol.md) as an async iterable of events. Events
// count against the session's output window: credit goes back only as the consumer takes them, so a
// consumer that stops reading makes the agent stop reading inotify (the guest kernel's queue then
// overflows, and an "overflow" event says events were lost) instead of filling the host's memory. A
// guest that sends beyond its credit fails the watch.

import { AgentProtocolError, guestFileError, TimeoutError } from "../errors.js";
import { CreditedReceiver } from "./credit.js";
import { FieldWriter, Fields } from "./fields.js";
import { encodeWindow, type ExitMessage } from "./messages.js";
import { Field, FrameType, FsFlag, WatchKind } from "./protocol.js";
import type { ChannelSession, SessionChannel, SessionLimits } from "./session.js";

export type WatchEventType = "create" | "write" | "remove" | "rename" | "chmod";

/** What changed: a name relative to the watched path ("" is the directory itself). */
export type WatchEvent =
  | { type: WatchEventType; name: string }
  /** Events were lost (the guest's inotify queue overflowed while the consumer was slow). */
  | { type: "overflow" }
  /** The cap on watched directories (1024) was reached: changes below `name` are not seen. */
  | { type: "limit"; name: string };

const KINDS: Record<number, WatchEvent["type"]> = {
  [WatchKind.CREATE]: "create",
  [WatchKind.WRITE]: "write",
  [WatchKind.REMOVE]: "remove",
  [WatchKind.RENAME]: "rename",
  [WatchKind.CHMOD]: "chmod",
  [WatchKind.OVERFLOW]: "overflow",
  [WatchKind.LIMIT]: "limit",
};

export function encodeWatch(path: string, recursive: boolean): Buffer {
  return new FieldWriter().str(Field.PATH, path).u32(Field.FLAGS, recursive ? FsFlag.RECURSIVE : 0).build();
}

/** The EVENT fields of a WATCH_EVENTS payload; unknown kinds are skipped (a newer agent's). */
export function decodeWatchEvents(payload: Buffer): WatchEvent[] {
  const out: WatchEvent[] = [];
  for (const v of new Fields(payload).all(Field.EVENT)) {
    if (v.length < 1) throw new RangeError("an EVENT field without a kind");
    const type = KINDS[v[0]!];
    const name = v.subarray(1).toString("utf8");
    if (type === "overflow") out.push({ type });
    else if (type) out.push({ type, name });
  }
  return out;
}

/** The agent answers WATCH (STARTED or EXIT) at once; this is how long the host waits for it. */
export const WATCH_START_MS = 15_000;
const CANCEL_GRACE_MS = 5_000;

export class WatchSession implements ChannelSession, AsyncIterable<WatchEvent> {
  readonly exitAck = false;
  /** Resolves once the guest watches the path; rejects with a GuestFileError (ENOTDIR, ENOENT...) if it cannot. */
  readonly started: Promise<void>;
  private resolveStarted!: () => void;
  private rejectStarted!: (e: Error) => void;
  private readonly receiver: CreditedReceiver;
  /** Events not yet taken, each with the credit it gives back when taken (a frame's whole size on its last). */
  private queue: Array<{ event: WatchEvent; cost: number }> = [];
  private waiter?: () => void;
  private error?: Error;
  private done = false; // no more events will come
  private released = false;
  private startTimer?: NodeJS.Timeout;
  private cancelTimer?: NodeJS.Timeout;

  constructor(
    readonly id: number,
    readonly path: string,
    limits: SessionLimits,
    private readonly channel: SessionChannel,
  ) {
    this.started = new Promise((resolve, reject) => {
      this.resolveStarted = resolve;
      this.rejectStarted = reject;
    });
    this.started.catch(() => undefined);
    this.receiver = new CreditedReceiver(limits.window, (n) => !this.released && channel.send(FrameType.WINDOW, encodeWindow(n)));
    this.startTimer = setTimeout(() => this.fail(new TimeoutError(`the guest agent did not start watching ${path} within ${WATCH_START_MS} ms`)), WATCH_START_MS);
  }

  onStarted(): void {
    clearTimeout(this.startTimer);
    this.resolveStarted();
  }

  onWatchEvents(payload: Buffer): void {
    if (this.done) return;
    if (!this.receiver.received(payload.length)) return this.protocolFailure(`the guest agent sent more events than its credit on watch ${this.id}`);
    const events = decodeWatchEvents(payload);
    if (!events.length) return this.receiver.consumed(payload.length);
    events.forEach((event, i) => this.queue.push({ event, cost: i === events.length - 1 ? payload.length : 0 }));
    this.wake();
  }

  onExit(exit: ExitMessage): void {
    this.release();
    const failed = exit.exitCode !== 0 || exit.message;
    // ENOTDIR, ENOENT...: the class follows the errno (FileNotFoundError for a path that is not there).
    const error = failed ? guestFileError(exit.message ?? `watching ${this.path} failed in the guest`, exit.errno, { details: { path: this.path } }) : undefined;
    this.finish(error);
  }

  fail(error: Error): void {
    this.release();
    this.finish(error);
  }

  /** Stops the watch; the iterator ends after the events already queued. */
  close(): void {
    this.cancel();
    this.finish();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<WatchEvent> {
    try {
      await this.started;
      for (;;) {
        const item = this.queue.shift();
        if (item) {
          if (item.cost) this.receiver.consumed(item.cost);
          yield item.event;
          continue;
        }
        if (this.error) throw this.error;
        if (this.done) return;
        await new Promise<void>((r) => (this.waiter = r));
      }
    } finally {
      this.close(); // a consumer that breaks out of the loop ends the watch
    }
  }

  private finish(error?: Error): void {
    if (this.done) return;
    this.done = true;
    clearTimeout(this.startTimer);
    if (error) {
      this.error = error;
      this.rejectStarted(error);
    } else {
      this.resolveStarted(); // a watch closed before it started has simply no events
    }
    this.wake();
  }

  private wake(): void {
    const w = this.waiter;
    this.waiter = undefined;
    w?.();
  }

  private protocolFailure(message: string): void {
    this.cancel();
    this.queue = [];
    this.fail(new AgentProtocolError(message, { details: { session: this.id } }));
  }

  private cancel(): void {
    if (this.released || this.cancelTimer) return;
    this.channel.send(FrameType.SIGNAL, new FieldWriter().u32(Field.SIGNO, 9).build());
    this.cancelTimer = setTimeout(() => this.release(), CANCEL_GRACE_MS);
    this.cancelTimer.unref();
  }

  private release(): void {
    if (this.released) return;
    this.released = true;
    clearTimeout(this.startTimer);
    clearTimeout(this.cancelTimer);
    this.channel.done();
  }
}
