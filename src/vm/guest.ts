// A running VM as this process holds it: its QEMU, QMP monitor, agent channel and console, built once the
// VM is ready (launch.ts) and not reshaped from outside afterwards. One AbortController per VM owns its
// timers and listeners; whatever ends QEMU, the sockets (and a temporary directory) go with it.

import { rm, unlink } from "node:fs/promises";
import type { Socket } from "node:net";
import type { AgentClient } from "../agent/client.js";
import type { Hello } from "../agent/messages.js";
import { withDeadline } from "../deadline.js";
import type { ArgvEntry } from "../qemu/microvm-argv.js";
import type { QmpClient } from "../qemu/qmp-client.js";
import type { ConsoleTap } from "./console-tap.js";
import { readTail, vmFiles } from "./layout.js";
import type { QemuExit, QemuProcess } from "./qemu-process.js";
import { waitReady, AGENT_READY } from "./readiness.js";
import { closeVmSockets, nextConnection, type VmSockets } from "./sockets.js";

/** Milliseconds since spawn, as the host saw them, plus the guest's own uptime marks. */
export interface BootTimeline {
  qemuConnectedMs?: number;
  qmpReadyMs?: number;
  /** A restored guest: when its saved state was in and it ran again. */
  restoredMs?: number;
  firstConsoleMs?: number;
  initLineMs?: number;
  helloMs?: number;
  guestInitUptimeMs?: number;
  guestHelloUptimeMs?: number;
}

/** How a stop ended: the guest powered off, QMP quit, SIGTERM, or SIGKILL (the ladder's rungs). */
export type StopRung = "guest" | "qmp-quit" | "sigterm" | "sigkill" | "already-exited";

export interface GuestParts {
  process: QemuProcess;
  argv: ArgvEntry[];
  dir: string;
  /** A temporary directory made for this launch, removed with the VM. */
  ownsDir: boolean;
  sockets: VmSockets;
  console: ConsoleTap;
  qmp: QmpClient;
  agent?: AgentClient;
  channel?: Socket;
  hello?: Hello;
  timeline: BootTimeline;
  t0: number;
  controller: AbortController;
  /** Found running (not launched here). */
  adopted: boolean;
  /** QEMU's stderr so far (one-off launches, whose output is piped). */
  stderr: () => string;
}

export class Guest implements AsyncDisposable {
  readonly process: QemuProcess;
  readonly argv: ArgvEntry[];
  readonly dir: string;
  readonly qmp: QmpClient;
  readonly timeline: Readonly<BootTimeline>;
  readonly exited: Promise<QemuExit>;
  readonly adopted: boolean;
  private agentClient?: AgentClient;
  private agentChannel?: Socket;
  private helloMsg?: Hello;
  private shutdownAnnounced = false;
  private stopping?: Promise<{ exit: QemuExit; via: StopRung }>;
  private cleaned?: Promise<void>;

  constructor(private readonly parts: GuestParts) {
    this.process = parts.process;
    this.argv = parts.argv;
    this.dir = parts.dir;
    this.qmp = parts.qmp;
    this.timeline = parts.timeline;
    this.adopted = parts.adopted;
    // QEMU's end counts once its monitor has said its last (a SHUTDOWN event may still sit unread on the
    // socket when the process exit arrives): otherwise a guest power-off could be recorded as a crash.
    const monitorDrained = new Promise<void>((resolve) => (parts.qmp.closed ? resolve() : parts.qmp.once("close", () => resolve())));
    this.exited = parts.process.exited.then(async (exit) => {
      await Promise.race([monitorDrained, new Promise<void>((r) => setTimeout(r, 1000).unref())]);
      return exit;
    });
    this.agentClient = parts.agent;
    this.agentChannel = parts.channel;
    this.helloMsg = parts.hello;
    const onEvent = (e: { event: string; data?: unknown }) => {
      if (e.event === "SHUTDOWN" && (e.data as { guest?: boolean } | undefined)?.guest) this.shutdownAnnounced = true;
    };
    // The monitor closing is the first sign an adopted QEMU has gone.
    const onClose = () => this.process.check();
    this.qmp.on("event", onEvent);
    this.qmp.on("close", onClose);
    parts.controller.signal.addEventListener("abort", () => {
      this.qmp.off("event", onEvent);
      this.qmp.off("close", onClose);
    }, { once: true });
    void this.exited.then(() => this.cleanup());
  }

  get agent(): AgentClient | undefined {
    return this.agentClient;
  }

  /** The raw agent channel (the Unix socket QEMU connected to). */
  get channel(): Socket | undefined {
    return this.agentChannel;
  }

