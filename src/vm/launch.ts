// Boots a guest from a machine plan, or adopts one that an earlier process started; both go one path
// (bringUp): QMP connected, then the readiness wait (the agent's hello by default), under a deadline. A
// failed boot kills QEMU before it throws, with QEMU's output and the console tail in the error. Used by
// `mvm run` through the daemon, by the tests and benchmarks directly.

import { randomBytes } from "node:crypto";
import { closeSync, existsSync } from "node:fs";
import { mkdtemp, rm, unlink, writeFile } from "node:fs/promises";
import type { Readable } from "node:stream";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { withDeadline } from "../deadline.js";
import { BootError, StateFileError, TimeoutError } from "../errors.js";
import { ensureGuestArtifacts, type GuestArtifacts } from "../guest/artifacts.js";
import { writeGuestConfig } from "../guest/config-file.js";
import { hostTsc } from "../host/tsc.js";
import { buildArgv } from "../plan/argv.js";
import type { MachinePlan } from "../plan/machine.js";
import { flattenArgv, type ArgvEntry } from "../qemu/microvm-argv.js";
import { loadState } from "../qemu/migration.js";
import { QmpClient } from "../qemu/qmp-client.js";
import { ConsoleTap } from "./console-tap.js";
import { Guest, type BootTimeline } from "./guest.js";
import { readTail, vmFiles } from "./layout.js";
import { adoptQemu, spawnJailedQemu, spawnQemu, type QemuProcess } from "./qemu-process.js";
import { AGENT_READY, waitReady, type Readiness } from "./readiness.js";
import { prepareJail, type JailInput, type JailSpawn } from "../jail/jail.js";
import { readJailRecord, setSocket, type FileNeed } from "../jail/access.js";
import { backingChain } from "../images/qcow2-header.js";
import { closeVmSockets, listenForVm, type VmSockets } from "./sockets.js";

export { Guest, type BootTimeline, type StopRung } from "./guest.js";
export type { QemuExit } from "./qemu-process.js";

export interface LaunchOptions extends MachinePlan {
  qemuBinary?: string;
  artifacts?: GuestArtifacts;
  /** Deadline for the readiness wait (ms). */
  helloTimeoutMs?: number;
  signal?: AbortSignal;
  /**
   * The VM's own directory (sockets, config, logs), kept after the VM ends. Without it a temporary one is
   * made and removed. With it, the console goes to console.log and QEMU's output to qemu.log there, and
   * QEMU runs in its own session so that it outlives this process.
   */
  dir?: string;
  /**
   * Start from a saved state instead of booting (the plan must say `incoming`): a template's (RAM in its
   * file, ignoreShared) or a snapshot's or suspend's (everything in the state file).
   */
  restore?: RestoreFrom;
  /** Called with QEMU's pid right after it is spawned (so a record can name it before the guest is ready). */
  onSpawn?: (pid: number) => void;
  /**
   * Called once QMP is connected, before a saved state is loaded and before the readiness wait (a cold
   * boot's guest is then still in its kernel): settings made over QMP (disk limits) hold from the start.
   * A failure fails the launch.
   */
  onQmp?: (qmp: QmpClient) => Promise<void>;
  /** Called with each console line and the ms since spawn it arrived at (boot phases in `mvm bench boot`). */
  onConsoleLine?: (line: string, ms: number) => void;
  /** Saved states a parked QEMU may be given later (its template's): the jail lets QEMU read them. */
  laterStates?: string[];
}

export interface RestoreFrom {
  stateFile: string;
  ignoreShared: boolean;
}

/** What the jail needs to know of a launch: its group's name and size, and every path QEMU opens. */
function jailInput(o: LaunchOptions, argv: ArgvEntry[], x: { dir: string; binary: string; artifacts: GuestArtifacts; configFile?: string; console: boolean }): JailInput {
  const label = argv.find((a) => a.args[0] === "-name")?.args[1] ?? oneOffLabel();
  const files = vmFiles(x.dir);
  const disks = (o.disks ?? []).flatMap((d): FileNeed[] => [
    { path: d.path, want: d.readOnly ? "r" : "rw" },
    ...(d.format === "qcow2" ? backingChain(d.path).map((path): FileNeed => ({ path, want: "r" })) : []),
  ]);
  return {
    label,
    memoryMiB: o.memoryMiB ?? 256,
    cpus: o.cpus ?? 1,
    dir: x.dir,
    binary: x.binary,
    accel: o.accel ?? "tcg",
    network: o.network?.kind ?? "none",
    volumes: o.volumes ?? [],
    files: [
      { path: o.kernel ?? x.artifacts.kernel.vmlinux, want: "r" },
      { path: o.initrd ?? x.artifacts.initramfs.path, want: "r" },
      ...disks,
      ...(o.ram?.kind === "file" ? [{ path: o.ram.path, want: "rw" } as FileNeed] : []),
      ...[o.restore?.stateFile, ...(o.laterStates ?? [])].filter((f): f is string => !!f).map((path): FileNeed => ({ path, want: "r" })),
    ],
    sockets: [files.agentSocket, files.qmpSocket, ...(x.console ? [files.consoleSocket] : [])],
    consoleLog: x.console ? files.consoleLog : undefined,
    config: x.configFile,
  };
}

