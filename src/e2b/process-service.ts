// envd's process.Process service on mvm's exec sessions. Every command runs as a background session of the
// daemon's SessionRegistry, so it survives its client disconnecting (Connect re-attaches by pid or tag) and
// ends only by itself, by a signal, or when its request's Connect-Timeout-Ms runs out (the agent kills its
// whole cgroup then). Events are envd's: start {pid}, data {stdout|stderr|pty}, keepalive, end.

import type { IncomingMessage, ServerResponse } from "node:http";
import type { VmManager } from "../daemon/vm-manager.js";
import type { SessionEvent, TrackedSession } from "../daemon/session-registry.js";
import { ConnectStream } from "./connect-stream.js";
import { E2bError } from "./errors.js";

export interface SandboxRef {
  vmId: string;
  /** The user the request runs as (Basic auth; default root). */
  user: string;
}

interface ProcessConfig {
  cmd: string;
  args: string[];
  envs: Record<string, string>;
  cwd?: string;
}

interface Tracked {
  session: TrackedSession;
  config: ProcessConfig;
  tag?: string;
}

const SIGNALS: Record<string, number> = { SIGNAL_SIGKILL: 9, SIGNAL_SIGTERM: 15, SIGNAL_SIGINT: 2, SIGNAL_SIGHUP: 1 };
/** Processes kept per sandbox after they end (for Connect to a just-ended pid), oldest forgotten first. */
const KEEP_ENDED = 64;

export const homeOf = (user: string): string => (user === "root" ? "/root" : `/home/${user}`);

function str(v: unknown, what: string): string {
  if (typeof v !== "string") throw new E2bError(`${what} must be a string`, "invalid_argument");
  return v;
}

function strings(v: unknown, what: string): string[] {
  if (v === undefined) return [];
  if (!Array.isArray(v) || v.some((x) => typeof x !== "string")) throw new E2bError(`${what} must be an array of strings`, "invalid_argument");
  return v as string[];
}

function envMap(v: unknown): Record<string, string> {
  if (v === undefined) return {};
  if (!v || typeof v !== "object" || Array.isArray(v) || Object.entries(v).some(([k, x]) => typeof x !== "string" || !/^[A-Za-z_][A-Za-z0-9_]*$/.test(k))) {
    throw new E2bError("envs must map variable names (letters, digits, _) to strings", "invalid_argument");
  }
  return v as Record<string, string>;
}

function size(v: unknown): { rows: number; cols: number } {
  const s = (v as { size?: { rows?: unknown; cols?: unknown } } | undefined)?.size;
  const rows = Number(s?.rows);
  const cols = Number(s?.cols);
  if (!Number.isInteger(rows) || !Number.isInteger(cols) || rows < 1 || cols < 1 || rows > 10_000 || cols > 10_000) throw new E2bError("pty.size needs rows and cols from 1 to 10000", "invalid_argument");
  return { rows, cols };
}

/** base64 (proto3 JSON bytes), standard or URL alphabet. */
function bytes(v: unknown, what: string): Buffer {
  if (typeof v !== "string" || !/^[A-Za-z0-9+/_-]*={0,2}$/.test(v)) throw new E2bError(`${what} must be base64`, "invalid_argument");
  return Buffer.from(v, "base64");
}

export class ProcessService {
  private readonly byVm = new Map<string, Map<number, Tracked>>();

  constructor(private readonly manager: VmManager) {}

  private processes(vmId: string): Map<number, Tracked> {
    let m = this.byVm.get(vmId);
    if (!m) this.byVm.set(vmId, (m = new Map<number, Tracked>()));
    return m;
  }

  /**
   * The process's session as the daemon tracks it now. A pause (mvm suspend) ends the daemon's hold on every
   * command of the sandbox while they live on in the saved guest; the resume adopts them again as new
   * sessions under the same ids, which this takes over.
   */
  private current(vmId: string, p: Tracked): TrackedSession {
    if (p.session.result) {
      try {
        const now = this.manager.session(vmId, p.session.id);
        if (now !== p.session && !now.result) p.session = now;
      } catch {
        /* not adopted: it ended with the sandbox's pause or before */
      }
    }
    return p.session;
  }

  /** The process a selector names ({pid} or {tag}), or not_found. */
  private find(vmId: string, selector: unknown): Tracked {
    const s = (selector ?? {}) as { pid?: unknown; tag?: unknown };
    const byPid = s.pid !== undefined ? this.processes(vmId).get(Number(s.pid)) : undefined;
    if (byPid) this.current(vmId, byPid);
    const hit = s.pid !== undefined ? byPid : s.tag !== undefined ? [...this.processes(vmId).values()].find((p) => p.tag === s.tag && !this.current(vmId, p).result) : undefined;
    if (!hit) throw new E2bError(`process ${s.pid !== undefined ? `with pid ${JSON.stringify(s.pid)}` : `with tag ${JSON.stringify(s.tag)}`} not found`, "not_found");
    return hit;
  }

  private running(vmId: string, selector: unknown): Tracked {
    const p = this.find(vmId, selector);
    if (p.session.result) throw new E2bError(`process ${p.session.pid} has ended`, "not_found");
    return p;
  }

  forget(vmId: string): void {
    this.byVm.delete(vmId);
  }

