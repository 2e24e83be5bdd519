// The daemon's heart: owns every VM's QEMU, agent channel and command, and keeps the records true.
// Each operation checks the state it needs (StateError otherwise), moves the record with a
// compare-and-set transition, and never touches another VM.

import { mkdir, rm } from "node:fs/promises";
import { join } from "node:path";
import type { AgentClient } from "../agent/client.js";
import type { ExecOptions } from "../agent/exec-session.js";
import { MvmError } from "../errors.js";
import type { GuestArtifacts } from "../guest/artifacts.js";
import { adoptGuest, launchGuest, readTail, vmFiles, type Guest, type QemuExit } from "../guest/launch.js";
import { processStartTime } from "../guest/qemu-process.js";
import { chooseAccel, readHostFacts } from "../host/accel.js";
import { chooseBinary, type BinaryChoice } from "../qemu/binary-choice.js";
import { flattenArgv } from "../qemu/microvm-argv.js";
import { probeBinary, type QemuBinaryInfo } from "../qemu/probe.js";
import { checkPortsFree } from "../host/port-check.js";
import { createTap, deleteLink, ensureBridge } from "../host/netlink.js";
import { allocate, gatewayOf, parseSubnet } from "../spec/subnet.js";
import type { NetworkRecord, NetworkStore } from "../store/network-store.js";
import { buildDebian, importImage, type DebianOptions } from "../images/image-builder.js";
import { runTool } from "../images/tools.js";
import { checkSpec, InvalidSpecError, type VmSpec } from "../spec/vm-spec.js";
import { ImageExistsError, type ImageRecord, type ImageStore } from "../store/image-store.js";
import { NotFoundError, type VmRecord, type VmStore } from "../store/vm-store.js";
import { OPERATIONS, StateError, isLive, requireState } from "../vm/state.js";
import type { JobLog } from "./job-log.js";
import type { SessionInfo, SessionRegistry, TrackedSession } from "./session-registry.js";
import { VmCommands, type AttachEvent, type ExitEvent } from "./vm-commands.js";

export type { AttachEvent, ExitEvent };
import { NetworkManager, hostNameservers, isBridged, requireNetAdmin } from "./network-manager.js";

export interface ManagerOptions {
  store: VmStore;
  images: ImageStore;
  networks: NetworkStore;
  home: string;
  cacheDir: string;
  artifacts: () => Promise<GuestArtifacts>;
  /** QEMU binaries, from the daemon's configuration only (never from a VM spec). */
  binaries: { full: string; microvm: string };
}

/** QEMU's own words for a few boot failures, turned into errors that say what to do. */
function explainBootFailure(e: MvmError): MvmError {
  const stderr = typeof e.details?.qemuStderr === "string" ? e.details.qemuStderr : "";
  const lock = /Failed to get "(write|read|shared write)" lock[\s\S]*?(?:Is another process using the image \[([^\]]+)\])?/.exec(stderr);
  if (lock) {
    return new DiskInUseError(`a disk of this VM is in use by another VM or program${lock[2] ? `: ${lock[2]}` : ""}`, {
      hint: "stop the VM that has it, attach it read-only (:ro) on both, or give this VM a copy",
      details: e.details,
      cause: e,
    });
  }
  return e;
}

export class DiskInUseError extends MvmError {
  override readonly code = "DISK_IN_USE";
}

/** A locally administered MAC from the VM's id: stable across restarts, distinct between VMs. */
export const macFor = (id: string): string => `52:54:00:${id.slice(0, 6).match(/../g)!.join(":")}`;

export class BinaryUnusableError extends MvmError {
  override readonly code = "QEMU_UNUSABLE";
}

export class VmManager {
  private readonly guests = new Map<string, Guest>();
  /** Per live VM: resolves once its QEMU's exit has been written to the record. */
  private readonly exitRecorded = new Map<string, Promise<void>>();
  private readonly probes = new Map<string, Promise<QemuBinaryInfo | undefined>>();
  /** The VM's own command and every other command running in VMs. */
  private readonly commands: VmCommands;