/** QEMU's binary as a path (the jail binds it when it lies outside /usr), looked up on PATH like spawn does. */
function resolveBinary(binary: string): string {
  if (binary.includes("/")) return binary;
  for (const d of (process.env.PATH ?? "/usr/bin").split(":")) if (d && existsSync(join(d, binary))) return join(d, binary);
  return binary;
}

/** The label of a one-off launch: mvm's prefix, so a stray one is still recognisable. */
const oneOffLabel = () => `mvm-run-${randomBytes(4).toString("hex")}`;

export async function launchGuest(options: LaunchOptions = {}): Promise<Guest> {
  const spawned = await spawnGuest(options);
  return bringUp({
    ...spawned,
    adopted: false,
    readiness: options.readiness ?? AGENT_READY,
    timeoutMs: options.helloTimeoutMs ?? 60000,
    signal: options.signal,
    restore: options.restore,
    onQmp: options.onQmp,
  });
}

/** A QEMU spawned and waiting (parked at -incoming defer, for the warm pool): no guest in it yet. */
export interface Parked {
  readonly pid: number;
  readonly exited: Promise<unknown>;
  /** Ends it (SIGKILL) and removes its sockets; its directory stays for the caller. */
  discard(): Promise<void>;
}

const parkedParts = new WeakMap<Parked, Spawned>();

/** Spawns QEMU for a plan with `incoming` set, and leaves it waiting for a state. */
export async function parkGuest(options: LaunchOptions & { dir: string }): Promise<Parked> {
  if (!options.incoming) throw new RangeError("a parked QEMU waits for a state: the plan needs incoming");
  const spawned = await spawnGuest(options);
  for (const p of spawned.extraFailures) p.catch(() => undefined);
  const parked: Parked = {
    pid: spawned.proc.pid,
    exited: spawned.proc.exited,
    discard: async () => {
      spawned.proc.kill("SIGKILL");
      await spawned.proc.exited;
      closeVmSockets(spawned.sockets);
      await removeVmFiles(spawned.dir, false);
    },
  };
  parkedParts.set(parked, spawned);
  return parked;
}

/**
 * Loads a state into a parked QEMU and waits for the guest; `dir` is where the parked QEMU's directory is
 * now (the pool renames it to the VM's). Times count from this call, the moment a VM asked for it.
 */
export function startParked(parked: Parked, o: { dir: string; restore: RestoreFrom; readiness: Readiness; timeoutMs?: number; signal?: AbortSignal; onQmp?: LaunchOptions["onQmp"] }): Promise<Guest> {
  const spawned = parkedParts.get(parked);
  if (!spawned) throw new RangeError("not a parked QEMU of this process");
  parkedParts.delete(parked);
  return bringUp({ ...spawned, dir: o.dir, t0: performance.now(), adopted: false, readiness: o.readiness, timeoutMs: o.timeoutMs ?? 60000, signal: o.signal, restore: o.restore, onQmp: o.onQmp });
}

/** What spawning leaves for bringUp: QEMU, its sockets, and how to tell a failed spawn. */
interface Spawned {
  proc: QemuProcess;
  argv: ArgvEntry[];
  dir: string;
  ownsDir: boolean;
  sockets: VmSockets;
  t0: number;
  stderr: () => string;
  extraFailures: Promise<never>[];
  /** QEMU's stdout, when it carries the console. */
  stdout?: Readable;
  onConsoleLine?: (line: string, ms: number) => void;
}

