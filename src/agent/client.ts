// The host side of the agent protocol: one AgentClient per VM channel, many concurrent exec sessions over
// it. Output flows to callbacks as it arrives; credit goes back to the agent as it is consumed, and stdin
// waits for credit, so neither side can flood the other. When the channel closes every pending call fails
// with AgentDisconnectedError.

import { EventEmitter } from "node:events";
import type { Duplex } from "node:stream";
import { withDeadline } from "../deadline.js";
import { AgentCapabilityError, AgentDisconnectedError, AgentProtocolError, AgentRestartedError } from "../errors.js";
import { FrameDecoder, encodeFrame, encodeHeader, type Frame } from "./frame.js";
import {
  decodeBytes,
  decodeEntries,
  decodeError,
  decodeExit,
  decodeFsDone,
  decodeHello,
  decodePid,
  decodeSessions,
  encodeExec,
  encodeFs,
  encodeIdentity,
  type ExecRequest,
  type FileEntry,
  type FsRequest,
  type Hello,
  type IdentityRequest,
  type ListedSession,
  type ExitMessage,
} from "./messages.js";
import { Fields } from "./fields.js";
import { ErrorCode, Field, FrameType, MAX_PAYLOAD, PROTO_VERSION, WINDOW, errorCodeName } from "./protocol.js";
import { ExecSession, type ExecOptions, type ExecResult } from "./exec-session.js";
import { FileReadSession, FileWriteSession, FsOpSession } from "./file-session.js";
import { encodeForward, ForwardSession } from "./forward-session.js";
import { encodeWatch, WatchSession } from "./watch-session.js";
import type { ChannelSession, SessionChannel, SessionLimits } from "./session.js";

export type { ExecOptions, ExecResult };
export { ExecSession };

export interface RunResult extends ExecResult {
  stdout: Buffer;
  stderr: Buffer;
}

export interface AgentClientOptions {
  /**
   * Keep frames of sessions this client does not know (yet), for adopt(): a host that restarted gets
   * output and exits of the commands its predecessor started before it can ask what they are.
   */
  keepOrphans?: boolean;
  /**
   * File sessions fail with TimeoutError after this long without a frame from the guest while the host
   * waits on it (default: FILE_IDLE_MS for transfers, FS_OP_IDLE_MS for one-shot operations).
   */
  fileIdleMs?: number;
}

/** Frames of unknown sessions kept for adoption, at most this many bytes (oldest dropped first). */
const ORPHAN_BYTES = 16 * 1024 * 1024;
/** What a kept frame costs beyond its payload (the object, the list's slot), counted against ORPHAN_BYTES. */
const ORPHAN_OVERHEAD = 256;
const orphanCost = (f: Frame): number => f.payload.length + ORPHAN_OVERHEAD;

interface Waiter<T> {
  resolve: (v: T) => void;
  reject: (e: Error) => void;
}

export class AgentClient extends EventEmitter<{ hello: [Hello]; "protocol-error": [AgentProtocolError]; close: [] }> {
  private readonly decoder = new FrameDecoder();
  private readonly sessions = new Map<number, ChannelSession>();
  private nextId = 1;
  private helloInfo?: Hello;
  private helloWaiters: Waiter<Hello>[] = [];
  /** Each waits for the HELLO that echoes its REALTIME_NS. */
  private identityWaiters: Array<Waiter<Hello> & { realtimeNs: bigint }> = [];
  private poweroffWaiters: Waiter<void>[] = [];
  private poweroffRequested = false;
  private closedError?: AgentDisconnectedError;
  private listWaiters: Waiter<ListedSession[]>[] = [];
  private orphans?: Frame[];
  private orphanBytes = 0;
  private readonly fileIdleMs?: number;

