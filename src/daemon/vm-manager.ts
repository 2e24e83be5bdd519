// The VMs' lifecycle: owns every VM's QEMU, agent channel and command, and keeps the records true. Each
// operation checks the state it needs (WrongStateError otherwise), moves the record with a compare-and-set
// transition, and never touches another VM. What to launch comes from the plan (src/plan/), how from
// src/vm/; images, networks, commands and reconciliation have modules of their own beside this one.
// Over 300 lines on purpose: every state transition and the cleanup that goes with it read together here.

import { cgroupLimits, decideJail, type JailHost } from "../jail/jail.js";
import { groupDirs, groupOfProcess, removeGroupSoon, setCpuMax, setCpuWeight, setMemoryMax, sweepGroups } from "../host/cgroups.js";
import { existsSync } from "node:fs";
import { mkdir, readdir, rm } from "node:fs/promises";
import { join } from "node:path";
import type { AgentClient } from "../agent/client.js";
import type { ExecOptions } from "../agent/exec-session.js";
import { AgentNotConnectedError, BinaryUnusableError, CgroupsUnavailableError, MemoryInUseError, WrongStateError, InvalidSpecError, KvmUnusableError, QmpDisconnectedError } from "../errors.js";
import type { VmState } from "../vm/state.js";
import type { GuestArtifacts } from "../guest/artifacts.js";
import { chooseAccel, readHostFacts } from "../host/accel.js";
import { createTap, ensureBridge } from "../host/netlink.js";
import { removeTapLinks, setNetLimit } from "../host/tc.js";
import { setDiskThrottle, throttleGroup } from "../qemu/throttle.js";
import type { QmpClient } from "../qemu/qmp-client.js";
import { CGROUP_LIMIT_KEYS, limitsOf, patchLimits, wantsCgroup, type Limits, type LimitsPatch } from "../vmspec/limits.js";
import { checkPortsFree } from "../host/port-check.js";
import { planVm } from "../plan/vm-plan.js";
import { flattenArgv } from "../qemu/microvm-argv.js";
import type { ImageStore } from "../store/image-store.js";
import type { NetworkStore } from "../store/network-store.js";
import type { AppliedLimits, BootInfo, VmRecord, VmStore } from "../store/vm-store.js";
import type { Guest, QemuExit } from "../vm/launch.js";
import { readTail, vmDir, vmFiles } from "../vm/layout.js";
import { processStartTime } from "../vm/qemu-process.js";
import { OPERATIONS, isLive, requireState } from "../vm/state.js";
import { allocate, gatewayOf, parseSubnet } from "../vmspec/subnet.js";
import { checkSpec, validateSpec, type VmSpec } from "../vmspec/vm-spec.js";
import { createOverlay } from "../images/overlay.js";
import { explainBootFailure } from "./boot-failure.js";
import { ImageManager } from "./image-manager.js";
import type { JobLog } from "./job-log.js";
import { NetworkManager, hostNameservers, isBridged, requireNetAdmin } from "./network-manager.js";
import { QemuBinaries } from "./qemu-binaries.js";
import { labelsOf, reconcile } from "./reconcile.js";
import { captureGuest, SnapshotStore, specFromSnapshot, type Snapshot } from "./snapshots.js";
import { TemplateManager } from "./template-manager.js";
import { VmLauncher, type SavedState } from "./vm-launcher.js";
import { WarmPool } from "./warm-pool.js";
import { HOST_ROOT, type Caller } from "../auth/caller.js";
import { checkHostPaths, readAllowedRoots, type HostPathPolicy } from "../auth/host-paths.js";
import { ownerFor } from "../auth/ownership.js";
import { checkQuota } from "../auth/quotas.js";
import { VolumeStore } from "../store/volume-store.js";
import { VolumeManager } from "./volume-manager.js";
import type { SessionInfo, SessionRegistry, TrackedSession } from "./session-registry.js";
import { VmCommands, type AttachEvent, type ExitEvent } from "./vm-commands.js";
import { EventBus } from "./events.js";
import { publishStoreChanges, publishCommands } from "./event-sources.js";
import { ExpiryTimers } from "./expiry.js";
import { StatsHistory } from "./stats-history.js";
import { parseDurationMs } from "../vmspec/duration.js";

export type { AttachEvent, ExitEvent };


export interface ManagerOptions {
  store: VmStore;
  images: ImageStore;
  networks: NetworkStore;
  /** Named volumes (default: a store on $home/mvm.db). */
  volumes?: VolumeStore;
  /** The roots under which any caller may name host paths (default: MVM_ALLOWED_ROOTS and $home/allowed-roots, read at each check). */
  allowedRoots?: string[];
  home: string;
  cacheDir: string;
  artifacts: () => Promise<GuestArtifacts>;
  /** QEMU binaries, from the daemon's configuration only (never from a VM spec). */
  binaries: { full: string; microvm: string };
  log?: (line: string) => void;
  /** How long a boot may take to become ready (default 60 s); tests shorten it. */
  readyTimeoutMs?: number;
  /** Where templates keep their RAM (default /dev/shm/mvm-templates). */
  templateRamDir?: string;
  /** Parked QEMUs kept per template in use (default 2; 0 turns the warm pool off). */
  poolSize?: number;
  /** Memory templates (default on); off, every VM boots cold (MVM_TEMPLATES=0). */
  templates?: boolean;
  /** The jail every QEMU starts in (default: decided from the daemon's uid and MVM_JAIL). */
  jail?: JailHost;
}

