// Snapshots of users' VMs and the states of suspended ones: a guest's whole state (RAM included) saved over
// QMP while it is stopped, with a copy of its root disk taken at the same moment, so the two agree. A
// snapshot lives under <home>/snapshots/<name>/ and is written into a temporary directory first: a full
// disk or a QEMU that fails leaves nothing registered, and the VM runs on as it was.

import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { copyFile, mkdir, readFile, readdir, rename, rm, stat, statfs, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { HostDiskFullError, InvalidArgumentError, InvalidSpecError, NameTakenError, NotFoundError, QemuBuildMismatchError } from "../errors.js";
import { SNAPSHOT_NAME_PATTERN } from "../api/snapshot-schemas.js";
import { saveGuestState } from "../vm/state-drop.js";
import type { VmRecord } from "../store/vm-store.js";
import type { Guest } from "../vm/launch.js";
import { vmFiles } from "../vm/layout.js";
import { checkSpec, type VmSpec, type VmSpecInput } from "../vmspec/vm-spec.js";
import { checkLimits, limitsOf } from "../vmspec/limits.js";

export interface QemuBuild {
  sha256: string;
  version: string;
}

export interface SnapshotMeta {
  name: string;
  /** The VM it was taken of (which may be gone since). */
  vm: { id: string; name: string };
  spec: VmSpec;
  qemuBuild: QemuBuild;
  createdAt: string;
  stateBytes: number;
  diskBytes?: number;
  /** How long the VM was stopped for it. */
  pausedMs: number;
  /** The token that owns it: its VM's owner when it was taken (src/auth/ownership.ts); absent for the host's root. */
  owner?: string;
}

export interface Snapshot extends SnapshotMeta {
  dir: string;
  stateFile: string;
  disk?: string;
}

/** Snapshot names are VM-like names: they become directory names. */
function checkName(name: string): void {
  if (!new RegExp(SNAPSHOT_NAME_PATTERN).test(name)) throw new InvalidArgumentError(`invalid snapshot name ${JSON.stringify(name)}`, { hint: "lower-case letters, digits and '-', at most 63" });
}

const snapshotFiles = (dir: string) => ({ meta: join(dir, "meta.json"), state: join(dir, "state"), disk: join(dir, "disk.qcow2") });

/**
 * Saves the guest's state and a copy of its root disk into `dir` (which must not exist yet). The guest is
 * stopped for it and continues afterwards unless `keepStopped` (a suspend ends it instead).
 */
export async function captureGuest(guest: Guest, rec: VmRecord, dir: string, o: { keepStopped: boolean }): Promise<{ stateBytes: number; diskBytes?: number; pausedMs: number }> {
  const wasRunning = (await guest.qmp.execute<{ running: boolean }>("query-status")).running;
  const f = snapshotFiles(dir);
  await mkdir(dir, { mode: 0o700 });
  const t0 = performance.now();
  let ok = false;
  try {
    await saveGuestState(guest, f.state, { ignoreShared: false });
    // Stopped, and its disks flushed by the stop: the copy is of the same moment as the state.
    if (rec.spec.image) await copyFile(vmFiles(guest.dir).rootOverlay, f.disk);
    ok = true;
  } catch (e) {
    // QEMU writes the state through `cat`, so a full disk reaches it as a failed migration, not ENOSPC: the
    // filesystem is asked, before the partial files go.
    const free = await statfs(dir).then((f) => f.bavail * f.bsize, () => undefined);
    if ((e as NodeJS.ErrnoException).code === "ENOSPC" || (free !== undefined && free < 1024 * 1024)) {
      throw new HostDiskFullError(`no space left on the host's disk to save VM ${rec.name}'s state in ${dir} (${free ?? 0} bytes free); nothing was kept, and the VM goes on as it was`, { details: { dir, freeBytes: free }, cause: e });
    }
    throw e;
  } finally {
    if (!ok) await rm(dir, { recursive: true, force: true });
    if (wasRunning && (!o.keepStopped || !ok)) await guest.qmp.execute("cont").catch(() => undefined);
  }
  const pausedMs = Math.round(performance.now() - t0);
  return { stateBytes: (await stat(f.state)).size, diskBytes: rec.spec.image ? (await stat(f.disk)).size : undefined, pausedMs };
}

/** Refuses a state saved by another QEMU build: QEMU would fail to load it, or worse, half-load it. */
export function requireBuild(saved: QemuBuild, current: QemuBuild | undefined, what: string): void {
  if (current && saved.sha256 === current.sha256) return;
  throw new QemuBuildMismatchError(`${what} was saved by QEMU ${saved.version} (build ${saved.sha256.slice(0, 12)}), and this VM would run on ${current ? `QEMU ${current.version} (build ${current.sha256.slice(0, 12)})` : "a QEMU that cannot be probed"}`, {
    details: { saved, current },
  });
}

/** What a VM made from a snapshot may set itself; the rest is the snapshot's machine. */
const SNAPSHOT_OVERRIDES = ["snapshot", "name", "hostname", "env", "ports", "command", "workdir", "user", "diskBps", "diskIops", "netBps", "ttl", "labels"];

/**
 * The spec of a VM made from a snapshot: the snapshot's machine (its memory, disk and devices must match
 * the saved state), with only what makes a VM distinct taken from the request.
 */
export function specFromSnapshot(raw: VmSpecInput, snap: Snapshot, nameTaken: (name: string) => boolean): VmSpec {
  const own = Object.keys(raw).filter((k) => !SNAPSHOT_OVERRIDES.includes(k));
  if (own.length) throw new InvalidSpecError(`${own.join(", ")} cannot be given with a snapshot: the VM is the snapshot's machine`, { hint: `only ${SNAPSHOT_OVERRIDES.join(", ")} may be given beside snapshot` });
  const { diskBps, diskIops, netBps, ...rest } = raw;
  const given = checkSpec({ ...rest, snapshot: undefined, network: snap.spec.network }, { nameTaken });
  // Limits are no part of the saved machine: the request's, checked against the snapshot's disks and network, else the snapshot VM's.
  const asked = diskBps !== undefined || diskIops !== undefined || netBps !== undefined;
  const limits = asked ? checkLimits({ diskBps, diskIops, netBps }, { network: snap.spec.network, disks: (snap.spec.image ? 1 : 0) + snap.spec.disks.length }) : limitsOf(snap.spec);
  return {
    ...snap.spec,
    name: given.name,
    hostname: given.hostname,
    env: raw.env ? given.env : snap.spec.env,
    ports: given.ports,
    command: given.command,
    workdir: given.workdir,
    user: given.user,
    snapshot: snap.name,
    ttlMs: given.ttlMs,
    labels: given.labels,
    diskBps: limits.diskBps,
    diskIops: limits.diskIops,
    netBps: limits.netBps,
  };
}

export class SnapshotStore {
  readonly root: string;

  constructor(home: string) {
    this.root = join(home, "snapshots");
  }

  async create(guest: Guest, rec: VmRecord, name: string, qemuBuild: QemuBuild): Promise<Snapshot> {
    checkName(name);
    const dir = join(this.root, name);
    if (existsSync(dir)) throw new NameTakenError(`a snapshot named ${name} already exists`, { hint: `remove it first (mvm snapshot rm ${name}) or pick another --name` });
    await mkdir(this.root, { recursive: true, mode: 0o700 });
    const tmp = join(this.root, `.tmp-${name}-${randomBytes(3).toString("hex")}`);
    const taken = await captureGuest(guest, rec, tmp, { keepStopped: false });
    const meta: SnapshotMeta = { name, vm: { id: rec.id, name: rec.name }, spec: rec.spec, qemuBuild, createdAt: new Date().toISOString(), ...taken, ...(rec.owner === undefined ? {} : { owner: rec.owner }) };
    try {
      await writeFile(snapshotFiles(tmp).meta, `${JSON.stringify(meta, null, 2)}\n`);
      if (existsSync(dir)) throw new NameTakenError(`a snapshot named ${name} was made meanwhile`, { hint: "pick another --name" });
      await rename(tmp, dir);
    } catch (e) {
      await rm(tmp, { recursive: true, force: true });
      throw e;
    }
    return this.withPaths(meta);
  }

  private withPaths(meta: SnapshotMeta): Snapshot {
    const dir = join(this.root, meta.name);
    const f = snapshotFiles(dir);
    return { ...meta, dir, stateFile: f.state, disk: meta.diskBytes !== undefined ? f.disk : undefined };
  }

  async get(name: string): Promise<Snapshot> {
    checkName(name);
    try {
      return this.withPaths(JSON.parse(await readFile(snapshotFiles(join(this.root, name)).meta, "utf8")) as SnapshotMeta);
    } catch {
      throw new NotFoundError(`no snapshot named ${name}`, { hint: "list them with mvm snapshot ls" });
    }
  }

  async list(): Promise<Snapshot[]> {
    const names = (await readdir(this.root).catch(() => [] as string[])).filter((n) => !n.startsWith("."));
    const all = await Promise.all(names.map((n) => this.get(n).catch(() => undefined)));
    return all.filter((s): s is Snapshot => s !== undefined).sort((a, b) => a.createdAt.localeCompare(b.createdAt));
  }

  async remove(name: string): Promise<void> {
    const s = await this.get(name);
    await rm(s.dir, { recursive: true, force: true });
  }

  /** Half-written snapshots a killed daemon left behind. */
  async sweep(): Promise<void> {
    for (const n of await readdir(this.root).catch(() => [] as string[])) if (n.startsWith(".tmp-")) await rm(join(this.root, n), { recursive: true, force: true });
  }
}