  constructor(
    private readonly stream: Duplex,
    options: AgentClientOptions = {},
  ) {
    super();
    this.fileIdleMs = options.fileIdleMs;
    if (options.keepOrphans) this.orphans = [];
    stream.on("data", (chunk: Buffer) => this.onData(chunk));
    stream.on("error", (e) => this.onClose(e));
    stream.on("close", () => this.onClose());
    stream.on("end", () => this.onClose());
  }

  /** The agent's last hello, if one arrived. */
  get info(): Hello | undefined {
    return this.helloInfo;
  }

  get closed(): boolean {
    return this.closedError !== undefined;
  }

  /** Resolves with the agent's hello (asking for one if none came yet); the VM is ready when it does. */
  hello(options: { timeoutMs?: number; signal?: AbortSignal } = {}): Promise<Hello> {
    if (this.helloInfo) return Promise.resolve(this.helloInfo);
    if (this.closedError) return Promise.reject(this.closedError);
    // Waiting before asking: a reply may come back within send() (an in-memory channel).
    const hello = new Promise<Hello>((resolve, reject) => this.helloWaiters.push({ resolve, reject }));
    this.send(FrameType.HELLO_REQ, 0);
    return withDeadline(hello, options, "the guest agent did not say hello");
  }

  /**
   * Makes a VM restored from a memory template (or resumed) a machine of its own: its clock, hostname,
   * kernel RNG, environment and address (IdentityRequest). Resolves with the HELLO the agent answers with,
   * which carries the new hostname and identityErrors: the steps that failed ([] if none did; the others
   * were still applied). A malformed request, or an agent without the "identity" capability, rejects
   * with AgentProtocolError. The answer is the HELLO that echoes realtimeNs: not the start-up one, a
   * reconnect's or a hello()'s, which may arrive first.
   */
  async identity(req: IdentityRequest, options: { timeoutMs?: number; signal?: AbortSignal } = {}): Promise<Hello> {
    const what = "the guest agent did not answer IDENTITY";
    if (this.closedError) throw this.closedError;
    if (options.signal?.aborted) return withDeadline(new Promise<never>(() => {}), options, what); // nothing sent
    const payload = encodeIdentity(req);
    let waiter!: (typeof this.identityWaiters)[number];
    const answer = new Promise<Hello>((resolve, reject) => (waiter = { resolve, reject, realtimeNs: req.realtimeNs }));
    this.identityWaiters.push(waiter);
    this.send(FrameType.IDENTITY, 0, payload);
    try {
      const hello = await withDeadline(answer, options, what);
      return { ...hello, identityErrors: hello.identityErrors ?? [] };
    } finally {
      this.identityWaiters = this.identityWaiters.filter((w) => w !== waiter); // one that timed out waits no more
    }
  }

  /** Starts a command. The session reports its pid, output and result; see ExecSession. */
  exec(options: ExecOptions): ExecSession {
    const req: ExecRequest = { argv: options.argv, env: options.env, cwd: options.cwd, user: options.user, stdin: options.stdin, timeoutMs: options.timeoutMs, tty: options.tty };
    return this.open(FrameType.EXEC, encodeExec(req), (id, channel, limits) => new ExecSession(id, options, limits, channel));
  }

  /**
   * The commands the agent holds: after a host restart, the ones its predecessor started, ended ones
   * included until a host acknowledges their exit (the agent sends their EXIT again right after the list).
   * From here on frames of unknown sessions are kept, as with keepOrphans, so that those EXITs (which may
   * arrive with the list itself) reach adopt(); releaseOrphans() ends that.
   */
  listSessions(options: { timeoutMs?: number } = {}): Promise<ListedSession[]> {
    if (this.closedError) return Promise.reject(this.closedError);
    this.orphans ??= [];
    const listed = new Promise<ListedSession[]>((resolve, reject) => this.listWaiters.push({ resolve, reject }));
    this.send(FrameType.LIST, 0);
    return withDeadline(listed, options, "the guest agent did not list its sessions");
  }