async function spawnGuest(options: LaunchOptions): Promise<Spawned> {
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
  const argv = buildArgv({ label: oneOffLabel(), ...options }, { artifacts, dir, configFile, tsc: hostTsc(), console: ownsDir ? "stdio" : "socket" });

  // Listen before QEMU starts, so its connect never races the socket's creation.
  const sockets = await listenForVm(files, !ownsDir);
  const binary = options.qemuBinary ?? "qemu-system-x86_64";
  let jail: JailSpawn | undefined;
  let proc: QemuProcess;
  const t0 = performance.now();
  try {
    if (options.jail?.enabled) {
      // A template's RAM file is made by QEMU; the jail binds paths that exist.
      if (options.ram?.kind === "file" && !existsSync(options.ram.path)) await writeFile(options.ram.path, "", { mode: 0o600, flag: "wx" });
      jail = prepareJail(options.jail, jailInput(options, argv, { dir, binary: resolveBinary(binary), artifacts, configFile, console: !ownsDir }));
      jail?.setUp();
    }
    // The jail's environment has only the system PATH: a QEMU found elsewhere is named by its path.
    const command = jail ? resolveBinary(binary) : binary;
    const spawnOptions = { ...(ownsDir ? {} : { detached: true, logFile: files.qemuLog }), prefix: jail?.prefix, env: jail?.env, passFds: jail?.passFds };
    try {
      proc = jail?.forks ? await spawnJailedQemu(command, flattenArgv(argv), spawnOptions) : spawnQemu(command, flattenArgv(argv), spawnOptions);
    } finally {
      for (const fd of jail?.passFds ?? []) closeSync(fd);
    }
  } catch (e) {
    jail?.cleanup();
    // Refused before any process existed (an unopenable log, an argument Node will not pass): nothing stays.
    closeVmSockets(sockets);
    await removeVmFiles(dir, ownsDir);
    throw new BootError(`cannot start QEMU (${binary}): ${(e as Error).message}`, { hint: "check the VM's kernel, initrd and command line, and that its directory is writable", cause: e });
  }
  if (jail) void proc.exited.then(() => jail.cleanup());
  if (proc.pid > 0) {
    jail?.named(proc.pid);
    options.onSpawn?.(proc.pid);
  }
  let stderr = "";
  proc.child?.stderr?.on("data", (b: Buffer) => (stderr = (stderr + b.toString()).slice(-16384)));
  const spawnFailed = new Promise<never>((_, reject) =>
    proc.child?.once("error", (e) =>
      reject(new BootError(`cannot start QEMU (${binary}): ${e.message}`, { hint: "install Debian's qemu-system-x86 (scripts/setup.sh does)", cause: e })),
    ),
  );
  return { proc, argv, dir, ownsDir, sockets, t0, stderr: () => stderr, extraFailures: [spawnFailed], stdout: proc.child?.stdout ?? undefined, onConsoleLine: options.onConsoleLine };
}

/**
 * Takes over a QEMU started earlier (by a daemon that has since restarted): listens on its sockets again,
 * waits for QEMU to reconnect to both, and for its readiness (the agent's hello). Throws if the process
 * is not that QEMU.
 */
export async function adoptGuest(o: { dir: string; pid: number; pidStart: string; argv?: ArgvEntry[]; readiness?: Readiness; timeoutMs?: number }): Promise<Guest> {
  const sockets = await listenForVm(vmFiles(o.dir), true);
  // A jailed QEMU reconnects as its own uid: the new sockets are made its own again.
  const jail = readJailRecord(o.dir);
  if (jail?.mode === "uid") for (const s of [vmFiles(o.dir).agentSocket, vmFiles(o.dir).qmpSocket, vmFiles(o.dir).consoleSocket]) setSocket(s, jail.uid);
  const proc = adoptQemu(o.pid, o.pidStart);
  proc.check();
  return bringUp({
    proc, argv: o.argv ?? [], dir: o.dir, ownsDir: false, sockets, t0: performance.now(), adopted: true, stderr: () => "",
    readiness: o.readiness ?? AGENT_READY,
    timeoutMs: o.timeoutMs ?? 10000,
    extraFailures: [],
  });
}

interface BringUp extends Spawned {
  adopted: boolean;
  readiness: Readiness;
  timeoutMs: number;
  signal?: AbortSignal;
  restore?: RestoreFrom;
  onQmp?: LaunchOptions["onQmp"];
}