export class VmManager {
  private readonly guests = new Map<string, Guest>();
  /** Per live VM: resolves once its QEMU's exit has been written to the record. */
  private readonly exitRecorded = new Map<string, Promise<void>>();
  /** Boots under way: a kill or forced remove meanwhile aborts the boot, which kills its QEMU (halt). */
  private readonly booting = new Map<string, { abort: AbortController; ended: Promise<void> }>();
  /** The VM's own command and every other command running in VMs. */
  private readonly commands: VmCommands;
  private readonly binaries: QemuBinaries;
  private readonly launcher: VmLauncher;
  /** VMs whose QEMU is ending because their state was saved: their exit makes them suspended. */
  private readonly suspending = new Set<string>();
  readonly snapshots: SnapshotStore;
  readonly templates: TemplateManager;
  readonly pool: WarmPool;
  readonly images: ImageManager;
  readonly networks: NetworkManager;
  readonly volumes: VolumeManager;
  readonly jail: JailHost;
  /** What happens to VMs, commands, images and snapshots, for GET /v1/events (events.ts). */
  readonly events = new EventBus();
  /** VMs' times to live (expiry.ts): killed and removed at their record's expiresAt. */
  private readonly expiry: ExpiryTimers;
  /** Each running VM's CPU and memory, and the host's, over the last minutes (stats-history.ts); sampling from reconcile on. */
  readonly statsHistory: StatsHistory;

  constructor(private readonly o: ManagerOptions) {
    this.jail = o.jail ?? decideJail();
    o.log?.(this.jail.enabled ? `jail: on${this.jail.reason ? ` (${this.jail.reason})` : `, control groups ${this.jail.cgroups.mode}`}` : `jail: off (${this.jail.reason})`);
    this.networks = new NetworkManager(o.networks, o.store);
    this.volumes = new VolumeManager(o.volumes ?? new VolumeStore(join(o.home, "mvm.db")), o.store);
    this.images = new ImageManager({ images: o.images, vms: o.store, home: o.home, cacheDir: o.cacheDir, hostPaths: () => this.hostPaths(), publish: (e) => this.events.publish(e) });
    this.binaries = new QemuBinaries(o.binaries, o.cacheDir);
    this.templates = new TemplateManager({ cacheDir: o.cacheDir, ramDir: o.templateRamDir, readyTimeoutMs: o.readyTimeoutMs, log: o.log });
    // mvm's own files (kernels, images, templates): the jail gives root's files there to the group of jailed QEMUs.
    this.jail.managed = [o.home, o.cacheDir, this.templates.ramDir];
    this.snapshots = new SnapshotStore(o.home);
    this.pool = new WarmPool({ home: o.home, size: o.poolSize ?? 2, artifacts: o.artifacts, log: o.log });
    this.launcher = new VmLauncher({ templatesOn: o.templates ?? true, templates: this.templates, pool: this.pool, binaries: this.binaries, images: this.images, log: o.log });
    this.commands = new VmCommands({ store: o.store, dirOf: (id) => vmDir(o.home, id), stop: (id) => this.endAfterCommand(id) });
    this.expiry = new ExpiryTimers({
      log: o.log,
      expire: async (id) => {
        const rec = this.o.store.find(id);
        if (!rec?.expiresAt) return; // removed, or its time to live taken away meanwhile
        // Not due yet: given more time meanwhile, or the timer (monotonic clock) fired a moment before the wall clock's end time.
        if (Date.parse(rec.expiresAt) > Date.now()) return this.expiry.arm(id, rec.expiresAt);
        o.log?.(`VM ${rec.name}: its time to live ended at ${rec.expiresAt}; killing and removing it`);
        await this.remove(id, true);
      },
    });
    publishStoreChanges(o.store, this.events);
    publishCommands(this.commands.sessions, o.store, this.events);
    this.statsHistory = new StatsHistory({ list: () => this.o.store.list(), log: o.log });
    this.events.subscribe((p) => p.event.type === "vm.removed" && this.statsHistory.forget(p.event.vm.id));
  }

  private get sessions(): SessionRegistry {
    return this.commands.sessions;
  }

  list(): VmRecord[] {
    return this.o.store.list();
  }

  get(ref: string): VmRecord {
    return this.o.store.get(ref);
  }

  /** The QMP monitor of a VM this daemon holds (for its stats), if any. */
  qmpOf(id: string): QmpClient | undefined {
    return this.guests.get(id)?.qmp;
  }

  /** Whether the manager holds a live connection to this VM. */
  connected(id: string): boolean {
    return this.guests.has(id);
  }

  /** Who may name which host paths, as the host's root configured it now (src/auth/host-paths.ts). */
  hostPaths(): HostPathPolicy {
    return { allowedRoots: this.o.allowedRoots ?? readAllowedRoots(this.o.home) };
  }

