// Boots one guest straight from a QEMU argv and connects to its agent: the boot path that the tests and
// the guest benchmark use, and the core the VM layer builds on. Readiness is the agent's hello, with a
// deadline; a failed boot kills QEMU before it throws, with QEMU's output in the error.

import { spawn, type ChildProcess } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AgentClient, withDeadline } from "../agent/client.js";
import type { Hello } from "../agent/messages.js";
import { AgentDisconnectedError, BootError, TimeoutError } from "../errors.js";
import { hostTsc } from "../host/tsc.js";
import { flattenArgv, microvmArgv, type ArgvEntry } from "../qemu/microvm-argv.js";
import { QmpClient } from "../qemu/qmp-client.js";
import { ensureGuestArtifacts, type GuestArtifacts } from "./artifacts.js";
import { writeGuestConfig, type GuestConfig } from "./config-file.js";
import { cmdlineString, defaultCmdline } from "./kernel-cmdline.js";

export interface LaunchOptions {
  qemuBinary?: string;
  accel?: "kvm" | "tcg";
  /**
   * false boots without ACPI: QEMU names the virtio-mmio devices on the kernel command line. The guest then
   * cannot read its configuration file (6.1's fw_cfg driver needs ACPI), so `config` is ignored by it.
   */
  acpi?: boolean;
  cpus?: number;
  memoryMiB?: number;
  artifacts?: GuestArtifacts;
  /** A kernel of the user's own (vmlinux or bzImage) instead of mvm's; its HZ is unknown, so no lpj hint. */
  kernel?: string;
  /** An initramfs of the user's own instead of mvm's. */
  initrd?: string;
  /** Replaces the default kernel command line. */
  cmdline?: string;
  /** Added to the default kernel command line. */
  append?: string;
  config?: GuestConfig;
  /** Appended to QEMU's argv (disks in tests). */
  extraArgs?: string[];
  helloTimeoutMs?: number;
  signal?: AbortSignal;
}

/** Milliseconds since spawn, as the host saw them, plus the guest's own uptime marks. */
export interface BootTimeline {
  qemuConnectedMs?: number;
  qmpReadyMs?: number;
  firstConsoleMs?: number;
  initLineMs?: number;
  helloMs?: number;
  guestInitUptimeMs?: number;
  guestHelloUptimeMs?: number;
}

