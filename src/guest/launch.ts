// Boots a guest from a QEMU argv and connects to its agent and QMP monitor; or adopts one that an earlier
// process started. Readiness is the agent's hello, with a deadline; a failed boot kills QEMU before it
// throws, with QEMU's output and the console tail in the error. Used directly by `mvm run`, the tests and
// the benchmarks, and by the daemon for every VM it manages.

import { closeSync, copyFileSync, fstatSync, openSync, readSync, statSync, truncateSync } from "node:fs";
import { mkdtemp, rm, unlink } from "node:fs/promises";
import { createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AgentClient, withDeadline } from "../agent/client.js";
import type { Hello } from "../agent/messages.js";
import { AgentDisconnectedError, BootError, TimeoutError } from "../errors.js";
import { hostTsc } from "../host/tsc.js";
import { flattenArgv, microvmArgv, type ArgvEntry } from "../qemu/microvm-argv.js";
import { QmpClient } from "../qemu/qmp-client.js";
import type { PortMapping } from "../spec/ports.js";
import { ensureGuestArtifacts, type GuestArtifacts } from "./artifacts.js";
import { writeGuestConfig, type GuestConfig } from "./config-file.js";
import { cmdlineString, defaultCmdline } from "./kernel-cmdline.js";
import { adoptQemu, spawnQemu, type QemuExit, type QemuProcess } from "./qemu-process.js";

export type { QemuExit };

