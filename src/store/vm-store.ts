// VM records in SQLite. Every change is one statement or one transaction, and state changes are
// compare-and-set (UPDATE ... WHERE state IN (...)), so concurrent clients can never duplicate a name,
// lose an update, or move a VM along a transition it no longer allows.

import { randomBytes } from "node:crypto";
import type Database from "better-sqlite3";
import { openDatabase } from "./database.js";
import { NameTakenError, NotFoundError, WrongStateError } from "../errors.js";
import type { VmSpec } from "../vmspec/vm-spec.js";
import type { VmState } from "../vm/state.js";

export interface VmExit {
  /** The command's (or QEMU's) exit code, or null when a signal ended it. */
  exitCode: number | null;
  signal: number | string | null;
  /** Docker-style single status (126, 127, 128+N ...), when it is the command's exit. */
  status?: number;
  at: string;
  reason: string;
  /** What the agent said about the command's end (it could not run it, it timed out) or the error that lost it. */
  message?: string;
}

export interface BootInfo {
  how: "cold" | "clone" | "pool" | "snapshot" | "resume";
  reason: string;
  /** The template's key (clones and pool). */
  template?: string;
  /** Start request → ready, as the daemon measured it. */
  readyMs?: number;
}

export interface VmRuntimeInfo {
  pid?: number;
  /** The process start time (field 22 of /proc/PID/stat): tells a re-used pid from ours. */
  pidStart?: string;
  accel?: { chosen: string; reason: string };
  binary?: { kind: string; path: string; reason: string };
  argv?: string[];
  timings?: { startedAt?: string; qmpMs?: number; restoredMs?: number; helloMs?: number; guestInitUptimeMs?: number; guestHelloUptimeMs?: number };
  kernelRelease?: string;
  /** How the last start went (cold boot, clone of a template, parked QEMU, saved state), why, and how fast. */
  boot?: BootInfo;
  /** A suspended VM's saved state (docs/instant-start.md). */
  suspended?: { stateFile: string; qemuBuild: { sha256: string; version: string }; savedAt: string; wasPaused: boolean; stateBytes: number };
  /** The root overlay has run a guest: a clone cannot take it over any more (its disk is its own). */
  diskUsed?: boolean;
  /** The VM's place on a bridged network, allocated at create. */
  bridged?: { network: string; ip: string; prefix: number; gateway: string; tap: string };
  /** The limits in effect on the running QEMU, as last applied (at start, or by a live change). */
  limits?: AppliedLimits;
}

export interface AppliedLimits {
  diskBps?: number;
  diskIops?: number;
  netBps?: number;
  cpuShare?: number;
  cpuMax?: number;
  memoryMax?: number;
  /** The virtio-blk devices throttled (ids on QEMU's argv) and their shared throttle group. */
  disks: string[];
  group?: string;
  /** The tap shaped with tc (bridged networks). */
  tap?: string;
  /** The control group cpuShare, cpuMax and memoryMax were written to. */
  cgroup?: string;
  appliedAt: string;
}

export interface VmRecord extends VmRuntimeInfo {
  id: string;
  name: string;
  /** The token that created it (src/auth/ownership.ts); absent for the host's root, and for VMs made before tokens. */
  owner?: string;
  spec: VmSpec;
  state: VmState;
  /** When the daemon kills and removes the VM (its time to live, src/daemon/expiry.ts), ISO 8601. */
  expiresAt?: string;
  lastExit?: VmExit;
  /** The command's last exit (kept apart from QEMU's). */
  commandExit?: VmExit;
  createdAt: string;
  updatedAt: string;
}

interface Row {
  id: string;
  name: string;
  state: VmState;
  data: string;
  created_at: string;
  updated_at: string;
}

/** A committed change of a record, as VmStore.onChange hears it (the daemon's event bus listens). */
export type StoreChange = { kind: "created" | "removed"; rec: VmRecord } | { kind: "state"; rec: VmRecord; from: VmState };

export class VmStore {
  private readonly db: Database.Database;
  /** Told of each change once it is committed: creates, state changes, removals. It must not throw. */
  onChange?: (c: StoreChange) => void;
  private readonly listRows: Database.Statement;
  private readonly dataVersion: Database.Statement;
  /**
   * Every record, parsed, as last read: GET /v1/vms and every :ref lookup read it rather than parse each
   * row's JSON again (that was most of a list request's time). It is good while this connection has
   * written nothing since (`writes`) and no other connection has committed (SQLite's data_version).
   */
  private cache?: { version: number; writes: number; records: readonly VmRecord[] };
  private writes = 0;

  constructor(path: string) {
    this.db = openDatabase(path);
    this.db.exec(`CREATE TABLE IF NOT EXISTS vms (
      id TEXT PRIMARY KEY,
      name TEXT NOT NULL UNIQUE,
      state TEXT NOT NULL,
      data TEXT NOT NULL,
      created_at TEXT NOT NULL,
      updated_at TEXT NOT NULL
    )`);
    this.listRows = this.db.prepare("SELECT * FROM vms ORDER BY created_at");
    this.dataVersion = this.db.prepare("PRAGMA data_version").pluck();
  }

  close(): void {
    this.db.close();
  }

  /** Records are frozen, deep: the cache hands the same objects to every caller, so none may change one. */
  private static toRecord(row: Row): VmRecord {
    const data = JSON.parse(row.data) as Omit<VmRecord, "id" | "name" | "state" | "createdAt" | "updatedAt">;
    return deepFreeze({ ...data, id: row.id, name: row.name, state: row.state, createdAt: row.created_at, updatedAt: row.updated_at });
  }