  /** Start: the command's events as a stream, from its start to its end. */
  start(sbx: SandboxRef, msg: Record<string, unknown>, req: IncomingMessage, res: ServerResponse): void {
    const p = (msg.process ?? {}) as Record<string, unknown>;
    const config: ProcessConfig = { cmd: str(p.cmd, "process.cmd"), args: strings(p.args, "process.args"), envs: envMap(p.envs), ...(p.cwd === undefined ? {} : { cwd: str(p.cwd, "process.cwd") }) };
    if (!config.cmd) throw new E2bError("process.cmd is empty", "invalid_argument");
    const tty = msg.pty === undefined || msg.pty === null ? undefined : size(msg.pty);
    const timeout = Number(req.headers["connect-timeout-ms"]);
    const home = homeOf(sbx.user);
    const session = this.manager.exec(sbx.vmId, {
      argv: [config.cmd, ...config.args],
      // envd's order: the user's basics, then the sandbox's (the VM's env, set in the agent), then the command's.
      env: { HOME: home, USER: sbx.user, LOGNAME: sbx.user, ...config.envs },
      cwd: config.cwd ?? home,
      user: sbx.user === "root" ? undefined : sbx.user,
      // proto3 `optional bool stdin`: absent keeps stdin open (envd's default); false gives /dev/null.
      stdin: msg.stdin !== false,
      tty,
      timeoutMs: Number.isFinite(timeout) && timeout > 0 ? timeout : undefined,
      background: true,
    });
    const tracked: Tracked = { session, config, ...(typeof msg.tag === "string" ? { tag: msg.tag } : {}) };
    void session.ended.then(() => this.trim(sbx.vmId));
    const stream = new ConnectStream(req, res, { event: { keepalive: {} } });
    let registered = false;
    this.follow(session, stream, true, () => {
      if (registered || session.pid === undefined) return;
      registered = true;
      this.processes(sbx.vmId).set(session.pid, tracked);
    });
  }

  /** Connect: a running (or just ended) process's events from now on. */
  connect(sbx: SandboxRef, msg: Record<string, unknown>, req: IncomingMessage, res: ServerResponse): void {
    const p = this.find(sbx.vmId, msg.process);
    const stream = new ConnectStream(req, res, { event: { keepalive: {} } });
    stream.send({ event: { start: { pid: p.session.pid } } });
    this.follow(p.session, stream, false);
  }

  /** Forwards a session's events to a stream; the client leaving only stops the forwarding. */
  private follow(session: TrackedSession, stream: ConnectStream, history: boolean, onStart?: () => void): void {
    const tty = session.tty;
    const off = session.subscribe((e: SessionEvent) => {
      switch (e.type) {
        case "started":
          onStart?.();
          if (history) stream.send({ event: { start: { pid: e.pid } } });
          return true;
        case "stdout":
        case "stderr": {
          const ok = stream.send({ event: { data: { [tty ? "pty" : e.type]: e.data } } });
          if (!ok) stream.onDrain(() => session.resume());
          return ok;
        }
        case "exit": {
          const code = e.exitCode ?? (e.signal !== null ? -1 : e.status);
          const status = e.signal !== null ? `signal: ${signalName(e.signal)}` : `exit status ${e.status}`;
          const error = e.timedOut ? "command timed out and was killed" : e.message ?? (e.status !== 0 ? status : undefined);
          stream.send({ event: { end: { exitCode: code, exited: e.signal === null, status, ...(error ? { error } : {}) } } });
          stream.end();
          return true;
        }
        case "error":
          stream.end(new E2bError(e.message, e.error === "AGENT_NOT_CONNECTED" || e.error === "AGENT_RESTARTED" ? "unavailable" : "internal"));
          return true;
      }
    }, history);
    stream.onClose = off;
  }

  list(sbx: SandboxRef): Record<string, unknown> {
    const processes = [...this.processes(sbx.vmId).entries()]
      .filter(([, p]) => !this.current(sbx.vmId, p).result)
      .map(([pid, p]) => ({ pid, ...(p.tag ? { tag: p.tag } : {}), config: { cmd: p.config.cmd, args: p.config.args, envs: p.config.envs, ...(p.config.cwd ? { cwd: p.config.cwd } : {}) } }));
    return { processes };
  }

  async sendInput(sbx: SandboxRef, msg: Record<string, unknown>): Promise<Record<string, unknown>> {
    const p = this.running(sbx.vmId, msg.process);
    const input = (msg.input ?? {}) as { stdin?: unknown; pty?: unknown };
    const data = bytes(input.stdin ?? input.pty, "input");
    await p.session.session.write(data);
    return {};
  }

  async closeStdin(sbx: SandboxRef, msg: Record<string, unknown>): Promise<Record<string, unknown>> {
    await this.running(sbx.vmId, msg.process).session.session.end();
    return {};
  }

  sendSignal(sbx: SandboxRef, msg: Record<string, unknown>): Record<string, unknown> {
    const p = this.running(sbx.vmId, msg.process);
    const signo = SIGNALS[String(msg.signal)];
    if (signo === undefined) throw new E2bError(`unknown signal ${JSON.stringify(msg.signal)}`, "invalid_argument", 400);
    p.session.session.kill(signo);
    return {};
  }

  update(sbx: SandboxRef, msg: Record<string, unknown>): Record<string, unknown> {
    const p = this.running(sbx.vmId, msg.process);
    if (msg.pty !== undefined && msg.pty !== null) {
      const { rows, cols } = size(msg.pty);
      p.session.session.resize(rows, cols);
    }
    return {};
  }

  private trim(vmId: string): void {
    const m = this.byVm.get(vmId);
    if (!m) return;
    const ended = [...m.entries()].filter(([, p]) => p.session.result);
    for (const [pid] of ended.slice(0, Math.max(0, ended.length - KEEP_ENDED))) m.delete(pid);
  }
}

const NAMES: Record<number, string> = { 1: "hangup", 2: "interrupt", 9: "killed", 15: "terminated" };
const signalName = (n: number) => NAMES[n] ?? `signal ${n}`;