async function bringUp(b: BringUp): Promise<Guest> {
  const controller = new AbortController();
  const now = () => performance.now() - b.t0;
  const consoleTap = new ConsoleTap(now, b.ownsDir ? undefined : vmFiles(b.dir).consoleLog, controller.signal);
  if (b.onConsoleLine) consoleTap.onLine(b.onConsoleLine);
  if (b.stdout) consoleTap.readFrom(b.stdout);
  if (b.sockets.console) consoleTap.serve(b.sockets.console);
  const timeline: BootTimeline = {};
  // A daemon VM's QEMU writes its output to qemu.log (explainBootFailure reads it there for a disk lock).
  const output = () => ({ qemuStderr: (b.ownsDir ? b.stderr() : readTail(vmFiles(b.dir).qemuLog, 4000)).slice(-4000) || undefined, consoleTail: consoleTap.tail().slice(-4000), argv: flattenArgv(b.argv) });
  const exitedEarly = b.proc.exited.then((exit) => {
    throw new BootError(`QEMU exited during boot (${exit.signal ?? (exit.known === false ? "status unknown" : `status ${exit.code}`)})`, {
      hint: "read QEMU's output and the console tail in the details",
      details: output(),
    });
  });
  exitedEarly.catch(() => undefined);
  const qmpReady = b.sockets.qmpConnected.then(async (socket) => {
    const qmp = await QmpClient.connect(socket, { timeoutMs: b.timeoutMs });
    timeline.qmpReadyMs = now();
    return qmp;
  });
  // Awaited after readiness; until then a QEMU dying mid-boot must not count as an unhandled rejection.
  qmpReady.catch(() => undefined);
  const partial: { qmp?: QmpClient; close?: () => void; loading?: boolean } = {};
  try {
    const [ready, qmp] = await withDeadline(
      Promise.race([
        ...b.extraFailures,
        exitedEarly,
        (async () => {
          if (b.onQmp) {
            partial.qmp = await qmpReady;
            await b.onQmp(partial.qmp);
          }
          if (b.restore) {
            // A parked QEMU: its state goes in first, then the guest is asked (readiness "restored").
            partial.qmp = await qmpReady;
            partial.loading = true;
            await loadState(partial.qmp, b.restore.stateFile, { ignoreShared: b.restore.ignoreShared, timeoutMs: b.timeoutMs });
            partial.loading = false;
            timeline.restoredMs = now();
          }
          const ready = await waitReady(b.readiness, { agentConnected: b.sockets.agentConnected, console: consoleTap, adopted: b.adopted, exitedEarly, now });
          partial.close = () => ready.agent?.close();
          const qmp = await qmpReady;
          partial.qmp = qmp;
          return [ready, qmp] as const;
        })(),
      ]),
      { timeoutMs: b.timeoutMs, signal: b.signal },
      "the guest did not become ready",
    );
    // A VM ready on a console line has no agent, but QEMU connects its channel anyway: hold it (a closed one
    // would make QEMU reconnect every second) and close it with the VM.
    if (!ready.agent) void b.sockets.agentConnected.then((s) => (controller.signal.aborted ? s.destroy() : controller.signal.addEventListener("abort", () => s.destroy(), { once: true })));
    timeline.qemuConnectedMs = ready.agentConnectedMs;
    timeline.helloMs = ready.helloMs;
    timeline.firstConsoleMs = consoleTap.firstByteMs;
    timeline.initLineMs = consoleTap.initLineMs;
    timeline.guestInitUptimeMs = ready.hello?.initUptimeMs;
    timeline.guestHelloUptimeMs = ready.hello?.uptimeMs;
    return new Guest({ ...b, process: b.proc, console: consoleTap, qmp, agent: ready.agent, channel: ready.channel, hello: ready.hello, timeline, controller });
  } catch (e) {
    for (const p of b.extraFailures) p.catch(() => undefined);
    b.proc.kill("SIGKILL");
    await b.proc.exited;
    partial.close?.();
    partial.qmp?.close();
    void qmpReady.then((q) => q.close(), () => undefined);
    controller.abort();
    closeVmSockets(b.sockets);
    await removeVmFiles(b.dir, b.ownsDir);
    if (e instanceof TimeoutError) Object.assign(e.details, output());
    // QEMU exits when it cannot load a state: that is the state's fault, whatever the first sign was.
    if (partial.loading && !(e instanceof StateFileError) && !b.signal?.aborted) {
      throw new StateFileError(`loading the saved state failed: ${(e as Error).message}`, { details: output(), cause: e });
    }
    throw e;
  }
}

/** After a failed launch: a temporary directory goes whole, a VM's own keeps its logs but not its sockets. */
async function removeVmFiles(dir: string, ownsDir: boolean): Promise<void> {
  const files = vmFiles(dir);
  if (ownsDir) await rm(dir, { recursive: true, force: true });
  else await Promise.all([files.agentSocket, files.qmpSocket, files.consoleSocket, files.config].map((f) => unlink(f).catch(() => undefined)));
}