  /**
   * Creates a VM; `caller` (default: the host's root) decides which host paths its spec may name, owns it
   * (src/auth/ownership.ts) and is held to its quota (src/auth/quotas.ts).
   */
  async create(input: unknown, options: { caller?: Caller } = {}): Promise<VmRecord> {
    const caller = options.caller ?? HOST_ROOT;
    const spec = await this.specFor(checkHostPaths(validateSpec(input), caller, this.hostPaths()));
    this.requireCgroups(spec, spec.name);
    const image = spec.image === undefined ? undefined : this.images.get(spec.image);
    if (image && spec.diskSizeMiB !== undefined && spec.diskSizeMiB * 1048576 < image.virtualBytes) {
      throw new InvalidSpecError(`diskSize ${spec.diskSizeMiB} MiB is smaller than image ${image.name} (${Math.ceil(image.virtualBytes / 1048576)} MiB)`, { hint: "disks can only grow" });
    }
    const bridgedNet = isBridged(spec.network) ? this.o.networks.get(spec.network) : undefined;
    // Checked and inserted with no await between: concurrent creates cannot both pass under a quota.
    const owner = ownerFor(caller);
    checkQuota(caller, spec, this.o.store.list().filter((r) => r.owner === owner));
    const expiresAt = spec.ttlMs === undefined ? undefined : new Date(Date.now() + spec.ttlMs).toISOString();
    let record = this.o.store.create(spec, { ...(owner === undefined ? {} : { owner }), ...(expiresAt ? { expiresAt } : {}) });
    this.expiry.arm(record.id, expiresAt);
    const dir = vmDir(this.o.home, record.id);
    // Nothing half-made: a failure below removes the record and its directory again.
    try {
      await mkdir(dir, { recursive: true, mode: 0o700 });
      if (bridgedNet) {
        const subnet = parseSubnet(bridgedNet.subnet);
        const ip = this.o.networks.allocate(bridgedNet.name, record.id, (taken) => allocate(subnet, taken, spec.ip));
        // Tap names are the kernel's 15 characters at most, and carry mvm's prefix so they cannot be a host's.
        record = this.o.store.update(record.id, { bridged: { network: bridgedNet.name, ip, prefix: subnet.prefix, gateway: gatewayOf(subnet), tap: `mvt-${record.id.slice(0, 10)}` } });
      }
      if (image) {
        // Copy-on-write: the VM writes to its own overlay, never to the shared base. Instant to make.
        await createOverlay(image.path, vmFiles(dir).rootOverlay, spec.diskSizeMiB);
      }
    } catch (e) {
      // The directory first: on a full disk, what it held is the room the database needs to forget the VM.
      await rm(dir, { recursive: true, force: true });
      this.o.networks.release(record.id);
      this.o.store.remove(record.id, ["created"]);
      this.expiry.disarm(record.id);
      throw e;
    }
    return record;
  }

  /**
   * The checked spec of a new VM. With `snapshot`, the machine is the snapshot's (its memory, disk and
   * devices must match the saved state); only what makes a VM distinct may be given beside it.
   */
  private async specFor(input: unknown): Promise<VmSpec> {
    const nameTaken = (n: string) => this.o.store.nameTaken(n);
    const raw = validateSpec(input);
    if (raw.snapshot === undefined) return checkSpec(input, { nameTaken, volume: (n) => this.volumes.resolve(n) });
    return specFromSnapshot(raw, await this.snapshots.get(raw.snapshot), nameTaken);
  }

  /** Boots the VM; resolves once it is ready (running), or rejects after recording why. */
  async start(ref: string, signal?: AbortSignal, resuming = false): Promise<VmRecord> {
    const rec = this.o.store.get(ref);
    requireState(rec.name, resuming ? "resume" : "start", rec.state);
    this.requireCgroups(rec.spec, rec.name);
    const spec = rec.spec;
    const accel = chooseAccel(spec.accel, readHostFacts());
    if (!accel.usable) throw new KvmUnusableError(`VM ${rec.name} asks for KVM, which cannot be used here: ${accel.reason}`, { hint: "set accel to auto or tcg" });
    const binary = await this.binaries.choose(accel.chosen, spec.binary, spec);
    if (!binary.usable) throw new BinaryUnusableError(binary.reason, { hint: "install Debian's qemu-system-x86 (scripts/setup.sh does), or set binary to auto" });
    const plan = planVm(rec, { home: this.o.home, accel: accel.chosen, qemuBinary: binary.path, artifacts: await this.o.artifacts(), nameservers: isBridged(spec.network) ? hostNameservers() : [], seccomp: binary.sandbox, jail: this.jail });
    if (plan.network?.kind === "user") await checkPortsFree(plan.network.ports);
    const bridged = rec.bridged;
    if (bridged) {
      requireNetAdmin();
      const net = this.o.networks.get(bridged.network);
      const subnet = parseSubnet(net.subnet);
      await ensureBridge(net.bridge, `${gatewayOf(subnet)}/${subnet.prefix}`);
      await createTap(bridged.tap, net.bridge);
    }
    const from = await this.savedStateFor(rec);
    const starting = this.o.store.transition(rec.id, resuming ? ["suspended"] : OPERATIONS.start, "starting", {
      accel: { chosen: accel.chosen, reason: accel.reason },
      binary: { kind: binary.kind, path: binary.path, reason: binary.reason },
      pid: undefined,
      pidStart: undefined,
      commandExit: undefined, // the last run's; this run's replaces it when its command ends
      limits: undefined, // the last run's; this run's are recorded as they are applied
      timings: { startedAt: new Date().toISOString() },
    });
    // As the record has them now: a change made before this transition counts, one after it is refused (409).
    const limits = limitsOf(starting.spec);
    const abort = new AbortController();
    let bootEnded!: () => void;
    this.booting.set(rec.id, { abort, ended: new Promise<void>((r) => (bootEnded = r)) });
    let guest: Guest;
    let boot: BootInfo;
    try {
      await mkdir(plan.dir, { recursive: true, mode: 0o700 });
      ({ guest, boot } = await this.launcher.launch({
        rec,
        plan,
        from,
        launch: {
          helloTimeoutMs: this.o.readyTimeoutMs ?? 60000,
          signal: signal ? AbortSignal.any([signal, abort.signal]) : abort.signal,
          // Named in the record at once: a daemon that dies mid-boot leaves a QEMU the next one can find.
          onSpawn: (pid) => this.o.store.update(rec.id, { pid, pidStart: processStartTime(pid) }),
          // Limits hold before the guest touches a disk (a cold boot is still in its kernel, a clone not yet
          // loaded); a VM without limits gets no QMP command for them at all.
          onQmp: Object.keys(limits).length ? async (qmp) => void (await this.applyLimits(rec.id, qmp, plan.disks?.length ?? 0, limits)) : undefined,
        },
      }));
    } catch (e) {
      if (bridged) await removeTapLinks(bridged.tap).catch(() => undefined);
      const err = explainBootFailure(e);
      // Aborted by kill or remove: halt records the VM stopped. A resume that failed keeps its state.
      if (!abort.signal.aborted) this.o.store.transition(rec.id, ["starting"], resuming ? "suspended" : "crashed", {
        pid: undefined,
        pidStart: undefined,
        lastExit: { exitCode: null, signal: null, at: new Date().toISOString(), reason: `boot failed: ${err instanceof Error ? err.message : String(err)}` },
      });
      throw err;
    } finally {
      this.booting.delete(rec.id);
      bootEnded();
    }
    let running: VmRecord;
    try {
      running = this.o.store.transition(rec.id, ["starting"], "running", {
        pid: guest.process.pid,
        pidStart: processStartTime(guest.process.pid),
        argv: flattenArgv(guest.argv),
        kernelRelease: guest.hello?.kernel,
        boot,
        diskUsed: spec.image ? true : undefined,
        timings: {
          startedAt: new Date(Date.now() - guest.now()).toISOString(),
          qmpMs: guest.timeline.qmpReadyMs,
          restoredMs: guest.timeline.restoredMs,
          helloMs: guest.timeline.helloMs,
          guestInitUptimeMs: guest.timeline.guestInitUptimeMs,
          guestHelloUptimeMs: guest.timeline.guestHelloUptimeMs,
        },
      });
    } catch (e) {
      await guest.kill(); // killed or removed just as its boot completed: its QEMU goes too, and its tap
      if (bridged) await removeTapLinks(bridged.tap).catch(() => undefined);
      throw e;
    }
    this.guests.set(rec.id, guest);
    this.watch(rec.id, guest);
    if (resuming) return this.resumed(running, guest);
    if (spec.command) this.commands.run(running, guest);
    return running;
  }