  /** The cached records, if nothing was committed since they were read. */
  private fresh(): readonly VmRecord[] | undefined {
    const c = this.cache;
    return c && c.writes === this.writes && c.version === (this.dataVersion.get() as number) ? c.records : undefined;
  }

  private static data(r: Partial<VmRecord>): string {
    const { id, name, state, createdAt, updatedAt, ...rest } = r;
    return JSON.stringify(rest);
  }

  create(spec: VmSpec, extra: Pick<VmRecord, "owner" | "expiresAt"> = {}): VmRecord {
    const id = randomBytes(6).toString("hex");
    const now = new Date().toISOString();
    try {
      this.writes++;
      this.db
        .prepare("INSERT INTO vms (id, name, state, data, created_at, updated_at) VALUES (?, ?, 'created', ?, ?, ?)")
        .run(id, spec.name, VmStore.data({ ...extra, spec }), now, now);
    } catch (e) {
      if ((e as { code?: string }).code === "SQLITE_CONSTRAINT_UNIQUE") {
        throw new NameTakenError(`a VM named ${spec.name} already exists`, { hint: `pick another --name, or remove the old one (mvm rm ${spec.name})`, details: { name: spec.name } });
      }
      throw e;
    }
    const rec = this.get(id);
    this.onChange?.({ kind: "created", rec });
    return rec;
  }

  nameTaken(name: string): boolean {
    return this.db.prepare("SELECT 1 FROM vms WHERE name = ?").get(name) !== undefined;
  }

  /** By name, by id, or by a unique id prefix. */
  find(ref: string): VmRecord | undefined {
    const cached = this.fresh();
    if (cached) {
      const exact = cached.find((r) => r.name === ref || r.id === ref);
      if (exact || !/^[0-9a-f]{3,}$/.test(ref)) return exact;
      const matches = cached.filter((r) => r.id.startsWith(ref));
      return matches.length === 1 ? matches[0] : undefined;
    }
    const row =
      (this.db.prepare("SELECT * FROM vms WHERE name = ? OR id = ?").get(ref, ref) as Row | undefined) ??
      (() => {
        if (!/^[0-9a-f]{3,}$/.test(ref)) return undefined;
        const rows = this.db.prepare("SELECT * FROM vms WHERE id LIKE ? LIMIT 2").all(`${ref}%`) as Row[];
        return rows.length === 1 ? rows[0] : undefined;
      })();
    return row ? VmStore.toRecord(row) : undefined;
  }

  get(ref: string): VmRecord {
    const r = this.find(ref);
    if (!r) throw new NotFoundError(`no VM named ${ref}`, { hint: "list VMs with mvm ps -a", details: { vm: ref } });
    return r;
  }

  list(): VmRecord[] {
    const cached = this.fresh();
    if (cached) return [...cached];
    const version = this.dataVersion.get() as number;
    const records = (this.listRows.all() as Row[]).map((r) => VmStore.toRecord(r));
    this.cache = { version, writes: this.writes, records };
    return [...records];
  }

  /**
   * Moves a VM to `to` only if it is in one of `from`, merging `patch` into its data, atomically.
   * Throws WrongStateError (naming the state it is really in) when another caller got there first.
   */
  transition(id: string, from: readonly VmState[], to: VmState, patch: Partial<VmRecord> = {}): VmRecord {
    let was: VmState | undefined;
    const rec = this.db.transaction(() => {
      const current = this.get(id);
      if (!from.includes(current.state)) {
        throw new WrongStateError(`VM ${current.name} is ${current.state}, not ${from.join(" or ")}`, {
          details: { vm: current.name, state: current.state, expected: from, target: to },
          hint: "another request changed it first; check mvm ps -a",
        });
      }
      was = current.state;
      const merged = { ...current, ...patch };
      this.writes++;
      this.db
        .prepare("UPDATE vms SET state = ?, data = ?, updated_at = ? WHERE id = ?")
        .run(to, VmStore.data(merged), new Date().toISOString(), id);
      return this.get(id);
    }).immediate();
    if (was !== undefined && was !== to) this.onChange?.({ kind: "state", rec, from: was });
    return rec;
  }

  /** Merges fields that are not the state. */
  update(id: string, patch: Partial<VmRecord>): VmRecord {
    return this.db.transaction(() => {
      const merged = { ...this.get(id), ...patch };
      this.writes++;
      this.db.prepare("UPDATE vms SET data = ?, updated_at = ? WHERE id = ?").run(VmStore.data(merged), new Date().toISOString(), id);
      return this.get(id);
    }).immediate();
  }

  /** Deletes the record if it is in one of `from`. */
  remove(id: string, from: readonly VmState[]): void {
    const gone = this.db.transaction(() => {
      const current = this.get(id);
      if (!from.includes(current.state)) {
        throw new WrongStateError(`VM ${current.name} is ${current.state}; it cannot be removed now`, { details: { vm: current.name, state: current.state } });
      }
      this.writes++;
      this.db.prepare("DELETE FROM vms WHERE id = ?").run(id);
      return current;
    }).immediate();
    this.onChange?.({ kind: "removed", rec: gone });
  }
}

function deepFreeze<T>(o: T): T {
  if (o && typeof o === "object" && !Object.isFrozen(o)) {
    Object.freeze(o);
    for (const v of Object.values(o)) deepFreeze(v);
  }
  return o;
}