export interface QemuExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** How a stop ended: the guest powered off, QMP quit, SIGTERM, or SIGKILL (the ladder's rungs). */
export type StopRung = "guest" | "qmp-quit" | "sigterm" | "sigkill" | "already-exited";

const CONSOLE_CAP = 256 * 1024;

export class Guest implements AsyncDisposable {
  private consoleText = "";
  private stderrText = "";
  readonly exited: Promise<QemuExit>;
  readonly timeline: BootTimeline = {};
  hello?: Hello;
  agent?: AgentClient;
  qmp?: QmpClient;
  /** The raw agent channel (the Unix socket QEMU connected to). */
  channel?: Socket;

  constructor(
    readonly process: ChildProcess,
    readonly argv: ArgvEntry[],
    readonly dir: string,
    private readonly server: Server,
    private readonly qmpServer: Server,
    private readonly t0: number,
  ) {
    this.exited = new Promise((resolve) => process.once("exit", (code, signal) => resolve({ code, signal })));
    // Whatever ends QEMU, the socket and the VM's directory go with it.
    void this.exited.then(() => this.cleanup());
    process.stdout!.on("data", (b: Buffer) => {
      this.timeline.firstConsoleMs ??= this.now();
      this.consoleText = (this.consoleText + b.toString("latin1")).slice(-CONSOLE_CAP);
      if (this.timeline.initLineMs === undefined && this.consoleText.includes("mvm-init: started")) this.timeline.initLineMs = this.now();
    });
    process.stderr!.on("data", (b: Buffer) => (this.stderrText = (this.stderrText + b.toString()).slice(-CONSOLE_CAP)));
  }

  now(): number {
    return performance.now() - this.t0;
  }

  /** The serial console so far (capped to the last 256 KiB). */
  console(): string {
    return this.consoleText;
  }

  qemuStderr(): string {
    return this.stderrText;
  }

  get running(): boolean {
    return this.process.exitCode === null && this.process.signalCode === null;
  }

  /**
   * Stops the VM down a ladder, each rung with its own deadline: ask the guest to power off, then QMP
   * `quit`, then SIGTERM, then SIGKILL. Cleanup always runs; a second call returns the same promise.
   */
  stop(options: { timeoutMs?: number } = {}): Promise<{ exit: QemuExit; via: StopRung }> {
    this.stopping ??= this.runStopLadder(options.timeoutMs ?? 10000).finally(() => this.cleanup());
    return this.stopping;
  }

  private stopping?: Promise<{ exit: QemuExit; via: StopRung }>;

  private async runStopLadder(guestMs: number): Promise<{ exit: QemuExit; via: StopRung }> {
    if (!this.running) return { exit: await this.exited, via: "already-exited" };
    const waitExit = (ms: number) => withDeadline(this.exited, { timeoutMs: ms }, "QEMU did not exit").catch(() => undefined);
    if (this.agent && !this.agent.closed) {
      await withDeadline(this.agent.powerOff(), { timeoutMs: guestMs }, "no power-off acknowledgement").catch(() => undefined);
      const exit = await waitExit(guestMs);
      if (exit) return { exit, via: "guest" };
    }
    if (this.qmp && !this.qmp.closed) {
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

  /** SIGKILLs QEMU and cleans up the VM's directory. Safe to call twice. */
  async kill(): Promise<QemuExit> {
    if (this.running) this.process.kill("SIGKILL");
    const exit = await this.exited;
    await this.cleanup();
    return exit;
  }

  /**
   * Drops the agent channel and takes the next one: QEMU reconnects to the socket within a second
   * (reconnect=1), as it will when a restarted daemon listens again. Commands the old channel was
   * following are not re-attached.
   */
  async reconnect(timeoutMs = 10000): Promise<Hello> {
    const next = new Promise<Socket>((resolve) => this.server.once("connection", resolve));
    this.agent?.close();
    const socket = await withDeadline(next, { timeoutMs }, "QEMU did not reconnect to the agent socket");
    this.channel = socket;
    this.agent = new AgentClient(socket);
    this.hello = await this.agent.hello({ timeoutMs });
    return this.hello;
  }

  private cleaned?: Promise<void>;
  cleanup(): Promise<void> {
    this.cleaned ??= (async () => {
      this.agent?.close();
      this.qmp?.close();
      this.server.close();
      this.qmpServer.close();
      await rm(this.dir, { recursive: true, force: true });
    })();
    return this.cleaned;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }
}

export async function launchGuest(options: LaunchOptions = {}): Promise<Guest> {
  const accel = options.accel ?? "tcg";
  const artifacts = options.artifacts ?? (await ensureGuestArtifacts());
  const dir = await mkdtemp(join(tmpdir(), "mvm-"));
  const agentSocket = join(dir, "agent.sock");
  const qmpSocket = join(dir, "qmp.sock");
  let configFile: string | undefined;
  if (options.config) {
    configFile = join(dir, "config");
    await writeGuestConfig(configFile, options.config);
  }
  const cmdline =
    options.cmdline ??
    [
      cmdlineString(defaultCmdline({ accel, acpi: options.acpi, tsc: hostTsc(), kernelHz: options.kernel ? undefined : artifacts.kernel.info.hz })),
      options.append,
    ].filter(Boolean).join(" ");
  const argv = microvmArgv({
    accel,
    acpi: options.acpi,
    cpus: options.cpus ?? 1,
    memoryMiB: options.memoryMiB ?? 256,
    kernel: options.kernel ?? artifacts.kernel.vmlinux,
    initrd: options.initrd ?? artifacts.initramfs.path,
    cmdline,
    agentSocket,
    qmpSocket,
    configFile,
    console: { kind: "stdio" },
  });
  if (options.extraArgs) argv.push({ args: options.extraArgs, reason: "requested by the caller" });

  // Listen before QEMU starts, so its connect never races the socket's creation.
  const listen = async (path: string) => {
    const server = createServer();
    const connection = new Promise<Socket>((resolve) => server.once("connection", resolve));
    await new Promise<void>((resolve, reject) => server.listen(path, resolve).once("error", reject));
    return { server, connection };
  };
  const { server, connection: connected } = await listen(agentSocket);
  const { server: qmpServer, connection: qmpConnected } = await listen(qmpSocket);

  const t0 = performance.now();
  const child = spawn(options.qemuBinary ?? "qemu-system-x86_64", flattenArgv(argv), { stdio: ["ignore", "pipe", "pipe"] });
  const guest = new Guest(child, argv, dir, server, qmpServer, t0);
  const spawnFailed = new Promise<never>((_, reject) =>
    child.once("error", (e) => reject(new BootError(`cannot start QEMU: ${e.message}`, { hint: "install Debian's qemu-system-x86 (scripts/setup.sh does)", cause: e }))),
  );
  const exitedEarly = guest.exited.then((exit) => {
    throw new BootError(`QEMU exited during boot (${exit.signal ?? `status ${exit.code}`})`, {
      hint: "read QEMU's output and the console tail in the details",
      details: { qemuStderr: guest.qemuStderr().slice(-4000), consoleTail: guest.console().slice(-4000), argv: flattenArgv(argv) },
    });
  });
  const qmpReady = qmpConnected.then(async (socket) => {
    guest.qmp = await QmpClient.connect(socket, { timeoutMs: options.helloTimeoutMs ?? 60000 });
    guest.timeline.qmpReadyMs = guest.now();
  });
  // Awaited after hello; until then a QEMU dying mid-boot must not count as an unhandled rejection.
  qmpReady.catch(() => undefined);
  try {
    const hello = await withDeadline(
      Promise.race([
        spawnFailed,
        exitedEarly,
        connected.then(async (socket) => {
          guest.timeline.qemuConnectedMs = guest.now();
          guest.channel = socket;
          guest.agent = new AgentClient(socket);
          // The channel closing before hello means QEMU is going away: report that, with its output.
          const hello = await guest.agent.hello().catch(async (e: unknown) => {
            if (e instanceof AgentDisconnectedError) await withDeadline(exitedEarly, { timeoutMs: 5000 }, "QEMU closed the agent channel but did not exit");
            throw e;
          });
          guest.timeline.helloMs = guest.now();
          await qmpReady;
          return hello;
        }),
      ]),
      { timeoutMs: options.helloTimeoutMs ?? 60000, signal: options.signal },
      "the guest did not become ready",
    );
    guest.timeline.guestInitUptimeMs = hello.initUptimeMs;
    guest.timeline.guestHelloUptimeMs = hello.uptimeMs;
    guest.hello = hello;
    exitedEarly.catch(() => undefined);
    return guest;
  } catch (e) {
    exitedEarly.catch(() => undefined);
    spawnFailed.catch(() => undefined);
    await guest.kill();
    if (e instanceof TimeoutError) {
      e.details.consoleTail = guest.console().slice(-4000);
      e.details.qemuStderr = guest.qemuStderr().slice(-4000);
    }
    throw e;
  }
}
