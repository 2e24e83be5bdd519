// The commands of VMs: each VM's own command (the "job": its output log, its exit, which powers the VM
// off), exec and background sessions (SessionRegistry), and taking over the commands a previous daemon
// started (adopt).

import type { ExecResult } from "../agent/exec-session.js";
import type { Guest } from "../vm/launch.js";
import type { VmExit, VmRecord, VmStore } from "../store/vm-store.js";
import type { AgentClient } from "../agent/client.js";
import type { ListedSession } from "../agent/messages.js";
import { isLive } from "../vm/state.js";
import { JobLog, type OutputEvent } from "./job-log.js";
import { SessionRegistry } from "./session-registry.js";

export interface ExitEvent {
  type: "exit";
  commandExit?: VmExit;
  state: string;
}

/** What follows a VM's command: its output and, at the end, its exit. */
export type AttachEvent = OutputEvent | ExitEvent;

export class VmCommands {
  /** Running commands: the VM's own command ("job"), exec sessions, background commands. */
  readonly sessions = new SessionRegistry();
  private readonly jobs = new Map<string, JobLog>();
  private readonly commandDone = new Map<string, Array<(e: ExitEvent) => void>>();

  constructor(private readonly o: { store: VmStore; dirOf: (id: string) => string; stop: (id: string) => Promise<unknown> }) {}

  jobLog(id: string): JobLog {
    let log = this.jobs.get(id);
    if (!log) this.jobs.set(id, (log = new JobLog(this.o.dirOf(id))));
    return log;
  }

  /** The VM was removed: nothing of its commands is kept. */
  forget(id: string): void {
    this.jobs.delete(id);
    this.sessions.dropVm(id);
  }

  /** Starts the VM's own command; its output goes to the job log. */
  run(rec: VmRecord, guest: Guest): void {
    const log = this.jobLog(rec.id);
    const spec = rec.spec;
    const agent = guest.agent!;
    const { session } = this.sessions.start(
      rec.id,
      (o) => agent.exec(o),
      {
        argv: spec.command!,
        env: spec.env,
        cwd: spec.workdir,
        user: spec.user,
        onStdout: (b) => log.write("stdout", b),
        onStderr: (b) => log.write("stderr", b),
      },
      "job",
    );
    this.follow(rec, session.result);
  }

  /**
   * Commands a previous daemon started in a VM it re-adopted: listed by the agent, tracked again (output
   * from now on, signals, wait). The VM's own command is the first session of its boot (id 1): it goes on
   * feeding the job log, and its end still powers the VM off, even if it ended while no daemon was there.
   * The agent lists ended commands too, until a host acknowledges their exit, and sends their EXIT again
   * after the list: a command that ended before this daemon came (or while it was asking) is adopted and
   * ends at once. Frames kept from before the list (orphans) are how an older agent's exits are found.
   */
  async adopt(rec: VmRecord, guest: Guest): Promise<void> {
    const agent = guest.agent;
    if (!agent) return;
    try {
      const listed = await listWithRetries(agent);
      const hasJob = rec.spec.command !== undefined && rec.commandExit === undefined;
      for (const l of listed) {
        const isJob = hasJob && l.id === 1;
        const log = isJob ? this.jobLog(rec.id) : undefined;
        const t = this.sessions.start(
          rec.id,
          (o) => agent.adopt(l, o),
          { argv: l.argv, background: !isJob, tty: l.tty ? { rows: 24, cols: 80 } : undefined, onStdout: (b) => log?.write("stdout", b), onStderr: (b) => log?.write("stderr", b) },
          isJob ? "job" : String(l.id),
        );
        if (isJob) this.follow(rec, t.session.result);
      }
      const jobExit = agent.orphanExits().get(1);
      if (hasJob && jobExit && !listed.some((l) => l.id === 1)) {
        const status = jobExit.timedOut ? 124 : jobExit.signal !== null ? 128 + jobExit.signal : (jobExit.exitCode ?? 255);
        this.follow(rec, Promise.resolve({ exitCode: jobExit.exitCode, signal: jobExit.signal, status, message: jobExit.message, durationMs: 0 }));
      }
    } catch {
      /* an agent that cannot list (older, or gone): its commands stay unknown to this daemon */
    } finally {
      agent.releaseOrphans();
    }
  }

  /** The VM's own command: its exit is recorded, and like a container's, its end powers the VM off. */
  private follow(rec: VmRecord, result: Promise<ExecResult>): void {
    void result
      .then(
        (r): VmExit => ({ exitCode: r.exitCode, signal: r.signal, status: r.status, at: new Date().toISOString(), reason: r.message ?? "the command ended", message: r.message }),
        (e: Error): VmExit => ({ exitCode: null, signal: null, status: 125, at: new Date().toISOString(), reason: e.message, message: e.message }),
      )
      .then(async (commandExit) => {
        // The record may be gone (removed by force meanwhile): then there is nothing to write or stop.
        const now = this.o.store.find(rec.id);
        // Suspended: the command lives on in the saved guest, and resume adopts it again.
        if (now?.suspended && commandExit.status === 125) return;
        if (now) this.o.store.update(rec.id, { commandExit });
        // Like a container: when the command ends, the VM powers off.
        if (now && (now.state === "running" || now.state === "paused")) await this.o.stop(rec.id).catch(() => undefined);
      })
      // Never an unhandled rejection in the daemon: whatever failed, followers still hear the end.
      .catch(() => undefined)
      .finally(() => this.finish(rec.id));
  }

  /** The VM stopped: whoever follows its command hears the end. */
  finish(id: string): void {
    const rec = this.o.store.find(id);
    const event: ExitEvent = { type: "exit", commandExit: rec?.commandExit, state: rec?.state ?? "removed" };
    for (const w of this.commandDone.get(id) ?? []) w(event);
    this.commandDone.delete(id);
  }

  /** Follows the VM's command: past output, live output, then its exit. Returns an unsubscribe function. */
  attach(rec: VmRecord, onEvent: (e: AttachEvent) => void, options: { history?: boolean } = {}): () => void {
    const log = this.jobLog(rec.id);
    if (options.history) for (const e of log.history()) onEvent(e);
    const off = log.subscribe(onEvent);
    const done = (e: ExitEvent) => {
      off();
      onEvent(e);
    };
    // A VM that has already stopped has nothing more to say: its last exit, at once.
    if (rec.state !== "created" && !isLive(rec.state)) {
      queueMicrotask(() => done({ type: "exit", commandExit: rec.commandExit, state: rec.state }));
      return off;
    }
    const list = this.commandDone.get(rec.id) ?? [];
    list.push(done);
    this.commandDone.set(rec.id, list);
    return () => {
      off();
      const l = this.commandDone.get(rec.id);
      if (l) l.splice(l.indexOf(done), 1);
    };
  }
}

/**
 * LIST, asked again when an answer is slow (a loaded host, a guest under TCG): a daemon that cannot list
 * would never learn how the VM's own command ends.
 */
async function listWithRetries(agent: AgentClient, attempts = 3): Promise<ListedSession[]> {
  for (let i = 1; ; i++) {
    try {
      return await agent.listSessions({ timeoutMs: 5000 });
    } catch (e) {
      if (i >= attempts || agent.closed) throw e;
    }
  }
}