  /**
   * Takes over a session another host started (see listSessions): its output and exit come here from
   * now on, starting with what arrived before (kept with keepOrphans). Its stdin is not available.
   */
  adopt(listed: ListedSession, options: Omit<ExecOptions, "argv" | "stdin">): ExecSession {
    const id = listed.id;
    const session = this.register(id, (channel, limits) => new ExecSession(id, { ...options, argv: listed.argv, stdin: false }, limits, channel));
    if (this.closedError) return session;
    if (id >= this.nextId) this.nextId = id + 1 > 0xfffffffe ? 1 : id + 1;
    session.onStarted(listed.pid || undefined); // 0: a command that could not start (its EXIT follows)
    for (const f of this.takeOrphans(id)) this.onFrame(f);
    return session;
  }

  /** Exits that arrived for sessions nobody adopted (commands that ended while no host was there). */
  orphanExits(): Map<number, ExitMessage> {
    const exits = new Map<number, ExitMessage>();
    for (const f of this.orphans ?? []) if (f.type === FrameType.EXIT) exits.set(f.session, decodeExit(f.payload));
    return exits;
  }

  /** Adoption is over: frames of unknown sessions are ignored from now on. */
  releaseOrphans(): void {
    this.orphans = undefined;
    this.orphanBytes = 0;
  }

  private takeOrphans(id: number): Frame[] {
    const mine = this.orphans?.filter((f) => f.session === id) ?? [];
    if (this.orphans && mine.length) {
      this.orphans = this.orphans.filter((f) => f.session !== id);
      this.orphanBytes = this.orphans.reduce((n, f) => n + orphanCost(f), 0);
    }
    return mine;
  }

  private keepOrphan(frame: Frame): void {
    if (!this.orphans || frame.session === 0) return;
    // A copy: the decoder's view would pin the whole chunk it came in (up to 256 KiB for a 1-byte frame),
    // so the cap below would not bound memory. Each frame also counts ORPHAN_OVERHEAD, so that a flood of
    // empty frames for made-up sessions cannot grow the list without bound either.
    this.orphans.push({ ...frame, payload: Buffer.from(frame.payload) });
    this.orphanBytes += orphanCost(frame);
    if (this.orphanBytes <= ORPHAN_BYTES) return;
    // The oldest go in one splice, down to 3/4 of the cap: shift()ing one at a time from a list of 65,536
    // copies the list for every frame, and a flood of tiny frames blocked the event loop for seconds.
    let n = 0;
    while (this.orphanBytes > (ORPHAN_BYTES * 3) / 4 && n < this.orphans.length - 1) this.orphanBytes -= orphanCost(this.orphans[n++]!);
    this.orphans.splice(0, n);
  }

  /** A one-shot file operation; resolves with the entries it produced (stat: one, list: many). */
  async fileOp(req: FsRequest & { op: NonNullable<FsRequest["op"]> }): Promise<FileEntry[]> {
    const session = this.open(FrameType.FS, encodeFs(req), (id, channel, limits) => new FsOpSession(id, channel, limits));
    await session.done;
    return session.entries;
  }

  /** Streams a file out of the guest to onData; see FileReadSession. */
  readFile(path: string, onData: (chunk: Buffer) => void): FileReadSession {
    return this.open(FrameType.READ, encodeFs({ path }), (id, channel, limits) => new FileReadSession(id, channel, limits, onData));
  }

  /** Streams a file into the guest; see FileWriteSession. */
  writeFile(req: Omit<FsRequest, "op" | "path2" | "depth" | "recursive">): FileWriteSession {
    return this.open(FrameType.WRITE, encodeFs(req), (id, channel, limits) => new FileWriteSession(id, channel, limits));
  }

