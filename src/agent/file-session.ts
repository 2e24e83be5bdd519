// File operations on the guest through the agent. One-shot operations collect entries until FS_DONE;
// reads stream the file's bytes under flow control; writes send them under the guest's credit. Both
// kinds of transfer checksum every byte on the host and compare with the CRC-32 the agent reports, so a
// copy is checked end to end.

import { crc32, crc32Hex } from "../api/crc32.js";
import { AbortError, AgentProtocolError, guestFileError, type GuestFileError, IntegrityError, TimeoutError } from "../errors.js";
import { CreditedReceiver, CreditedSender } from "./credit.js";
import { encodeWindow, type FileEntry, type FsDone } from "./messages.js";
import { FrameType } from "./protocol.js";
import type { ChannelSession, SessionChannel, SessionLimits } from "./session.js";

export interface TransferResult {
  size: number;
  /** CRC-32 (zlib's) of the bytes, 8 hex digits: the same on both ends, or the transfer failed. */
  crc32: string;
}

/** A file transfer the guest stopped answering fails after this long without a frame (SessionLimits.idleMs). */
export const FILE_IDLE_MS = 60_000;
/** The same for one-shot operations, longer: a recursive remove of a big tree sends nothing until it is done. */
export const FS_OP_IDLE_MS = 600_000;

/** What a guest errno means to someone holding a path: the class (and its hint) follows the errno. */
const guestError = (done: FsDone, fallback: string): GuestFileError => guestFileError(done.message ?? fallback, done.errno);

abstract class FileSessionBase implements ChannelSession {
  protected finished = false;
  protected resolveDone!: (v: FsDone) => void;
  protected rejectDone!: (e: Error) => void;
  /** Settles with the agent's FS_DONE; rejects with GuestFileError when the guest reported an error. */
  readonly done: Promise<FsDone>;
  private idleTimer?: NodeJS.Timeout;
  private readonly idleMs: number;

  constructor(
    readonly id: number,
    protected readonly channel: SessionChannel,
    limits?: Partial<SessionLimits>,
    defaultIdleMs = FILE_IDLE_MS,
  ) {
    this.done = new Promise((resolve, reject) => {
      this.resolveDone = resolve;
      this.rejectDone = reject;
    });
    this.done.catch(() => undefined);
    this.idleMs = limits?.idleMs ?? defaultIdleMs;
    this.touch();
  }

  /**
   * The guest (or the host, starting to wait on it) did something: the idle deadline starts again. A
   * guest that stops answering mid-transfer must not hold the session, and whoever waits on it, forever.
   */
  protected touch(): void {
    if (this.finished) return;
    clearTimeout(this.idleTimer);
    this.idleTimer = setTimeout(() => this.idle(), this.idleMs);
  }

  /** Whether the host is waiting on the guest now (not on its own reader or writer). */
  protected waitingOnGuest(): boolean {
    return true;
  }

  private idle(): void {
    if (this.finished) return;
    if (!this.waitingOnGuest()) return this.touch(); // the host's side is the slow one: no deadline for it
    this.abandon();
    this.fail(new TimeoutError(`the guest agent sent nothing for file session ${this.id} within ${this.idleMs} ms`, {
      details: { session: this.id },
      hint: "the guest is hung or overloaded; the transfer was dropped (a write leaves the destination as it was)",
    }));
  }

  /** Tells the agent to drop the session (a transfer's SIGNAL); one-shot operations have nothing to drop. */
  protected abandon(): void {}

  onFsDone(done: FsDone): void {
    this.channel.done();
    if (this.finished) return;
    this.finished = true;
    clearTimeout(this.idleTimer);
    const error = done.errno !== undefined ? guestError(done, "the file operation failed in the guest") : undefined;
    this.settled(error);
    if (error) this.rejectDone(error);
    else this.resolveDone(done);
  }

  fail(error: Error): void {
    this.channel.done();
    if (this.finished) return;
    this.finished = true;
    clearTimeout(this.idleTimer);
    this.settled(error);
    this.rejectDone(error);
  }

  /** Called once, as the session ends (with the error when it failed). */
  protected settled(_error?: Error): void {}
}

/** stat, list, mkdir, rename, remove, chmod, chown, symlink. */
export class FsOpSession extends FileSessionBase {
  readonly entries: FileEntry[] = [];

  constructor(id: number, channel: SessionChannel, limits?: Partial<SessionLimits>) {
    super(id, channel, limits, FS_OP_IDLE_MS);
  }

  onEntries(entries: FileEntry[]): void {
    this.touch();
    this.entries.push(...entries);
  }
}

/** A file streamed out of the guest. */
export class FileReadSession extends FileSessionBase {
  /** The file's stat, before any data. */
  readonly info: Promise<FileEntry>;
  /** Resolves after the last byte, once the checksums agree. */
  readonly result: Promise<TransferResult>;
  private resolveInfo!: (e: FileEntry) => void;
  private rejectInfo!: (e: Error) => void;
  private crc = 0;
  private received = 0;
  private readonly receiver: CreditedReceiver;
  /** The host's reader paused the transfer: no idle deadline for the guest then. */
  private paused = false;