  /** The saved state a start loads instead of booting: the VM's suspend, or on its first start its snapshot. */
  private async savedStateFor(rec: VmRecord): Promise<SavedState | undefined> {
    if (rec.state === "suspended" && rec.suspended) return { kind: "resume", stateFile: rec.suspended.stateFile, qemuBuild: rec.suspended.qemuBuild, what: `the state VM ${rec.name} was suspended in` };
    if (rec.spec.snapshot && !rec.diskUsed) {
      const snap = await this.snapshots.get(rec.spec.snapshot);
      return { kind: "snapshot", stateFile: snap.stateFile, disk: snap.disk, qemuBuild: snap.qemuBuild, what: `snapshot ${snap.name}` };
    }
    return undefined;
  }

  /** A resumed VM: its commands ran on inside it, so they are taken over, and its saved state goes. */
  private async resumed(rec: VmRecord, guest: Guest): Promise<VmRecord> {
    const was = rec.suspended;
    let now = this.o.store.update(rec.id, { suspended: undefined });
    if (was) await rm(join(vmDir(this.o.home, rec.id), "suspend"), { recursive: true, force: true });
    if (guest.agent) await this.commands.adopt(now, guest);
    if (was?.wasPaused) {
      await guest.qmp.execute("stop");
      now = this.o.store.transition(rec.id, ["running"], "paused");
    }
    return now;
  }

  /**
   * Saves the VM's whole state to its directory and ends its QEMU (its memory goes back to the host); the
   * VM is suspended until resume loads it again, across daemon restarts and host reboots (same QEMU build).
   */
  async suspend(ref: string): Promise<VmRecord> {
    const rec = this.o.store.get(ref);
    requireState(rec.name, "suspend", rec.state);
    const guest = this.guestOf(rec);
    const build = await this.binaries.build(rec.binary?.path ?? "");
    if (!build) throw new BinaryUnusableError(`the QEMU binary of VM ${rec.name} cannot be probed, so its state could not be checked on resume`, { hint: "check that the QEMU binary it started with is still installed" });
    const dir = join(vmDir(this.o.home, rec.id), "suspend");
    await rm(dir, { recursive: true, force: true });
    this.o.store.transition(rec.id, OPERATIONS.suspend, "stopping");
    let taken;
    try {
      taken = await captureGuest(guest, rec, dir, { keepStopped: true });
    } catch (e) {
      this.o.store.transition(rec.id, ["stopping"], rec.state);
      throw e;
    }
    this.o.store.update(rec.id, { suspended: { stateFile: join(dir, "state"), qemuBuild: build, savedAt: new Date().toISOString(), wasPaused: rec.state === "paused", stateBytes: taken.stateBytes } });
    this.suspending.add(rec.id);
    await guest.kill();
    await this.exitRecorded.get(rec.id);
    return this.o.store.get(rec.id);
  }

  /** Removes a snapshot no VM still needs (one made from it that has not started yet restores it then). */
  async removeSnapshot(name: string): Promise<void> {
    const waiting = this.o.store.list().filter((r) => r.spec.snapshot === name && !r.diskUsed && r.state === "created");
    if (waiting.length) {
      throw new WrongStateError(`snapshot ${name} is needed by VM ${waiting.map((r) => r.name).join(", ")}, made from it and not started yet`, { hint: `start or remove ${waiting.length > 1 ? "them" : "it"} first` });
    }
    const snap = await this.snapshots.get(name);
    await this.snapshots.remove(name);
    this.events.publish({ type: "snapshot.removed", snapshot: name, vm: snap.vm });
  }