  /**
   * A TCP connection to a port inside the guest (127.0.0.1 unless address says otherwise), as a Duplex
   * under the agent's windows. Resolves once the guest connected; rejects with GuestPortError (refused,
   * unreachable) or AgentCapabilityError for an agent without "forward".
   */
  async forward(port: number, address?: string): Promise<ForwardSession> {
    this.requireCapability("forward");
    const payload = encodeForward({ port, address });
    const session = this.open(FrameType.FORWARD, payload, (id, channel, limits) => new ForwardSession(id, { port, address }, limits, channel));
    await session.connected;
    return session;
  }

  /**
   * Watches a guest directory (and, recursive, everything below it): an async iterable of events with
   * close(). Resolves once the guest watches it; rejects with a GuestFileError (not a directory, not
   * there) or AgentCapabilityError for an agent without "watch".
   */
  async watch(path: string, options: { recursive?: boolean } = {}): Promise<WatchSession> {
    this.requireCapability("watch");
    const session = this.open(FrameType.WATCH, encodeWatch(path, options.recursive === true), (id, channel, limits) => new WatchSession(id, path, limits, channel));
    await session.started;
    return session;
  }

  /** An agent of an older guest lacks newer capabilities: say so instead of sending it an unknown frame. */
  private requireCapability(cap: string): void {
    if (this.closedError) throw this.closedError;
    const caps = this.helloInfo?.capabilities;
    if (caps && !caps.includes(cap)) {
      throw new AgentCapabilityError(`the guest agent of this VM has no "${cap}" capability (it is version ${this.helloInfo?.agentVersion ?? "unknown"})`, {
        details: { capability: cap, capabilities: caps },
        hint: "the VM runs an older guest: restart the VM on the new guest (mvm stop NAME && mvm start NAME)",
      });
    }
  }

  /** Starts a new session: a fresh id, registered, then the request that opens it. */
  private open<S extends ChannelSession>(type: number, payload: Buffer, make: (id: number, channel: SessionChannel, limits: SessionLimits) => S): S {
    const id = this.allocateId();
    const session = this.register(id, (channel, limits) => make(id, channel, limits));
    if (!this.closedError) this.send(type, id, payload);
    return session;
  }

  /** Makes a session for an id with its channel and the agent's limits; on a closed channel it fails at once. */
  private register<S extends ChannelSession>(id: number, make: (channel: SessionChannel, limits: SessionLimits) => S): S {
    // Both clamped to the protocol's values: a guest announcing a 4 GiB window would otherwise be allowed
    // (by the output credit check) to send that much to a paused reader.
    const limits = {
      maxPayload: Math.min(this.helloInfo?.maxPayload || MAX_PAYLOAD, MAX_PAYLOAD),
      window: Math.min(this.helloInfo?.window || WINDOW, WINDOW),
      idleMs: this.fileIdleMs,
    };
    const session = make({ send: (t, p) => this.send(t, id, p), done: () => this.sessions.delete(id) }, limits);
    if (this.closedError) session.fail(this.closedError);
    else this.sessions.set(id, session);
    return session;
  }

  /** Runs a command to completion and collects its output. */
  async run(argv: string[], options: Omit<ExecOptions, "argv"> & { input?: Buffer | string } = {}): Promise<RunResult> {
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    const session = this.exec({
      ...options,
      argv,
      stdin: options.input !== undefined,
      onStdout: (b) => { out.push(b); options.onStdout?.(b); },
      onStderr: (b) => { err.push(b); options.onStderr?.(b); },
    });
    if (options.input !== undefined) {
      await session.write(options.input).catch(() => undefined);
      await session.end().catch(() => undefined);
    }
    const result = await session.result;
    return { ...result, stdout: Buffer.concat(out), stderr: Buffer.concat(err) };
  }

  /** Asks the guest to power off; resolves once the agent acknowledged it (or the channel closed after). */
  powerOff(): Promise<void> {
    if (this.closedError) return Promise.reject(this.closedError);
    this.poweroffRequested = true;
    this.send(FrameType.POWEROFF, 0);
    return new Promise((resolve, reject) => this.poweroffWaiters.push({ resolve, reject }));
  }