export interface LaunchOptions {
  qemuBinary?: string;
  accel?: "kvm" | "tcg";
  /**
   * false boots without ACPI: QEMU names the virtio-mmio devices on the kernel command line. The guest then
   * cannot read its configuration file (6.1's fw_cfg driver needs ACPI), so `config` is ignored by it.
   */
  acpi?: boolean;
  disks?: Array<{ path: string; readOnly: boolean; format: "raw" | "qcow2" }>;
  volumes?: Array<{ hostPath: string; readOnly: boolean }>;
  /** A NIC on QEMU's user-mode network; the guest side is configured through `config.network`. */
  network?: { kind: "user"; restrict: boolean; ports: PortMapping[]; mac: string } | { kind: "tap"; ifname: string; mac: string };
  /** Allowlisted -M microvm options (acpi, pit, pic, rtc: on/off/auto). */
  machine?: Partial<Record<"acpi" | "pit" | "pic" | "rtc", "on" | "off" | "auto">>;
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
  /**
   * The VM's own directory (sockets, config, logs), kept after the VM ends. Without it a temporary one is
   * made and removed. With it, the console goes to console.log and QEMU's output to qemu.log there, and
   * QEMU runs in its own session so that it outlives this process.
   */
  dir?: string;
  /** Called with QEMU's pid right after it is spawned (so a record can name it before the guest is ready). */
  onSpawn?: (pid: number) => void;
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

/** How a stop ended: the guest powered off, QMP quit, SIGTERM, or SIGKILL (the ladder's rungs). */
export type StopRung = "guest" | "qmp-quit" | "sigterm" | "sigkill" | "already-exited";

const CONSOLE_CAP = 256 * 1024;

export const vmFiles = (dir: string) => ({
  agentSocket: join(dir, "agent.sock"),
  consoleSocket: join(dir, "console.sock"),
  qmpSocket: join(dir, "qmp.sock"),
  config: join(dir, "config"),
  consoleLog: join(dir, "console.log"),
  qemuLog: join(dir, "qemu.log"),
});

/** The last `max` bytes of a file, or "" when it cannot be read. */
export function readTail(path: string, max = CONSOLE_CAP): string {
  let fd: number | undefined;
  try {
    fd = openSync(path, "r");
    const size = fstatSync(fd).size;
    const len = Math.min(size, max);
    const buf = Buffer.alloc(len);
    readSync(fd, buf, 0, len, size - len);
    return buf.toString("latin1");
  } catch {
    return "";
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/** Keeps a log QEMU appends to under 1 MiB: the old part moves to .1 (a few bytes may fall between). */
function capLog(path: string, cap = 1024 * 1024): void {
  try {
    if (statSync(path).size <= cap) return;
    copyFileSync(path, `${path}.1`);
    truncateSync(path, 0);
  } catch {
    /* not there yet */
  }
}

/** Listens on a Unix socket path (replacing a stale socket file) and hands out each connection. */
async function listenOn(path: string): Promise<Server> {
  await unlink(path).catch(() => undefined);
  const server = createServer();
  await new Promise<void>((resolve, reject) => server.listen(path, resolve).once("error", reject));
  return server;
}

const nextConnection = (server: Server) => new Promise<Socket>((resolve) => server.once("connection", resolve));

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
  /** QEMU announced a guest-initiated shutdown (power-off or reboot) before it ended. */
  guestShutdown = false;
  /** The serial console's live connection (VMs with their own directory only). */
  consoleChannel?: Socket;
  private readonly consoleListeners = new Set<(b: Buffer) => void>();
  private consoleServer?: Server;
  private consoleBytes = 0;

  constructor(
    readonly process: QemuProcess,
    readonly argv: ArgvEntry[],
    readonly dir: string,
    private readonly ownsDir: boolean,
    private readonly server: Server,
    private readonly qmpServer: Server,
    private readonly t0: number,
  ) {
    this.exited = process.exited;
    // Whatever ends QEMU, the sockets (and a temporary directory) go with it.
    void this.exited.then(() => this.cleanup());
    const child = process.child;
    child?.stdout?.on("data", (b: Buffer) => {
      this.timeline.firstConsoleMs ??= this.now();
      this.consoleText = (this.consoleText + b.toString("latin1")).slice(-CONSOLE_CAP);
      if (this.timeline.initLineMs === undefined && this.consoleText.includes("mvm-init: started")) this.timeline.initLineMs = this.now();
    });
    child?.stderr?.on("data", (b: Buffer) => (this.stderrText = (this.stderrText + b.toString()).slice(-CONSOLE_CAP)));
  }

  now(): number {
    return performance.now() - this.t0;
  }

  /** The serial console so far (its last 256 KiB). */
  console(): string {
    return this.ownsDir ? this.consoleText : readTail(vmFiles(this.dir).consoleLog);
  }

  qemuStderr(): string {
    return this.ownsDir ? this.stderrText : readTail(vmFiles(this.dir).qemuLog, 16 * 1024);
  }

  get running(): boolean {
    return this.process.running;
  }

  /** Takes QEMU's console connections (it reconnects after a host-side restart) and keeps the log capped. */
  serveConsole(server: Server): void {
    this.consoleServer = server;
    server.on("connection", (socket: Socket) => {
      this.consoleChannel?.destroy();
      this.consoleChannel = socket;
      socket.on("data", (b: Buffer) => {
        for (const l of this.consoleListeners) l(b);
        this.consoleBytes += b.length;
        if (this.consoleBytes > 64 * 1024) {
          this.consoleBytes = 0;
          capLog(vmFiles(this.dir).consoleLog);
        }
      });
      socket.on("error", () => undefined);
    });
  }

  /** Follows console output and sends keystrokes to it; returns a function that detaches. */
  openConsole(onData: (b: Buffer) => void): { write: (b: Buffer) => void; close: () => void } {
    this.consoleListeners.add(onData);
    return {
      write: (b) => void this.consoleChannel?.write(b),
      close: () => this.consoleListeners.delete(onData),
    };
  }

  attachQmp(qmp: QmpClient): void {
    this.qmp = qmp;
    qmp.on("event", (e) => {
      if (e.event === "SHUTDOWN" && (e.data as { guest?: boolean } | undefined)?.guest) this.guestShutdown = true;
    });
    // The monitor closing is the first sign an adopted QEMU has gone.
    qmp.on("close", () => this.process.check());
  }

  /** Set for a QEMU found running (not launched here): its agent may be running commands already. */
  adopted = false;

  attachAgent(socket: Socket): AgentClient {
    this.channel = socket;
    this.agent = new AgentClient(socket, { keepOrphans: this.adopted });
    return this.agent;
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
   * following are not re-attached.
   */
  async reconnect(timeoutMs = 10000): Promise<Hello> {
    const next = nextConnection(this.server);
    this.agent?.close();
    const socket = await withDeadline(next, { timeoutMs }, "QEMU did not reconnect to the agent socket");
    this.hello = await this.attachAgent(socket).hello({ timeoutMs });
    return this.hello;
  }

  private cleaned?: Promise<void>;
  cleanup(): Promise<void> {
    this.cleaned ??= (async () => {
      this.agent?.close();
      this.qmp?.close();
      this.server.close();
      this.qmpServer.close();
      this.consoleChannel?.destroy();
      this.consoleServer?.close();
      this.consoleListeners.clear();
      const files = vmFiles(this.dir);
      if (this.ownsDir) await rm(this.dir, { recursive: true, force: true });
      else await Promise.all([files.agentSocket, files.qmpSocket, files.consoleSocket, files.config].map((f) => unlink(f).catch(() => undefined)));
    })();
    return this.cleaned;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }
}

/** The argv a launch would use, without starting anything. */
export function buildArgv(options: LaunchOptions & { artifacts: GuestArtifacts; dir: string; configFile?: string; console: "stdio" | "socket" }): ArgvEntry[] {
  const accel = options.accel ?? "tcg";
  const files = vmFiles(options.dir);
  const acpi = options.machine?.acpi === "off" ? false : options.acpi;
  const cmdline =
    options.cmdline ??
    [
      cmdlineString(defaultCmdline({ accel, acpi, tsc: hostTsc(), kernelHz: options.kernel ? undefined : options.artifacts.kernel.info.hz })),
      options.append,
    ]
      .filter(Boolean)
      .join(" ");
  const argv = microvmArgv({
    accel,
    acpi,
    machine: options.machine,
    network: options.network,
    disks: options.disks,
    volumes: options.volumes,
    cpus: options.cpus ?? 1,
    memoryMiB: options.memoryMiB ?? 256,
    kernel: options.kernel ?? options.artifacts.kernel.vmlinux,
    initrd: options.initrd ?? options.artifacts.initramfs.path,
    cmdline,
    agentSocket: files.agentSocket,
    qmpSocket: files.qmpSocket,
    configFile: options.configFile,
    console: options.console === "stdio" ? { kind: "stdio" } : { kind: "socket", path: files.consoleSocket, logfile: files.consoleLog },
  });
  if (options.extraArgs) argv.push({ args: options.extraArgs, reason: "requested by the caller" });
  return argv;
}

export async function launchGuest(options: LaunchOptions = {}): Promise<Guest> {
  const artifacts = options.artifacts ?? (await ensureGuestArtifacts());
  const ownsDir = options.dir === undefined;
  const dir = options.dir ?? (await mkdtemp(join(tmpdir(), "mvm-")));
  const files = vmFiles(dir);
  let configFile: string | undefined;
  if (options.config) {
    configFile = files.config;
    await unlink(configFile).catch(() => undefined);
    await writeGuestConfig(configFile, options.config);
  }
  const argv = buildArgv({ ...options, artifacts, dir, configFile, console: ownsDir ? "stdio" : "socket" });

  // Listen before QEMU starts, so its connect never races the socket's creation.
  const server = await listenOn(files.agentSocket);
  const qmpServer = await listenOn(files.qmpSocket);
  const connected = nextConnection(server);
  const qmpConnected = nextConnection(qmpServer);

  const t0 = performance.now();
  const binary = options.qemuBinary ?? "qemu-system-x86_64";
  const consoleServer = ownsDir ? undefined : await listenOn(files.consoleSocket);
  const proc = spawnQemu(binary, flattenArgv(argv), ownsDir ? {} : { detached: true, logFile: files.qemuLog });
  const guest = new Guest(proc, argv, dir, ownsDir, server, qmpServer, t0);
  if (consoleServer) guest.serveConsole(consoleServer);
  if (proc.pid > 0) options.onSpawn?.(proc.pid);
  const spawnFailed = new Promise<never>((_, reject) =>
    proc.child?.once("error", (e) =>
      reject(new BootError(`cannot start QEMU (${binary}): ${e.message}`, { hint: "install Debian's qemu-system-x86 (scripts/setup.sh does)", cause: e })),
    ),
  );
  return waitReady(guest, connected, qmpConnected, options, [spawnFailed]);
}

/**
 * Takes over a QEMU started earlier (by a daemon that has since restarted): listens on its sockets again,
 * waits for QEMU to reconnect to both, and for the agent's hello. Throws if the process is not that QEMU.
 */
export async function adoptGuest(o: { dir: string; pid: number; pidStart: string; argv?: ArgvEntry[]; timeoutMs?: number }): Promise<Guest> {
  const files = vmFiles(o.dir);
  const server = await listenOn(files.agentSocket);
  const qmpServer = await listenOn(files.qmpSocket);
  const connected = nextConnection(server);
  const qmpConnected = nextConnection(qmpServer);
  const consoleServer = await listenOn(files.consoleSocket);
  const proc = adoptQemu(o.pid, o.pidStart);
  proc.check();
  const guest = new Guest(proc, o.argv ?? [], o.dir, false, server, qmpServer, performance.now());
  guest.adopted = true;
  guest.serveConsole(consoleServer);
  return waitReady(guest, connected, qmpConnected, { helloTimeoutMs: o.timeoutMs ?? 10000 }, []);
}

async function waitReady(
  guest: Guest,
  connected: Promise<Socket>,
  qmpConnected: Promise<Socket>,
  options: Pick<LaunchOptions, "helloTimeoutMs" | "signal">,
  extraFailures: Promise<never>[],
): Promise<Guest> {
  const exitedEarly = guest.exited.then((exit) => {
    throw new BootError(`QEMU exited during boot (${exit.signal ?? (exit.known === false ? "status unknown" : `status ${exit.code}`)})`, {
      hint: "read QEMU's output and the console tail in the details",
      details: { qemuStderr: guest.qemuStderr().slice(-4000), consoleTail: guest.console().slice(-4000), argv: flattenArgv(guest.argv) },
    });
  });
  exitedEarly.catch(() => undefined);
  const qmpReady = qmpConnected.then(async (socket) => {
    guest.attachQmp(await QmpClient.connect(socket, { timeoutMs: options.helloTimeoutMs ?? 60000 }));
    guest.timeline.qmpReadyMs = guest.now();
  });
  // Awaited after hello; until then a QEMU dying mid-boot must not count as an unhandled rejection.
  qmpReady.catch(() => undefined);
  try {
    const hello = await withDeadline(
      Promise.race([
        ...extraFailures,
        exitedEarly,
        connected.then(async (socket) => {
          guest.timeline.qemuConnectedMs = guest.now();
          const hello = await guest
            .attachAgent(socket)
            .hello()
            .catch(async (e: unknown) => {
              // The channel closing before hello means QEMU is going away: report that, with its output.
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
    return guest;
  } catch (e) {
    for (const p of extraFailures) p.catch(() => undefined);
    await guest.kill();
    if (e instanceof TimeoutError) {
      e.details.consoleTail = guest.console().slice(-4000);
      e.details.qemuStderr = guest.qemuStderr().slice(-4000);
    }
    throw e;
  }
}