  /** Snapshots a running or paused VM (memory, devices, root disk at one moment); the VM runs on. */
  async snapshot(ref: string, name?: string): Promise<Snapshot> {
    const rec = this.o.store.get(ref);
    requireState(rec.name, "snapshot", rec.state);
    const guest = this.guestOf(rec);
    const build = await this.binaries.build(rec.binary?.path ?? "");
    if (!build) throw new BinaryUnusableError(`the QEMU binary of VM ${rec.name} cannot be probed`, { hint: "check that the QEMU binary it started with is still installed" });
    const snap = await this.snapshots.create(guest, rec, name ?? `${rec.name.slice(0, 40)}-${new Date().toISOString().replace(/[^0-9]/g, "").slice(0, 14)}`, build);
    this.events.publish({ type: "snapshot.created", snapshot: snap.name, vm: { id: rec.id, name: rec.name } });
    return snap;
  }

  /** Records how QEMU ended: stopped when asked or when the guest powered itself off, crashed otherwise. */
  private watch(id: string, guest: Guest): void {
    const recorded = guest.exited.then(async (exit: QemuExit) => {
      this.guests.delete(id);
      // An adopted QEMU's group is not its launcher's to remove (it was another daemon's): sweep it here.
      const rec = this.o.store.find(id);
      if (guest.adopted && this.jail.enabled) {
        // Its own group by label at once (the sweep spares groups under a minute old), then any other left.
        if (rec) for (const l of labelsOf(rec)) void removeGroupSoon(this.jail.cgroups, l);
        sweepGroups(this.jail.cgroups);
      }
      if (rec?.bridged) await removeTapLinks(rec.bridged.tap).catch(() => undefined);
      if (!rec || !isLive(rec.state)) return;
      if (this.suspending.delete(id)) {
        this.o.store.transition(id, ["stopping"], "suspended", { pid: undefined, pidStart: undefined, limits: undefined, lastExit: { exitCode: exit.code, signal: exit.signal, at: new Date().toISOString(), reason: "suspended to disk" } });
        this.commands.finish(id);
        return;
      }
      const asked = rec.state === "stopping";
      const clean = asked || guest.guestShutdown;
      const how = exit.signal ? `killed by ${exit.signal}` : exit.known === false ? "exit status unknown (adopted)" : `status ${exit.code}`;
      const tail = readTail(vmFiles(vmDir(this.o.home, id)).qemuLog, 2000).trim();
      this.o.store.transition(id, ["starting", "running", "paused", "stopping"], clean ? "stopped" : "crashed", {
        pid: undefined,
        pidStart: undefined,
        limits: undefined,
        lastExit: {
          exitCode: exit.code,
          signal: exit.signal,
          at: new Date().toISOString(),
          reason: clean ? (asked ? "stopped on request" : "the guest powered off") : `QEMU ended unasked (${how})${tail ? `: ${tail.split("\n").at(-1)}` : ""}`,
        },
      });
      this.commands.finish(id);
    });
    // A record changed meanwhile (removed by force) is nothing to report.
    const safe = recorded.catch(() => undefined);
    this.exitRecorded.set(id, safe);
    void safe.finally(() => this.exitRecorded.delete(id));
  }

  /** Waits for the VM to stop (its command to end, for a VM with one) and returns the command's exit. */
  wait(ref: string): Promise<ExitEvent> {
    return new Promise((resolve) => {
      const off = this.attach(ref, (e) => {
        if (e.type === "exit") {
          off();
          resolve(e);
        }
      });
    });
  }

  async stop(ref: string): Promise<VmRecord> {
    return this.halt(ref, "stop", (g) => g.stop({ timeoutMs: 10000 }));
  }

  /**
   * The VM's own command ended, so the VM ends. A VM with nothing on disk (no image, disks or shared
   * folders) has nothing a guest power-off would flush: QMP quit ends it at once (a TCG guest's power-off
   * takes ~200 ms, most of `mvm run --rm -- true`). Others power off in order.
   */
  private endAfterCommand(id: string): Promise<VmRecord> {
    const s = this.o.store.get(id).spec;
    if (s.image || s.disks.length || s.volumes.length) return this.stop(id);
    return this.halt(id, "stop", async (g) => {
      await g.qmp.execute("quit", undefined, { timeoutMs: 2000 }).catch(() => undefined);
      await g.stop({ timeoutMs: 2000 }); // already exited, or the ladder's other rungs
    });
  }

  async kill(ref: string): Promise<VmRecord> {
    return this.halt(ref, "kill", (g) => g.kill());
  }

  private async halt(ref: string, op: "stop" | "kill", how: (g: Guest) => Promise<unknown>): Promise<VmRecord> {
    const rec = this.o.store.get(ref);
    requireState(rec.name, op, rec.state);
    if (rec.state === "suspended") {
      // Its QEMU ended at the suspend: stopping it throws the saved state away.
      await rm(join(vmDir(this.o.home, rec.id), "suspend"), { recursive: true, force: true });
      return this.o.store.transition(rec.id, ["suspended"], "stopped", { suspended: undefined, lastExit: { exitCode: null, signal: null, at: new Date().toISOString(), reason: "stopped while suspended (its saved state was discarded)" } });
    }
    this.o.store.transition(rec.id, OPERATIONS[op], "stopping");
    const guest = this.guests.get(rec.id);
    if (guest) await how(guest);
    else {
      // Caught booting: the boot is aborted, and kills its QEMU before it gives up.
      const boot = this.booting.get(rec.id);
      boot?.abort.abort();
      await boot?.ended;
      // A resume cut short: its saved state goes with it, as with any stop of a suspended VM.
      if (rec.suspended) await rm(join(vmDir(this.o.home, rec.id), "suspend"), { recursive: true, force: true });
      this.o.store.transition(rec.id, ["stopping"], "stopped", { pid: undefined, suspended: undefined, limits: undefined });
    }
    // The record once the exit watcher has written QEMU's end to it.
    await this.exitRecorded.get(rec.id);
    return this.o.store.get(rec.id);
  }