  close(): void {
    this.stream.destroy();
    this.onClose();
  }

  private allocateId(): number {
    for (;;) {
      const id = this.nextId;
      this.nextId = this.nextId >= 0xfffffffe ? 1 : this.nextId + 1;
      if (!this.sessions.has(id)) return id;
    }
  }

  private send(type: number, session: number, payload?: Buffer): void {
    if (this.closedError) return;
    if (!payload || payload.length < 4096) {
      this.stream.write(encodeFrame(type, session, payload));
      return;
    }
    // Bulk data (stdin, file writes) goes out as header + payload in one writev, without copying it.
    if (payload.length > MAX_PAYLOAD) throw new RangeError(`frame payload of ${payload.length} bytes is over ${MAX_PAYLOAD}`);
    this.stream.cork();
    this.stream.write(encodeHeader(type, session, payload.length));
    this.stream.write(payload);
    this.stream.uncork();
  }

  private onData(chunk: Buffer): void {
    for (const item of this.decoder.push(chunk)) {
      if (item.kind === "error") this.protocolError(item.code, item.message, item.session);
      else this.onFrame(item.frame);
    }
  }

  private onFrame(frame: Frame): void {
    try {
      this.dispatch(frame);
    } catch (e) {
      // A malformed payload from the guest must not take the host down; it ends that session only.
      this.protocolError(ErrorCode.BAD_MESSAGE, `malformed frame 0x${frame.type.toString(16)}: ${(e as Error).message}`, frame.session);
    }
  }

  private dispatch(frame: Frame): void {
    const session = this.sessions.get(frame.session);
    if (!session && frame.session !== 0 && frame.type !== FrameType.ERROR) return this.keepOrphan(frame);
    switch (frame.type) {
      case FrameType.HELLO: {
        const hello = decodeHello(frame.payload);
        if (hello.protocol !== PROTO_VERSION) {
          this.protocolError(ErrorCode.UNSUPPORTED_VERSION, `the guest agent speaks protocol ${hello.protocol}, this host ${PROTO_VERSION}`, 0);
          return;
        }
        if (this.helloInfo?.agentPid !== undefined && hello.agentPid !== this.helloInfo.agentPid) this.agentRestarted();
        this.helloInfo = hello;
        for (const w of this.helloWaiters.splice(0)) w.resolve(hello);
        const answers = new Fields(frame.payload).all(Field.REALTIME_NS)[0];
        if (answers?.length === 8) {
          const ns = answers.readBigUInt64LE(0);
          for (const w of this.identityWaiters.filter((i) => i.realtimeNs === ns)) w.resolve(hello);
          this.identityWaiters = this.identityWaiters.filter((i) => i.realtimeNs !== ns);
        }
        this.emit("hello", hello);
        return;
      }
      case FrameType.STARTED:
        session?.onStarted?.(decodePid(frame.payload));
        return;
      case FrameType.STDOUT:
        session?.onOutput?.("stdout", frame.payload);
        return;
      case FrameType.STDERR:
        session?.onOutput?.("stderr", frame.payload);
        return;
      case FrameType.STDIN_WINDOW:
        session?.onStdinCredit?.(decodeBytes(frame.payload));
        return;
      case FrameType.EXIT:
        if (!session?.onExit) return;
        session.onExit(decodeExit(frame.payload));
        if (session.exitAck !== false) this.ackExit(frame.session);
        return;
      case FrameType.FS_ENTRIES:
        session?.onEntries?.(decodeEntries(frame.payload));
        return;
      case FrameType.FS_DONE:
        session?.onFsDone?.(decodeFsDone(frame.payload));
        return;
      case FrameType.ERROR: {
        const { code, message } = decodeError(frame.payload);
        this.protocolError(code, message, frame.session, true);
        return;
      }
      case FrameType.WATCH_EVENTS:
        session?.onWatchEvents?.(frame.payload);
        return;
      case FrameType.SESSIONS: {
        const listed = decodeSessions(frame.payload);
        for (const w of this.listWaiters.splice(0)) w.resolve(listed);
        return;
      }
      case FrameType.POWEROFF_ACK:
        for (const w of this.poweroffWaiters.splice(0)) w.resolve();
        return;
      default:
        // Unknown frames from a newer agent are ignored, as the protocol asks.
        return;
    }
  }