  get hello(): Hello | undefined {
    return this.helloMsg;
  }

  /** QEMU announced a guest-initiated shutdown (power-off or reboot) before it ended. */
  get guestShutdown(): boolean {
    return this.shutdownAnnounced;
  }

  get running(): boolean {
    return this.process.running;
  }

  /** Aborted when the VM is cleaned up: for timers and listeners tied to this VM. */
  get signal(): AbortSignal {
    return this.parts.controller.signal;
  }

  now(): number {
    return performance.now() - this.parts.t0;
  }

  /** The serial console so far (its last 256 KiB). */
  console(): string {
    return this.parts.console.tail();
  }

  qemuStderr(): string {
    return this.parts.ownsDir ? this.parts.stderr() : readTail(vmFiles(this.dir).qemuLog, 16 * 1024);
  }

  /** Follows console output and sends keystrokes to it; `close` detaches. */
  openConsole(onData: (b: Buffer) => void): { write: (b: Buffer, onDrain?: () => void) => boolean; close: () => void } {
    const close = this.parts.console.listen(onData);
    return { write: (b, onDrain) => this.parts.console.write(b, onDrain), close };
  }

  /**
   * Stops the VM down a ladder, each rung with its own deadline: ask the guest to power off, then QMP
   * `quit`, then SIGTERM, then SIGKILL. Cleanup always runs; a second call returns the same promise.
   */
  stop(options: { timeoutMs?: number } = {}): Promise<{ exit: QemuExit; via: StopRung }> {
    this.stopping ??= this.runStopLadder(options.timeoutMs ?? 10000).finally(() => this.cleanup());
    return this.stopping;
  }

  private async runStopLadder(guestMs: number): Promise<{ exit: QemuExit; via: StopRung }> {
    if (!this.running) return { exit: await this.exited, via: "already-exited" };
    const waitExit = (ms: number) => withDeadline(this.exited, { timeoutMs: ms }, "QEMU did not exit").catch(() => undefined);
    if (this.agent && !this.agent.closed) {
      await withDeadline(this.agent.powerOff(), { timeoutMs: guestMs }, "no power-off acknowledgement").catch(() => undefined);
      const exit = await waitExit(guestMs);
      if (exit) return { exit, via: "guest" };
    }
    if (!this.qmp.closed) {
      await this.qmp.execute("quit", undefined, { timeoutMs: 2000 }).catch(() => undefined);
      const exit = await waitExit(3000);
      if (exit) return { exit, via: "qmp-quit" };
    }
    this.process.kill("SIGTERM");
    const exit = await waitExit(3000);
    if (exit) return { exit, via: "sigterm" };
    this.process.kill("SIGKILL");
    return { exit: await this.exited, via: "sigkill" };
  }

  /** SIGKILLs QEMU and cleans up. Safe to call twice. */
  async kill(): Promise<QemuExit> {
    this.process.kill("SIGKILL");
    const exit = await this.exited;
    await this.cleanup();
    return exit;
  }

  /**
   * Drops the agent channel and takes the next one: QEMU reconnects to the socket within a second
   * (reconnect=1), as it does when a restarted daemon listens again. Commands the old channel was
   * following are not re-attached. `keepOrphans` makes the new channel keep frames of commands it does not
   * know yet, as a restarted daemon's does (to adopt them).
   */
  async reconnect(timeoutMs = 10000, options: { keepOrphans?: boolean } = {}): Promise<Hello> {
    const next = nextConnection(this.parts.sockets.agent);
    this.agentClient?.close();
    const ready = await withDeadline(
      waitReady(AGENT_READY, { agentConnected: next, console: this.parts.console, adopted: options.keepOrphans ?? false, exitedEarly: new Promise<never>(() => undefined), now: () => this.now() }),
      { timeoutMs },
      "QEMU did not reconnect to the agent socket",
    );
    this.agentClient = ready.agent;
    this.agentChannel = ready.channel;
    this.helloMsg = ready.hello;
    return ready.hello!;
  }

  cleanup(): Promise<void> {
    this.cleaned ??= (async () => {
      this.parts.controller.abort();
      this.agentClient?.close();
      this.qmp.close();
      closeVmSockets(this.parts.sockets);
      const files = vmFiles(this.dir);
      if (this.parts.ownsDir) await rm(this.dir, { recursive: true, force: true });
      else await Promise.all([files.agentSocket, files.qmpSocket, files.consoleSocket, files.config].map((f) => unlink(f).catch(() => undefined)));
    })();
    return this.cleaned;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }
}