  /**
   * Changes the VM's limits (null removes one): live on a running or paused QEMU (QMP for its disks, tc
   * for its tap), kept in its spec for every later start; a VM that is starting or ending is refused.
   */
  async setLimits(ref: string, patch: LimitsPatch): Promise<VmRecord> {
    const rec = this.o.store.get(ref);
    const allowed: VmState[] = OPERATIONS.limits;
    if (!allowed.includes(rec.state)) {
      throw new WrongStateError(`cannot change the limits of VM ${rec.name}: it is ${rec.state}, and limits change while it is ${allowed.join(", ")}`, {
        hint: `wait until it is up or down (mvm ps -a), then try again`,
        details: { vm: rec.name, operation: "limits", state: rec.state, allowed },
      });
    }
    const disks = (rec.spec.image ? 1 : 0) + rec.spec.disks.length;
    const next = patchLimits(limitsOf(rec.spec), patch, { name: rec.name, network: rec.spec.network, disks, cpus: rec.spec.cpus, memoryMiB: rec.spec.memoryMiB });
    // Setting one needs control groups; removing one never does (that is how a user without them gets out).
    this.requireCgroups(Object.fromEntries(CGROUP_LIMIT_KEYS.filter((k) => patch[k] !== undefined && patch[k] !== null).map((k) => [k, next[k]])), rec.name);
    const spec = { ...rec.spec, diskBps: next.diskBps, diskIops: next.diskIops, netBps: next.netBps, cpuShare: next.cpuShare, cpuMax: next.cpuMax, memoryMax: next.memoryMax };
    if (rec.state === "running" || rec.state === "paused") {
      // A QEMU started before mvm named its disks (vdN) cannot be told which ones to throttle.
      const named = (rec.argv ?? []).filter((a) => /^virtio-blk-device,id=vd\d+,/.test(a)).length;
      const diskChange = next.diskBps !== rec.limits?.diskBps || next.diskIops !== rec.limits?.diskIops;
      if (disks && diskChange && named < disks) {
        throw new WrongStateError(`VM ${rec.name}'s QEMU was started by an older mvm that did not name its disks, so their limits cannot change while it runs`, {
          hint: `the new limits are applied from the next start: stop and start it (mvm stop ${rec.name} && mvm start ${rec.name})`,
          details: { vm: rec.name, state: rec.state },
        });
      }
      await this.applyLimits(rec.id, this.guestOf(rec).qmp, disks, next);
    }
    return this.o.store.update(rec.id, { spec });
  }

  /**
   * Puts limits into effect on the VM's QEMU (its `disks` virtio-blk devices, one throttle group) and tap,
   * undoing those in effect that are no longer asked for, and records them. Without `limits`, the spec's
   * as the record has them now (a change made while the start was under way counts). Nothing asked and
   * nothing in effect: no QMP command at all.
   */
  private async applyLimits(id: string, qmp: QmpClient, disks: number, limits?: Limits): Promise<VmRecord> {
    const rec = this.o.store.get(id);
    const l = limits ?? limitsOf(rec.spec);
    const was = rec.limits;
    const wantDisk = l.diskBps !== undefined || l.diskIops !== undefined;
    const wantNet = l.netBps !== undefined && rec.bridged !== undefined;
    const wantCg = wantsCgroup(l);
    if (!wantDisk && !wantNet && !wantCg && !was) return rec;
    // First: the one a kernel may refuse (memory in use), so that a refusal leaves everything as it was.
    const cgroup = wantCg || (was && wantsCgroup(was)) ? this.applyCgroupLimits(rec, l, was) : undefined;
    const ids = disks && (wantDisk || was?.disks.length) ? await setDiskThrottle(qmp, { vmId: id, disks, diskBps: l.diskBps, diskIops: l.diskIops }) : [];
    if (rec.bridged && (wantNet || was?.netBps !== undefined)) await setNetLimit(rec.bridged.tap, l.netBps);
    const applied = wantDisk || wantNet || wantCg
      ? { ...l, disks: wantDisk ? ids : [], group: wantDisk && ids.length ? throttleGroup(id) : undefined, tap: wantNet ? rec.bridged?.tap : undefined, cgroup: wantCg ? cgroup : undefined, appliedAt: new Date().toISOString() }
      : undefined;
    return this.o.store.update(id, { limits: applied });
  }

