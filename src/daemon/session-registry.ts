// Every command running in a VM, by VM and session id: the VM's own command ("job") and exec sessions.
// A foreground session belongs to the client that started it and dies with its connection. A background
// session outlives its client: it keeps the output (the most recent KEEP_BYTES of it) and its result,
// so any client can re-attach, write its stdin, signal it or wait for it, until it is removed or the VM
// is.

import type { ExecOptions, ExecResult, ExecSession } from "../agent/exec-session.js";
import { InvalidArgumentError, NotFoundError } from "../errors.js";
import { errorResponse } from "./http-errors.js";

/** Output kept per background session; older output is dropped first (the count is reported). */
const KEEP_BYTES = 8 * 1024 * 1024;
/** Ended background sessions kept per VM, oldest forgotten first. */
const KEEP_ENDED = 64;

export type SessionEvent =
  | { type: "started"; pid: number }
  | { type: "stdout" | "stderr"; data: string }
  | ({ type: "exit" } & ExecResult)
  | { type: "error"; error: string; message: string; hint?: string };

export interface SessionInfo {
  id: string;
  argv: string[];
  background: boolean;
  tty: boolean;
  pid?: number;
  startedAt: string;
  state: "running" | "exited" | "failed";
  result?: ExecResult;
  error?: { error: string; message: string; hint?: string };
  /** Bytes of output dropped because nobody read them and the keep limit was reached. */
  droppedBytes: number;
}

/** A listener returns false when it cannot take more for now; it calls resume() when it can. */
type Listener = (e: SessionEvent) => boolean | void;

export class TrackedSession {
  readonly startedAt = new Date().toISOString();
  pid?: number;
  private kept: SessionEvent[] = [];
  private keptBytes = 0;
  droppedBytes = 0;
  private end?: SessionEvent;
  private readonly listeners = new Set<Listener>();
  readonly ended: Promise<void>;
  session!: ExecSession;

  /** The agent's session id, or a name such as "job"; set when the session starts. */
  id = "";

  constructor(
    readonly argv: string[],
    readonly background: boolean,
    readonly tty: boolean,
  ) {
    let done!: () => void;
    this.ended = new Promise((r) => (done = r));
    this.markEnded = done;
  }

  private readonly markEnded: () => void;

  /** Wires the agent session's events to this record. */
  attachSession(session: ExecSession, key?: string): void {
    this.id = key ?? String(session.id);
    this.session = session;
    void session.started.then((pid) => pid !== undefined && ((this.pid = pid), this.emit({ type: "started", pid })));
    session.result.then(
      (r) => this.finish({ type: "exit", ...r }),
      (e: unknown) => this.finish({ type: "error", ...(errorResponse(e).body as { error: string; message: string; hint?: string }) }),
    );
  }

  output(stream: "stdout" | "stderr", data: Buffer): void {
    this.emit({ type: stream, data: data.toString("base64") });
  }

  get info(): SessionInfo {
    const end = this.end;
    return {
      id: this.id,
      argv: this.argv,
      background: this.background,
      tty: this.tty,
      pid: this.pid,
      startedAt: this.startedAt,
      state: !end ? "running" : end.type === "exit" ? "exited" : "failed",
      ...(end?.type === "exit" ? { result: stripType(end) } : {}),
      ...(end?.type === "error" ? { error: { error: end.error, message: end.message, hint: end.hint } } : {}),
      droppedBytes: this.droppedBytes,
    };
  }

  get result(): SessionEvent | undefined {
    return this.end;
  }

  /** Follows the session: kept events first (with history), then live ones, then its end. */
  subscribe(listener: Listener, history: boolean): () => void {
    if (history) for (const e of this.kept) listener(e);
    if (this.end) {
      listener(this.end);
      return () => undefined;
    }
    this.listeners.add(listener);
    return () => {
      this.listeners.delete(listener);
      this.session.resume();
    };
  }

  resume(): void {
    this.session.resume();
  }

  private emit(e: SessionEvent): void {
    if (this.background) this.keep(e);
    let full = false;
    for (const l of this.listeners) full = l(e) === false || full;
    if (full) this.session.pause();
  }