  constructor(id: number, channel: SessionChannel, limits: SessionLimits, private readonly onData: (chunk: Buffer) => void) {
    super(id, channel, limits);
    this.receiver = new CreditedReceiver(limits.window, (n) => channel.send(FrameType.WINDOW, encodeWindow(n)));
    this.info = new Promise((resolve, reject) => {
      this.resolveInfo = resolve;
      this.rejectInfo = reject;
    });
    this.info.catch(() => undefined);
    this.result = this.done.then((d) => {
      const mine = crc32Hex(this.crc);
      if (d.crc32 !== mine || d.size !== this.received) {
        throw new IntegrityError(`the file arrived damaged: ${this.received} bytes with CRC-32 ${mine}, the guest sent ${d.size} bytes with ${d.crc32}`, {
          hint: "copy it again; if this repeats, report it as a bug",
        });
      }
      return { size: this.received, crc32: mine };
    });
    this.result.catch(() => undefined);
  }

  onEntries(entries: FileEntry[]): void {
    this.touch();
    if (entries[0]) this.resolveInfo(entries[0]);
  }

  onOutput(_stream: "stdout" | "stderr", data: Buffer): void {
    if (this.finished) return;
    this.touch();
    // Bytes beyond the credit would pile up in the host while its reader is paused (an HTTP client
    // reading slowly): a guest that ignores flow control loses the transfer instead.
    if (!this.receiver.received(data.length)) {
      this.abandon();
      this.fail(new AgentProtocolError(`the guest agent sent file data for session ${this.id} beyond the credit it was granted`, {
        details: { session: this.id },
        hint: "a guest agent must honour the output window (docs/agent-protocol.md, Flow control)",
      }));
      return;
    }
    this.crc = crc32(data, this.crc);
    this.received += data.length;
    this.onData(data);
    this.receiver.consumed(data.length);
  }

  /** Backpressure: stop granting credit until resume(). */
  pause(): void {
    this.paused = true;
    this.receiver.pause();
  }

  resume(): void {
    this.paused = false;
    this.touch(); // the guest gets the idle time again from here
    this.receiver.resume();
  }

  /** Stops the transfer; the result rejects with AbortError. */
  cancel(reason?: unknown): void {
    if (this.finished) return;
    this.abandon();
    this.fail(new AbortError("the file read was cancelled", { cause: reason }));
  }

  /** Paused by the host, the guest rightly sends nothing. */
  protected override waitingOnGuest(): boolean {
    return !this.paused;
  }

  protected override abandon(): void {
    this.channel.send(FrameType.SIGNAL);
  }

  protected override settled(error?: Error): void {
    if (error) this.rejectInfo(error); // no effect once the stat has arrived
  }
}

/** A file streamed into the guest: written to a temporary file, renamed into place when complete. */
export class FileWriteSession extends FileSessionBase {
  /** Resolves when the guest has opened the file and is ready for data. */
  readonly ready: Promise<void>;
  private resolveReady!: () => void;
  private rejectReady!: (e: Error) => void;
  private crc = 0;
  private sent = 0;
  private readonly sender: CreditedSender;
  private failure?: Error;
  /** write()s in progress: while there are some, the host waits on the guest (for STARTED or credit). */
  private busy = 0;
  /** end() was called: the host waits for FS_DONE. */
  private ended = false;
  private started = false;

  constructor(id: number, channel: SessionChannel, limits: SessionLimits) {
    super(id, channel, limits);
    this.sender = new CreditedSender(limits.window, limits.maxPayload, (b) => channel.send(FrameType.STDIN, b), () => {
      if (this.finished) throw this.failure ?? new AbortError("the file write has ended");
    });
    this.ready = new Promise((resolve, reject) => {
      this.resolveReady = resolve;
      this.rejectReady = reject;
    });
    this.ready.catch(() => undefined);
  }

  onStarted(): void {
    this.touch();
    this.started = true;
    this.resolveReady();
  }

  onStdinCredit(n: number): void {
    this.touch();
    this.sender.grant(n);
  }

  /** Sends bytes once the guest grants credit for them. */
  async write(data: Buffer): Promise<void> {
    if (data.length === 0) return;
    this.touch();
    this.busy++;
    try {
      await this.ready;
      this.crc = crc32(data, this.crc);
      this.sent += data.length;
      await this.sender.write(data);
    } finally {
      this.busy--;
    }
  }

  /** Ends the file: resolves once it is in place and the guest's checksum matches what was sent. */
  async end(): Promise<TransferResult> {
    this.touch();
    this.ended = true; // from here on the host waits on the guest until FS_DONE
    await this.ready;
    await this.sender.write(Buffer.alloc(0));
    const done = await this.done;
    const mine = crc32Hex(this.crc);
    if (done.crc32 !== mine || done.size !== this.sent) {
      throw new IntegrityError(`the guest wrote ${done.size} bytes with CRC-32 ${done.crc32}; ${this.sent} bytes with ${mine} were sent`, {
        hint: "the file in the VM is damaged; copy it again",
      });
    }
    return { size: this.sent, crc32: mine };
  }

  /** Drops the transfer; the guest removes its temporary file and the destination is left as it was. */
  cancel(reason?: unknown): void {
    if (this.finished) return;
    this.abandon();
    this.fail(new AbortError("the file write was cancelled", { cause: reason }));
  }

  /** Waiting for STARTED, for credit, or for FS_DONE; not while the host has no data to send yet. */
  protected override waitingOnGuest(): boolean {
    return !this.started || this.busy > 0 || this.ended;
  }

  protected override abandon(): void {
    this.channel.send(FrameType.SIGNAL); // the guest removes its temporary file
  }

  protected override settled(error?: Error): void {
    this.failure = error;
    if (error) this.rejectReady(error);
    this.sender.wake();
  }
}