  /**
   * Writes cpuShare, cpuMax and memoryMax into the control group the jail put the VM's QEMU in (found from
   * its pid: a pool VM runs in its parked QEMU's group), each only if it differs from what is in effect; a
   * limit no longer asked for gets the jail's default back (src/jail/jail.ts cgroupLimits). Returns the
   * group's directory.
   */
  private applyCgroupLimits(rec: VmRecord, l: Limits, was: AppliedLimits | undefined): string | undefined {
    const changed = CGROUP_LIMIT_KEYS.filter((k) => l[k] !== was?.[k]);
    if (!changed.length) return was?.cgroup;
    const group = rec.pid && this.jail.enabled && this.jail.cgroups.mode !== "none" ? groupOfProcess(rec.pid) : undefined;
    // Only removals, and no group of ours to put the defaults back in (a daemon restarted without the jail): nothing to do.
    if (!group && changed.every((k) => l[k] === undefined)) return undefined;
    if (!group) {
      throw new CgroupsUnavailableError(`VM ${rec.name}'s QEMU (pid ${rec.pid ?? "none"}) is in no control group of mvm's, so its CPU and memory limits cannot be applied: it was started without the jail's control groups`, {
        hint: `stop and start it under a daemon whose jail makes control groups (mvm stop ${rec.name} && mvm start ${rec.name}), or remove the limits (--cpu-share none --cpu-max none --memory-max none)`,
        details: { vm: rec.name, pid: rec.pid },
      });
    }
    const defaults = cgroupLimits(rec.spec);
    const host = this.jail.cgroups;
    if (l.memoryMax !== was?.memoryMax) {
      try {
        setMemoryMax(host, group, l.memoryMax, defaults.memoryBytes);
      } catch (e) {
        if (e instanceof MemoryInUseError) throw new MemoryInUseError(`VM ${rec.name}: ${e.message}`, { hint: e.hint?.replace("mvm limits VM", `mvm limits ${rec.name}`), details: { vm: rec.name, ...e.details }, cause: e });
        throw e;
      }
    }
    if (l.cpuMax !== was?.cpuMax) setCpuMax(host, group, l.cpuMax, defaults.cpuQuotaUs);
    if (l.cpuShare !== was?.cpuShare) setCpuWeight(host, group, l.cpuShare);
    return groupDirs(host, group)[0]!;
  }