  private protocolError(code: number, message: string, sessionId: number, fromAgent = false): void {
    const error = new AgentProtocolError(`${fromAgent ? "guest agent" : "host"}: ${errorCodeName(code)}: ${message}`, {
      details: { code, codeName: errorCodeName(code), session: sessionId },
      hint: "this is a bug or a version mismatch between mvm and the guest agent; rebuild the guest with scripts/setup.sh",
    });
    const session = this.sessions.get(sessionId);
    // An error naming a live session ends it; anything else is reported, and the channel carries on.
    if (session && code !== ErrorCode.UNKNOWN_SESSION) session.fail(error);
    // Frames that were in flight when a session ended are answered with UNKNOWN_SESSION: nothing is wrong.
    else if (code === ErrorCode.UNKNOWN_SESSION && !session) return;
    else if (code === ErrorCode.UNSUPPORTED_VERSION) for (const w of [...this.helloWaiters.splice(0), ...this.identityWaiters.splice(0)]) w.reject(error);
    // The agent refused IDENTITY (BAD_MESSAGE) or does not know it (UNKNOWN_TYPE): no HELLO will answer.
    else if (fromAgent && sessionId === 0 && this.identityWaiters.length) for (const w of this.identityWaiters.splice(0)) w.reject(error);
    else if (this.listenerCount("protocol-error")) this.emit("protocol-error", error);
  }

  /**
   * Tells the agent it may forget an ended session: until then it keeps the exit, and lists it (and sends
   * the EXIT again) for a host that comes after, so a host killed before it took note of an exit cannot
   * lose it. Sent after whatever follows the result has run (setImmediate comes after every promise
   * callback queued now), so the daemon has recorded a VM's command exit before the agent lets go of it.
   * Only the sessions this host knows are acknowledged: an EXIT of an unknown one stays for an adopter.
   */
  private ackExit(id: number): void {
    if (!this.helloInfo?.capabilities.includes("exit-ack")) return;
    setImmediate(() => this.send(FrameType.EXIT_ACK, id));
  }

  /** A new agent process said hello: whatever the old one was running is lost to us. */
  private agentRestarted(): void {
    const error = new AgentRestartedError("the guest agent restarted; commands it was running are lost", {
      hint: "the agent crashed or was killed inside the guest; mvm-init restarted it and the VM is still up",
    });
    for (const s of [...this.sessions.values()]) s.fail(error);
    this.sessions.clear();
    // The new agent's first HELLO is no answer to an IDENTITY the old one may have half applied.
    for (const w of this.identityWaiters.splice(0)) w.reject(error);
  }

  private onClose(cause?: Error): void {
    if (this.closedError) return;
    this.closedError = new AgentDisconnectedError("the VM went away: the channel to its guest agent closed", {
      cause,
      hint: "the VM stopped or crashed; its console log says why",
    });
    for (const s of [...this.sessions.values()]) s.fail(this.closedError);
    this.sessions.clear();
    for (const w of [...this.helloWaiters.splice(0), ...this.identityWaiters.splice(0)]) w.reject(this.closedError);
    for (const w of this.listWaiters.splice(0)) w.reject(this.closedError);
    // A power-off that closes the channel has done what it was asked.
    for (const w of this.poweroffWaiters.splice(0)) {
      if (this.poweroffRequested) w.resolve();
      else w.reject(this.closedError);
    }
    this.emit("close");
  }
}