  private keep(e: SessionEvent): void {
    const size = e.type === "stdout" || e.type === "stderr" ? e.data.length : 0;
    this.kept.push(e);
    this.keptBytes += size;
    while (this.keptBytes > KEEP_BYTES && this.kept.length > 1) {
      const old = this.kept.shift()!;
      if (old.type === "stdout" || old.type === "stderr") {
        this.keptBytes -= old.data.length;
        this.droppedBytes += Buffer.byteLength(old.data, "base64");
      }
    }
  }

  private finish(e: SessionEvent): void {
    this.end = e;
    for (const l of this.listeners) l(e);
    this.listeners.clear();
    this.markEnded();
  }
}

function stripType(e: { type: "exit" } & ExecResult): ExecResult {
  const { type: _type, ...rest } = e;
  return rest;
}

export class SessionRegistry {
  private readonly byVm = new Map<string, Map<string, TrackedSession>>();
  /** Told when a command starts and when it ends (the daemon's event bus listens). It must not throw. */
  onCommand?: (what: "start" | "end", vmId: string, session: TrackedSession) => void;

  /**
   * Starts a command through `exec` and tracks it under `key` (the agent session id if not given).
   * Commands a previous daemon started are adopted the same way (their client is gone: background).
   */
  start(vmId: string, exec: (o: ExecOptions) => ExecSession, options: ExecOptions & { background?: boolean }, key?: string): TrackedSession {
    const t = new TrackedSession(options.argv, options.background === true, options.tty !== undefined);
    const session = exec({
      ...options,
      onStdout: (b) => {
        options.onStdout?.(b);
        t.output("stdout", b);
      },
      onStderr: (b) => {
        options.onStderr?.(b);
        t.output("stderr", b);
      },
    });
    t.attachSession(session, key);
    let m = this.byVm.get(vmId);
    if (!m) this.byVm.set(vmId, (m = new Map<string, TrackedSession>()));
    m.set(t.id, t);
    this.onCommand?.("start", vmId, t);
    // Foreground sessions are forgotten when they end; background ones wait to be read or removed.
    void t.ended.then(() => {
      this.onCommand?.("end", vmId, t);
      return t.background ? this.trimEnded(vmId) : m.delete(t.id);
    });
    return t;
  }

  list(vmId: string): SessionInfo[] {
    return [...(this.byVm.get(vmId)?.values() ?? [])].map((s) => s.info);
  }

  get(vmId: string, vmName: string, id: string): TrackedSession {
    const s = this.byVm.get(vmId)?.get(id);
    if (!s) throw new NotFoundError(`VM ${vmName} has no command ${id}`, { hint: `mvm session ls ${vmName} lists its commands; ended ones are forgotten once removed` });
    return s;
  }

  /** Sends a signal to a running command. */
  signal(vmId: string, vmName: string, id: string, signo: number): void {
    if (!Number.isInteger(signo) || signo < 1 || signo > 64) throw new InvalidArgumentError(`invalid signal ${signo}`, { hint: "give a signal number between 1 and 64" });
    const s = this.get(vmId, vmName, id);
    if (s.result) throw new NotFoundError(`command ${id} of VM ${vmName} has ended already`, { hint: "mvm session ls shows how it ended" });
    s.session.kill(signo);
  }

  /** Kills a command if it still runs, and forgets it. */
  remove(vmId: string, vmName: string, id: string): void {
    const s = this.get(vmId, vmName, id);
    if (!s.result) s.session.kill(9);
    this.byVm.get(vmId)?.delete(id);
  }

  /** The VM is gone: forget its commands (they failed with it). */
  dropVm(vmId: string): void {
    this.byVm.delete(vmId);
  }

  private trimEnded(vmId: string): void {
    const m = this.byVm.get(vmId);
    if (!m) return;
    const ended = [...m.values()].filter((s) => s.result && s.background);
    for (const s of ended.slice(0, Math.max(0, ended.length - KEEP_ENDED))) m.delete(s.id);
  }
}