  /** CPU and memory limits live in the jail's control groups: without them a VM asking for one is refused, never run unlimited. */
  private requireCgroups(l: Limits, vm: string): void {
    if (!wantsCgroup(l) || (this.jail.enabled && this.jail.cgroups.mode !== "none")) return;
    const asked = CGROUP_LIMIT_KEYS.filter((k) => l[k] !== undefined);
    const reason = this.jail.enabled ? this.jail.cgroups.reason : this.jail.reason;
    const fix = !this.jail.enabled && /MVM_JAIL=0/.test(reason) ? "start the daemon without MVM_JAIL=0"
      : !this.jail.enabled && /root/.test(reason) ? "run the mvm daemon as root (its jail gives each QEMU a control group)"
      : !this.jail.enabled ? "install what the jail needs (scripts/setup.sh does)"
      : "give the daemon cgroup v2 with the memory, pids and cpu controllers delegated, or writable v1 hierarchies (mvm doctor says what this host has)";
    throw new CgroupsUnavailableError(`VM ${vm} asks for ${asked.join(", ")}, which mvm applies through the control group its jail puts each QEMU in, and this daemon has none: ${this.jail.enabled ? "no usable control groups" : "the jail is off"} (${reason})`, {
      hint: `${fix}; or leave ${asked.join(", ")} out (a VM that has them: mvm limits ${vm} ${asked.map((k) => `--${k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)} none`).join(" ")})`,
      details: { vm, limits: asked, jail: this.jail.enabled, cgroups: this.jail.cgroups.mode },
    });
  }

  async pause(ref: string): Promise<VmRecord> {
    const rec = this.o.store.get(ref);
    requireState(rec.name, "pause", rec.state);
    await this.guestOf(rec).qmp.execute("stop");
    return this.o.store.transition(rec.id, OPERATIONS.pause, "paused");
  }

  async resume(ref: string, signal?: AbortSignal): Promise<VmRecord> {
    const rec = this.o.store.get(ref);
    requireState(rec.name, "resume", rec.state);
    if (rec.state === "suspended") return this.start(rec.id, signal, true);
    await this.guestOf(rec).qmp.execute("cont");
    return this.o.store.transition(rec.id, OPERATIONS.resume, "running");
  }

  private guestOf(rec: VmRecord): Guest {
    const g = this.guests.get(rec.id);
    if (!g) throw new QmpDisconnectedError(`VM ${rec.name} is ${rec.state} but this daemon has no connection to its QEMU`, { hint: `kill it (mvm kill ${rec.name}) and start it again` });
    return g;
  }

  /** The serial console of a running or paused VM, for an interactive client. */
  openConsole(ref: string, onData: (b: Buffer) => void): { name: string; write: (b: Buffer, onDrain?: () => void) => boolean; close: () => void } {
    const rec = this.o.store.get(ref);
    if (rec.state !== "running" && rec.state !== "paused") requireState(rec.name, "exec", rec.state);
    return { name: rec.name, ...this.guestOf(rec).openConsole(onData) };
  }

  /** The agent channel of a running VM, for commands and file operations. */
  agentFor(ref: string, operation: "exec" | "files" | "forward" | "watch" = "exec"): { rec: VmRecord; agent: AgentClient } {
    const rec = this.o.store.get(ref);
    requireState(rec.name, operation, rec.state);
    const agent = this.guestOf(rec).agent;
    if (!agent || agent.closed) {
      throw new AgentNotConnectedError(`the agent of VM ${rec.name} is not connected`, {
        hint: rec.spec.ready ? "this VM is ready on a console line and has no mvm agent: use mvm console" : "the VM may be stopping; check mvm ps",
      });
    }
    return { rec, agent };
  }

  /**
   * A new time to live, from now (null: none, the VM lives until removed). Any state: a stopped VM with an
   * end time is removed then too.
   */
  setTtl(ref: string, ttl: number | string | null): VmRecord {
    const rec = this.o.store.get(ref);
    const expiresAt = ttl === null ? undefined : new Date(Date.now() + parseDurationMs(ttl)).toISOString();
    const now = this.o.store.update(rec.id, { expiresAt });
    this.expiry.arm(rec.id, expiresAt);
    return now;
  }

  async remove(ref: string, force = false): Promise<void> {
    const rec = this.o.store.get(ref);
    requireState(rec.name, force ? "forceRemove" : "remove", rec.state);
    if (isLive(rec.state)) await this.kill(rec.id).catch(() => undefined);
    this.o.store.remove(rec.id, ["created", "stopped", "crashed", "suspended"]);
    this.expiry.disarm(rec.id);
    this.o.networks.release(rec.id);
    if (rec.bridged) await removeTapLinks(rec.bridged.tap).catch(() => undefined);
    this.commands.forget(rec.id);
    await rm(vmDir(this.o.home, rec.id), { recursive: true, force: true });
    // The link a parked QEMU's old directory left (its label names it): only that one, not a scan of vms/.
    const label = rec.argv?.[rec.argv.indexOf("-name") + 1];
    const slot = rec.boot?.how === "pool" && label ? /^mvm-([0-9a-f]{8,64})$/.exec(label)?.[1] : undefined;
    if (slot && slot !== rec.id) await rm(vmDir(this.o.home, slot), { force: true }).catch(() => undefined);
  }

  /** The daemon is stopping: parked QEMUs end (VMs run on, to be adopted by the next daemon). */
  close(): Promise<void> {
    this.expiry.close();
    this.statsHistory.close();
    return this.pool.close();
  }

  /** Directories under vms/ that no record owns (a killed daemon's parked QEMUs, links the pool left). */
  private async sweepVmDirs(): Promise<void> {
    const root = join(this.o.home, "vms");
    for (const e of await readdir(root, { withFileTypes: true }).catch(() => [])) {
      const path = join(root, e.name);
      if (e.isSymbolicLink()) {
        if (!existsSync(path)) await rm(path, { force: true });
      } else if (e.isDirectory() && !this.o.store.find(e.name) && !this.pool.owns(path)) {
        await rm(path, { recursive: true, force: true });
      }
    }
  }

  async prune(): Promise<string[]> {
    const gone: string[] = [];
    for (const r of this.o.store.list()) {
      if (r.state === "stopped" || r.state === "crashed") {
        await this.remove(r.id).catch(() => undefined);
        if (!this.o.store.find(r.id)) gone.push(r.name);
      }
    }
    return gone;
  }

  /** At daemon start: adopt what still runs, record what ended, reap what no record knows (reconcile.ts). */
  async reconcile(): Promise<void> {
    await this.templates.sweep().catch((e: unknown) => this.o.log?.(`sweeping templates: ${(e as Error).message}`));
    await this.snapshots.sweep().catch(() => undefined);
    const ended = await reconcile({
      store: this.o.store,
      home: this.o.home,
      log: this.o.log ?? (() => undefined),
      adopted: async (rec, guest, state) => {
        this.guests.set(rec.id, guest);
        this.watch(rec.id, guest);
        // A paused guest cannot answer; its commands stay unknown to this daemon (noted in docs/api.md).
        if (state === "running" && guest.agent) await this.commands.adopt(rec, guest);
        else guest.agent?.releaseOrphans();
        // A stop the last daemon began is finished, not forgotten (it would otherwise run on as "running").
        if (rec.state === "stopping") void this.stop(rec.id).catch((e: unknown) => this.o.log?.(`finishing the stop of ${rec.name}: ${(e as Error).message}`));
      },
    });
    // After the reaper: a killed daemon's parked QEMUs are gone, their directories and control groups too.
    await this.sweepVmDirs();
    // Times to live run on across restarts: one that ended while no daemon ran is removed now.
    this.expiry.armAll(this.o.store.list());
    this.statsHistory.start();
    if (this.jail.enabled) {
      // The groups of this home's QEMUs that ended (while no daemon ran, or killed just now) go at once, by
      // label; the sweep then takes other empty groups over a minute old (others' daemons may be spawning).
      for (const l of ended) void removeGroupSoon(this.jail.cgroups, l).then((gone) => gone && this.o.log?.(`removed the control group ${l} of a QEMU that ended`));
      for (const g of sweepGroups(this.jail.cgroups)) this.o.log?.(`removed the empty control group ${g}`);
    }
  }

  // Commands: the VM's own ("job") and exec sessions, by VM reference.

  jobLog(id: string): JobLog {
    return this.commands.jobLog(id);
  }

  /** Follows the VM's command: past output, live output, then its exit. Returns an unsubscribe function. */
  attach(ref: string, onEvent: (e: AttachEvent) => void, options: { history?: boolean } = {}): () => void {
    return this.commands.attach(this.o.store.get(ref), onEvent, options);
  }

  /** Starts a command; a background one outlives the client (see SessionRegistry). */
  exec(ref: string, options: ExecOptions & { background?: boolean }): TrackedSession {
    const { rec, agent } = this.agentFor(ref, "exec");
    return this.sessions.start(rec.id, (o) => agent.exec(o), options);
  }

  /** Sends a signal to the VM's command (session "job") or to one exec session. */
  signal(ref: string, session: string, signo: number): void {
    const rec = this.o.store.get(ref);
    this.sessions.signal(rec.id, rec.name, session, signo);
  }

  listSessions(ref: string): SessionInfo[] {
    return this.sessions.list(this.o.store.get(ref).id);
  }

  session(ref: string, id: string): TrackedSession {
    const rec = this.o.store.get(ref);
    return this.sessions.get(rec.id, rec.name, id);
  }

  removeSession(ref: string, id: string): void {
    const rec = this.o.store.get(ref);
    this.sessions.remove(rec.id, rec.name, id);
  }
}