  private get sessions(): SessionRegistry {
    return this.commands.sessions;
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

  private readonly nets: NetworkManager;

  constructor(private readonly o: ManagerOptions) {
    this.nets = new NetworkManager(o.networks, o.store);
    this.commands = new VmCommands({ store: o.store, dirOf: (id) => this.dirOf(id), stop: (id) => this.stop(id) });
  }

  private dirOf(id: string): string {
    return join(this.o.home, "vms", id);
  }

  jobLog(id: string): JobLog {
    return this.commands.jobLog(id);
  }

  /** Follows the VM's command: past output, live output, then its exit. Returns an unsubscribe function. */
  attach(ref: string, onEvent: (e: AttachEvent) => void, options: { history?: boolean } = {}): () => void {
    return this.commands.attach(this.o.store.get(ref), onEvent, options);
  }

  list(): VmRecord[] {
    return this.o.store.list();
  }

  get(ref: string): VmRecord {
    return this.o.store.get(ref);
  }

  async create(input: unknown): Promise<VmRecord> {
    const spec = checkSpec(input, { nameTaken: (n) => this.o.store.nameTaken(n) });
    const image = spec.image === undefined ? undefined : this.o.images.get(spec.image);
    if (image && spec.diskSizeMiB !== undefined && spec.diskSizeMiB * 1048576 < image.virtualBytes) {
      throw new InvalidSpecError(`diskSize ${spec.diskSizeMiB} MiB is smaller than image ${image.name} (${Math.ceil(image.virtualBytes / 1048576)} MiB)`, { hint: "disks can only grow" });
    }
    const bridgedNet = isBridged(spec.network) ? this.o.networks.get(spec.network) : undefined;
    let record = this.o.store.create(spec);
    const dir = this.dirOf(record.id);
    await mkdir(dir, { recursive: true, mode: 0o700 });
    if (bridgedNet) {
      try {
        const subnet = parseSubnet(bridgedNet.subnet);
        const ip = this.o.networks.allocate(bridgedNet.name, record.id, (taken) => allocate(subnet, taken, spec.ip));
        // Tap names are the kernel's 15 characters at most, and carry mvm's prefix so they cannot be a host's.
        record = this.o.store.update(record.id, { bridged: { network: bridgedNet.name, ip, prefix: subnet.prefix, gateway: gatewayOf(subnet), tap: `mvt-${record.id.slice(0, 10)}` } });
      } catch (e) {
        this.o.store.remove(record.id, ["created"]);
        await rm(dir, { recursive: true, force: true });
        throw e;
      }
    }
    if (image) {
      // Copy-on-write: the VM writes to its own overlay, never to the shared base. Instant to make.
      try {
        await runTool("qemu-img", ["create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", image.path, join(dir, "root.qcow2"), ...(spec.diskSizeMiB ? [`${spec.diskSizeMiB}M`] : [])]);
      } catch (e) {
        this.o.store.remove(record.id, ["created"]);
        await rm(dir, { recursive: true, force: true });
        throw e;
      }
    }
    return record;
  }

  listImages(): ImageRecord[] {
    return this.o.images.list();
  }

  private imagesDir(): string {
    return join(this.o.home, "images");
  }

  async importImage(file: string, name: string, onLine: (l: string) => void): Promise<ImageRecord> {
    checkSpec({ name }); // the same name rules as VMs
    if (this.o.images.find(name)) throw new ImageExistsError(`an image named ${name} already exists`, { hint: `remove it first (mvm image rm ${name}) or pick another --name` });
    const built = await importImage(file, name, this.imagesDir(), onLine);
    return this.o.images.add({ name, ...built });
  }

  async buildImage(name: string, o: DebianOptions, onLine: (l: string) => void): Promise<ImageRecord> {
    checkSpec({ name });
    if (this.o.images.find(name)) throw new ImageExistsError(`an image named ${name} already exists`, { hint: `remove it first (mvm image rm ${name}) or pick another --name` });
    const built = await buildDebian(name, o, this.imagesDir(), onLine);
    return this.o.images.add({ name, ...built });
  }

  async removeImage(name: string): Promise<void> {
    const image = this.o.images.get(name);
    const users = this.o.store.list().filter((v) => v.spec.image === name).map((v) => v.name);
    if (users.length) throw new StateError(`image ${name} is used by ${users.join(", ")}`, { hint: `remove those VMs first (mvm rm -f ${users.join(" ")})`, details: { image: name, vms: users } });
    this.o.images.remove(name);
    await rm(image.path, { force: true });
  }

  private probe(path: string): Promise<QemuBinaryInfo | undefined> {
    let p = this.probes.get(path);
    if (!p) this.probes.set(path, (p = probeBinary(path, this.o.cacheDir).catch(() => undefined)));
    return p;
  }

  async chooseBinaryFor(accel: "kvm" | "tcg", requested: "auto" | "full" | "microvm", spec?: VmSpec): Promise<BinaryChoice> {
    const [full, microvm] = await Promise.all([this.probe(this.o.binaries.full), this.probe(this.o.binaries.microvm)]);
    const userNet = spec?.network === "user" || spec?.network === "user,restrict";
    const anyNet = userNet || isBridged(spec?.network);
    const needs = {
      accel,
      devices: [
        "virtio-serial-device",
        "virtserialport",
        "virtio-rng-device",
        ...(anyNet ? ["virtio-net-device"] : []),
        ...(spec?.disks?.length || spec?.image ? ["virtio-blk-device"] : []),
        ...(spec?.volumes?.length ? ["virtio-9p-device"] : []),
      ],
      netdevs: userNet ? ["user"] : isBridged(spec?.network) ? ["tap"] : [],
    };
    return chooseBinary(requested, needs, { full, microvm });
  }

  /** Boots the VM; resolves once its agent said hello (running), or rejects after recording why. */
  async start(ref: string, signal?: AbortSignal): Promise<VmRecord> {
    const rec = this.o.store.get(ref);
    requireState(rec.name, "start", rec.state);
    const spec = rec.spec;
    const accel = chooseAccel(spec.accel, readHostFacts());
    if (!accel.usable) throw new MvmError(`VM ${rec.name} asks for KVM, which cannot be used here: ${accel.reason}`, { hint: "set accel to auto or tcg" });
    const binary = await this.chooseBinaryFor(accel.chosen, spec.binary, spec);
    if (!binary.usable) throw new BinaryUnusableError(binary.reason, { hint: "install Debian's qemu-system-x86 (scripts/setup.sh does), or set binary to auto" });
    const artifacts = await this.o.artifacts();
    const userNet = spec.network === "user" || spec.network === "user,restrict";
    if (userNet) await checkPortsFree(spec.ports ?? []);
    const bridged = rec.bridged;
    if (bridged) {
      requireNetAdmin();
      const net = this.o.networks.get(bridged.network);
      await ensureBridge(net.bridge, `${gatewayOf(parseSubnet(net.subnet))}/${parseSubnet(net.subnet).prefix}`);
      await createTap(bridged.tap, net.bridge);
    }
    this.o.store.transition(rec.id, OPERATIONS.start, "starting", {
      accel: { chosen: accel.chosen, reason: accel.reason },
      binary: { kind: binary.kind, path: binary.path, reason: binary.reason },
      pid: undefined,
      pidStart: undefined,
      commandExit: undefined, // the last run's; this run's replaces it when its command ends
      timings: { startedAt: new Date().toISOString() },
    });
    const dir = this.dirOf(rec.id);
    await mkdir(dir, { recursive: true, mode: 0o700 });
    let guest: Guest;
    try {
      guest = await launchGuest({
        dir,
        artifacts,
        qemuBinary: binary.path,
        accel: accel.chosen,
        cpus: spec.cpus,
        memoryMiB: spec.memoryMiB,
        machine: spec.machine,
        kernel: spec.kernel,
        initrd: spec.initrd,
        append: spec.append,
        cmdline: spec.cmdline,
        config: {
          hostname: spec.hostname,
          env: spec.env,
          // slirp's fixed addresses: the guest 10.0.2.15, the host's loopback as 10.0.2.2, its DNS relay 10.0.2.3.
          network: userNet
            ? { iface: "eth0", address: "10.0.2.15/24", gateway: "10.0.2.2", dns: ["10.0.2.3"] }
            : bridged
              ? { iface: "eth0", address: `${bridged.ip}/${bridged.prefix}`, gateway: bridged.gateway, dns: hostNameservers() }
              : undefined,
          mounts: (spec.volumes ?? []).map((v, i) => ({ tag: `mvm${i}`, path: v.guestPath, readOnly: v.readOnly })),
          // An image is the root: init mounts it and switch_roots, growing it first when diskSize asked.
          root: spec.image ? { device: "/dev/vda", resize: spec.diskSizeMiB !== undefined } : undefined,
        },
        disks: [...(spec.image ? [{ path: join(dir, "root.qcow2"), readOnly: false, format: "qcow2" as const }] : []), ...(spec.disks ?? [])],
        volumes: spec.volumes ?? [],
        network: userNet
          ? { kind: "user", restrict: spec.network === "user,restrict", ports: spec.ports ?? [], mac: macFor(rec.id) }
          : bridged
            ? { kind: "tap", ifname: bridged.tap, mac: macFor(rec.id) }
            : undefined,
        helloTimeoutMs: 60000,
        signal,
        // Named in the record at once: a daemon that dies mid-boot leaves a QEMU the next one can find.
        onSpawn: (pid) => this.o.store.update(rec.id, { pid, pidStart: processStartTime(pid) }),
      });
    } catch (e) {
      if (bridged) await deleteLink(bridged.tap).catch(() => undefined);
      const err = explainBootFailure(e as MvmError);
      this.o.store.transition(rec.id, ["starting"], "crashed", {
        pid: undefined,
        pidStart: undefined,
        lastExit: { exitCode: null, signal: null, at: new Date().toISOString(), reason: `boot failed: ${err.message}` },
      });
      throw err;
    }
    this.guests.set(rec.id, guest);
    const running = this.o.store.transition(rec.id, ["starting"], "running", {
      pid: guest.process.pid,
      pidStart: processStartTime(guest.process.pid),
      argv: flattenArgv(guest.argv),
      kernelRelease: guest.hello?.kernel,
      timings: {
        startedAt: new Date(Date.now() - guest.now()).toISOString(),
        qmpMs: guest.timeline.qmpReadyMs,
        helloMs: guest.timeline.helloMs,
        guestInitUptimeMs: guest.timeline.guestInitUptimeMs,
        guestHelloUptimeMs: guest.timeline.guestHelloUptimeMs,
      },
    });
    this.watch(rec.id, guest);
    if (spec.command) this.commands.run(running, guest);
    return running;
  }

  /** Records how QEMU ended: stopped when asked or when the guest powered itself off, crashed otherwise. */
  private watch(id: string, guest: Guest): void {
    const recorded = guest.exited.then(async (exit: QemuExit) => {
      this.guests.delete(id);
      const rec = this.o.store.find(id);
      if (rec?.bridged) await deleteLink(rec.bridged.tap).catch(() => undefined);
      if (!rec || !isLive(rec.state)) return;
      const asked = rec.state === "stopping";
      const clean = asked || guest.guestShutdown;
      const how = exit.signal ? `killed by ${exit.signal}` : exit.known === false ? "exit status unknown (adopted)" : `status ${exit.code}`;
      const tail = readTail(vmFiles(this.dirOf(id)).qemuLog, 2000).trim();
      this.o.store.transition(id, ["starting", "running", "paused", "stopping"], clean ? "stopped" : "crashed", {
        pid: undefined,
        pidStart: undefined,
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
    const rec = this.o.store.get(ref);
    requireState(rec.name, "stop", rec.state);
    this.o.store.transition(rec.id, OPERATIONS.stop, "stopping");
    const guest = this.guests.get(rec.id);
    if (guest) await guest.stop({ timeoutMs: 10000 });
    else this.o.store.transition(rec.id, ["stopping"], "stopped", { pid: undefined });
    return this.settled(rec.id);
  }

  async kill(ref: string): Promise<VmRecord> {
    const rec = this.o.store.get(ref);
    requireState(rec.name, "kill", rec.state);
    this.o.store.transition(rec.id, OPERATIONS.kill, "stopping");
    const guest = this.guests.get(rec.id);
    if (guest) await guest.kill();
    else this.o.store.transition(rec.id, ["stopping"], "stopped", { pid: undefined });
    return this.settled(rec.id);
  }

  /** The record once the exit watcher has written QEMU's end to it. */
  private async settled(id: string): Promise<VmRecord> {
    await this.exitRecorded.get(id);
    return this.o.store.get(id);
  }

  async pause(ref: string): Promise<VmRecord> {
    const rec = this.o.store.get(ref);
    requireState(rec.name, "pause", rec.state);
    await this.qmpOf(rec).execute("stop");
    return this.o.store.transition(rec.id, OPERATIONS.pause, "paused");
  }

  async resume(ref: string): Promise<VmRecord> {
    const rec = this.o.store.get(ref);
    requireState(rec.name, "resume", rec.state);
    await this.qmpOf(rec).execute("cont");
    return this.o.store.transition(rec.id, OPERATIONS.resume, "running");
  }

  private guestOf(rec: VmRecord): Guest {
    const g = this.guests.get(rec.id);
    if (!g) throw new MvmError(`VM ${rec.name} is ${rec.state} but this daemon has no connection to its QEMU`, { hint: `kill it (mvm kill ${rec.name}) and start it again` });
    return g;
  }

  private qmpOf(rec: VmRecord) {
    const q = this.guestOf(rec).qmp;
    if (!q) throw new MvmError(`VM ${rec.name} has no QMP connection`, { hint: `kill it (mvm kill ${rec.name}) and start it again` });
    return q;
  }

  /** The serial console of a running or paused VM, for an interactive client. */
  openConsole(ref: string, onData: (b: Buffer) => void): { name: string; write: (b: Buffer) => void; close: () => void } {
    const rec = this.o.store.get(ref);
    if (rec.state !== "running" && rec.state !== "paused") requireState(rec.name, "exec", rec.state);
    return { name: rec.name, ...this.guestOf(rec).openConsole(onData) };
  }

  /** Starts a command; a background one outlives the client (see SessionRegistry). */
  exec(ref: string, options: ExecOptions & { background?: boolean }): TrackedSession {
    const { rec, agent } = this.agentFor(ref, "exec");
    return this.sessions.start(rec.id, (o) => agent.exec(o), options);
  }

  /** The agent channel of a running VM, for commands and file operations. */
  agentFor(ref: string, operation: "exec" | "files" = "exec"): { rec: VmRecord; agent: AgentClient } {
    const rec = this.o.store.get(ref);
    requireState(rec.name, operation, rec.state);
    const agent = this.guestOf(rec).agent;
    if (!agent || agent.closed) throw new MvmError(`the agent of VM ${rec.name} is not connected`, { hint: "the VM may be stopping; check mvm ps" });
    return { rec, agent };
  }

  async remove(ref: string, force = false): Promise<void> {
    const rec = this.o.store.get(ref);
    requireState(rec.name, force ? "forceRemove" : "remove", rec.state);
    if (isLive(rec.state)) await this.kill(rec.id).catch(() => undefined);
    this.o.store.remove(rec.id, ["created", "stopped", "crashed"]);
    this.o.networks.release(rec.id);
    if (rec.bridged) await deleteLink(rec.bridged.tap).catch(() => undefined);
    this.commands.forget(rec.id);
    await rm(this.dirOf(rec.id), { recursive: true, force: true });
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

  /**
   * At daemon start: every record in a live state is checked against reality. A QEMU still running (same
   * pid and start time) is adopted; one that is gone makes the VM crashed (or stopped if it was stopping).
   */
  async reconcile(): Promise<void> {
    for (const rec of this.o.store.list()) {
      if (!isLive(rec.state)) continue;
      const alive = rec.pid !== undefined && rec.pidStart !== undefined && processStartTime(rec.pid) === rec.pidStart;
      // A VM caught mid-boot is not adopted: its boot had no one to finish it. It is killed below.
      if (alive && rec.state !== "starting") {
        try {
          const guest = await adoptGuest({ dir: this.dirOf(rec.id), pid: rec.pid!, pidStart: rec.pidStart!, timeoutMs: 10000 });
          this.guests.set(rec.id, guest);
          const status = await guest.qmp?.execute<{ status: string }>("query-status");
          const state = status?.status === "paused" ? "paused" : "running";
          this.o.store.transition(rec.id, [rec.state], state);
          this.watch(rec.id, guest);
          // A paused guest cannot answer; its commands stay unknown to this daemon (noted in docs/api.md).
          if (state === "running") await this.commands.adopt(rec, guest);
          else guest.agent?.releaseOrphans();
          continue;
        } catch {
          /* not answering: killed below, as it cannot be managed */
        }
      }
      // Nothing may keep running unseen.
      if (alive) {
        try {
          process.kill(rec.pid!, "SIGKILL");
        } catch {
          /* gone meanwhile */
        }
      }
      this.o.store.transition(rec.id, [rec.state], rec.state === "stopping" ? "stopped" : "crashed", {
        pid: undefined,
        pidStart: undefined,
        lastExit: {
          exitCode: null,
          signal: null,
          at: new Date().toISOString(),
          reason: alive
            ? rec.state === "starting"
              ? "the daemon stopped while the VM was booting; its QEMU was killed"
              : "its QEMU stopped answering while the daemon was away; it was killed"
            : "its QEMU ended while the daemon was away (or the host restarted)",
        },
      });
    }
  }

  /** After a restart (of the daemon or the host): bridges exist again, and no stopped VM keeps a tap. */
  restoreNetworks(log: (line: string) => void): Promise<void> {
    return this.nets.restore(log);
  }

  listNetworks(): Array<NetworkRecord & { vms: string[] }> {
    return this.nets.list();
  }

  createNetwork(name: string, o: { subnet?: string; nat?: boolean }): Promise<NetworkRecord> {
    return this.nets.create(name, o);
  }

  removeNetwork(name: string): Promise<void> {
    return this.nets.remove(name);
  }

  /** Whether the manager holds a live connection to this VM. */
  connected(id: string): boolean {
    return this.guests.has(id);
  }
}

export { NotFoundError };
