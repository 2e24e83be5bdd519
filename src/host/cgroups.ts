// A control group per QEMU: memory, pids and CPU limits the guest cannot lift, on cgroup v2 where the host
// has its controllers, else on the v1 hierarchies (hybrid hosts such as this project's CI machines mount v2
// with no resource controller in it). The groups sit below the daemon's own group, so a daemon that is
// itself limited (a container, a service) cannot hand its VMs more than it has.
//   v2: <own>/mvm/<label>, the daemon moved to the leaf <own>/mvm-daemon first (v2 allows processes only
//       in leaves once controllers are enabled for children).
//   v1: <mount of each controller>/<own there>/mvm/<label>.
// QEMU joins its group before it execs (src/jail/jail.ts writes its pid to each cgroup.procs listed here).

import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { MemoryInUseError } from "../errors.js";

export type CgroupMode = "v2" | "v1" | "none";
const CONTROLLERS = ["memory", "pids", "cpu"] as const;

export interface CgroupLimits {
  memoryBytes: number;
  pids: number;
  /** CPU time per 100 ms period, in µs (100000 = one core). */
  cpuQuotaUs: number;
}

export interface CgroupHost {
  mode: CgroupMode;
  /** Why this mode, or why none. */
  reason: string;
  /** Per controller, the directory mvm's groups go under. */
  parents: Partial<Record<(typeof CONTROLLERS)[number], string>>;
}

const PERIOD_US = 100000;

function readOwn(procCgroup: string, controller: string | undefined): string | undefined {
  for (const line of procCgroup.split("\n")) {
    const [, ctrls, path] = line.split(":");
    if (path === undefined) continue;
    if (controller === undefined ? ctrls === "" && line.startsWith("0::") : ctrls!.split(",").includes(controller)) return path;
  }
  return undefined;
}

/**
 * Finds where this process may make groups, making the parents (and moving itself to a leaf on v2). `root`
 * is /sys/fs/cgroup except in tests. Never throws: a host without usable cgroups is mode "none" with a reason.
 */
export function setUpCgroups(root = "/sys/fs/cgroup", procCgroup = readFileSync("/proc/self/cgroup", "utf8"), pid = process.pid): CgroupHost {
  const v2Controllers = existsSync(join(root, "cgroup.controllers")) ? readFileSync(join(root, "cgroup.controllers"), "utf8").split(/\s+/) : [];
  const errors: string[] = [];
  if (CONTROLLERS.every((c) => v2Controllers.includes(c))) {
    try {
      const own = join(root, readOwn(procCgroup, undefined) ?? "/");
      const parent = join(own, "mvm");
      if (!existsSync(parent)) {
        // Leave the group that will hold children: processes may only live in leaves then. Only this
        // process moves; if others share its group (a login session's shell), enabling the controllers
        // below fails (EBUSY) and the VMs go without limits, with that reason, rather than moving them.
        if (own !== root && readFileSync(join(own, "cgroup.procs"), "utf8").split("\n").includes(String(pid))) {
          mkdirSync(join(own, "mvm-daemon"), { recursive: true });
          writeFileSync(join(own, "mvm-daemon", "cgroup.procs"), String(pid));
        }
        writeFileSync(join(own, "cgroup.subtree_control"), CONTROLLERS.map((c) => `+${c}`).join(" "));
        mkdirSync(parent);
      }
      writeFileSync(join(parent, "cgroup.subtree_control"), CONTROLLERS.map((c) => `+${c}`).join(" "));
      return { mode: "v2", reason: "cgroup v2 with the memory, pids and cpu controllers", parents: { memory: parent, pids: parent, cpu: parent } };
    } catch (e) {
      errors.push(`v2: ${(e as Error).message}`);
    }
  }
  const parents: CgroupHost["parents"] = {};
  for (const c of CONTROLLERS) {
    const mount = join(root, c);
    const own = readOwn(procCgroup, c);
    if (own === undefined || !existsSync(join(mount, "cgroup.procs"))) continue;
    try {
      const parent = join(mount, own, "mvm");
      mkdirSync(parent, { recursive: true });
      parents[c] = parent;
    } catch (e) {
      errors.push(`v1 ${c}: ${(e as Error).message}`);
    }
  }
  if (Object.keys(parents).length === CONTROLLERS.length) return { mode: "v1", reason: `cgroup v1 (this host's v2 has ${v2Controllers.filter(Boolean).join(", ") || "no"} controllers)`, parents };
  return { mode: "none", reason: `no usable cgroup for ${CONTROLLERS.filter((c) => !parents[c]).join(", ")}${errors.length ? `: ${errors.join("; ")}` : ""}`, parents: {} };
}

/** The directories of one group (one for v2, one per controller for v1). */
export function groupDirs(host: CgroupHost, name: string): string[] {
  if (!/^[A-Za-z0-9_.-]{1,100}$/.test(name)) throw new RangeError(`cgroup name ${JSON.stringify(name)} is not a plain name`);
  return [...new Set(Object.values(host.parents).map((p) => join(p, name)))];
}

/** Makes the group with its limits; returns the cgroup.procs files QEMU's pid goes in. */
export function createGroup(host: CgroupHost, name: string, limits: CgroupLimits): string[] {
  if (host.mode === "none") return [];
  const dirs = groupDirs(host, name);
  for (const d of dirs) mkdirSync(d, { recursive: true });
  const set = (controller: (typeof CONTROLLERS)[number], file: string, value: string) => writeFileSync(join(host.parents[controller]!, name, file), value);
  if (host.mode === "v2") {
    set("memory", "memory.max", String(limits.memoryBytes));
    set("memory", "memory.swap.max", "0");
    set("pids", "pids.max", String(limits.pids));
    set("cpu", "cpu.max", `${limits.cpuQuotaUs} ${PERIOD_US}`);
  } else {
    set("memory", "memory.limit_in_bytes", String(limits.memoryBytes));
    set("pids", "pids.max", String(limits.pids));
    set("cpu", "cpu.cfs_period_us", String(PERIOD_US));
    set("cpu", "cpu.cfs_quota_us", String(limits.cpuQuotaUs));
  }
  return dirs.map((d) => join(d, "cgroup.procs"));
}

/** The limits a group has now, read back from its files (what `mvm inspect` shows). */
export function readLimits(host: CgroupHost, name: string): { memoryBytes?: number; pids?: number; cpuQuotaUs?: number; cpuWeight?: number; path: string } | undefined {
  if (host.mode === "none") return undefined;
  const read = (c: (typeof CONTROLLERS)[number], f: string) => readGroupFile(host, name, c, f);
  const num = (s: string | undefined) => (s === undefined || s === "max" ? undefined : Number(s.split(" ")[0]));
  const v2 = host.mode === "v2";
  const memory = read("memory", v2 ? "memory.max" : "memory.limit_in_bytes");
  if (memory === undefined) return undefined;
  const weight = v2 ? num(read("cpu", "cpu.weight")) : sharesToWeight(num(read("cpu", "cpu.shares")));
  return { memoryBytes: num(memory), pids: num(read("pids", "pids.max")), cpuQuotaUs: num(read("cpu", v2 ? "cpu.max" : "cpu.cfs_quota_us")), ...(weight === undefined ? {} : { cpuWeight: weight }), path: groupDirs(host, name)[0]! };
}

function readGroupFile(host: CgroupHost, name: string, controller: (typeof CONTROLLERS)[number], file: string): string | undefined {
  try {
    return readFileSync(join(host.parents[controller]!, name, file), "utf8").trim();
  } catch {
    return undefined;
  }
}

// The limits a user sets (src/vmspec/limits.ts: cpuShare, cpuMax, memoryMax), written into a QEMU's group
// that the jail made: each replaces the jail's default in the same file (its own group: nothing above it
// is touched), and `undefined` puts the default back.

/** cgroup v1's cpu.shares for a v2 cpu.weight: 100 ↔ 1024 (each one's default), within v1's 2..262144. */
export const weightToShares = (weight: number): number => Math.min(262144, Math.max(2, Math.round((weight * 1024) / 100)));
const sharesToWeight = (shares: number | undefined) => (shares === undefined ? undefined : Math.max(1, Math.round((shares * 100) / 1024)));

/** The group's relative CPU weight (1..10000; undefined: the kernel's default, 100). */
export function setCpuWeight(host: CgroupHost, name: string, weight: number | undefined): void {
  const w = weight ?? 100;
  if (host.mode === "v2") writeGroupFile(host, name, "cpu", "cpu.weight", String(w));
  else writeGroupFile(host, name, "cpu", "cpu.shares", String(weightToShares(w)));
}

/** The group's CPU cap in cores (2 decimals; at least 1 ms per period), or `defaultQuotaUs` (the jail's). */
export function setCpuMax(host: CgroupHost, name: string, cores: number | undefined, defaultQuotaUs: number): void {
  const quota = cores === undefined ? defaultQuotaUs : Math.max(1000, Math.round(cores * PERIOD_US));
  if (host.mode === "v2") writeGroupFile(host, name, "cpu", "cpu.max", `${quota} ${PERIOD_US}`);
  else writeGroupFile(host, name, "cpu", "cpu.cfs_quota_us", String(quota));
}

/**
 * The group's memory cap in bytes, or `defaultBytes` (the jail's). Lowering it below what the group uses
 * now is refused with MemoryInUseError, the old cap left in place: v1's kernel reclaims what it can and
 * answers EBUSY when that is not enough (guest RAM is unreclaimable without swap); v2's would reclaim and
 * then OOM-kill QEMU, so mvm refuses a cap below memory.current before writing it.
 */
export function setMemoryMax(host: CgroupHost, name: string, bytes: number | undefined, defaultBytes: number): void {
  const cap = bytes ?? defaultBytes;
  const usage = readMemoryUsage(host, name);
  const refuse = (how: string, cause?: unknown) =>
    new MemoryInUseError(`cannot set the memory cap to ${mib(cap)} MiB: QEMU's control group uses ${usage === undefined ? "more" : `${mib(usage)} MiB`} now (${how})`, {
      hint: `give a higher memoryMax (above ${usage === undefined ? "what it uses" : `${Math.ceil(usage / 1048576)}M`}), or stop the VM, set it, and start it again (mvm limits VM --memory-max SIZE while stopped)`,
      details: { group: name, capBytes: cap, usageBytes: usage },
      cause,
    });
  if (host.mode === "v2") {
    if (usage !== undefined && cap < usage) throw refuse("cgroup v2 would reclaim, then OOM-kill QEMU");
    writeGroupFile(host, name, "memory", "memory.max", String(cap));
    return;
  }
  try {
    writeGroupFile(host, name, "memory", "memory.limit_in_bytes", String(cap));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "EBUSY") throw refuse("the kernel could not reclaim enough: EBUSY", e);
    throw e;
  }
}

/** What the group's processes use now (bytes): v2 memory.current, v1 memory.usage_in_bytes. */
export function readMemoryUsage(host: CgroupHost, name: string): number | undefined {
  if (host.mode === "none") return undefined;
  const v = readGroupFile(host, name, "memory", host.mode === "v2" ? "memory.current" : "memory.usage_in_bytes");
  return v === undefined || !/^\d+$/.test(v) ? undefined : Number(v);
}

const mib = (bytes: number) => Math.round(bytes / 1048576);

function writeGroupFile(host: CgroupHost, name: string, controller: (typeof CONTROLLERS)[number], file: string, value: string): void {
  const parent = host.parents[controller];
  if (host.mode === "none" || !parent) throw new Error(`no ${controller} control group on this host`);
  groupDirs(host, name); // a plain name, or RangeError
  writeFileSync(join(parent, name, file), value);
}

/** The name of the mvm group a process is in (its memory controller's, or v2's), from /proc/PID/cgroup. */
export function groupOfProcess(pid: number, procRoot = "/proc"): string | undefined {
  try {
    for (const line of readFileSync(join(procRoot, String(pid), "cgroup"), "utf8").split("\n")) {
      const [, ctrls, path] = line.split(":");
      if (path === undefined || !(ctrls === "" || ctrls!.split(",").includes("memory"))) continue;
      const m = /\/mvm\/([^/]+)$/.exec(path);
      if (m) return m[1];
    }
  } catch {
    /* gone */
  }
  return undefined;
}

/** Removes a group once nothing runs in it (a live one is left, and false returned). */
export function removeGroup(host: CgroupHost, name: string): boolean {
  let all = true;
  for (const d of groupDirs(host, name)) {
    try {
      rmdirSync(d);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "ENOENT") all = false;
    }
  }
  return all;
}

/**
 * Removes every empty group of mvm's (QEMUs that ended while no daemon watched) made over a minute ago: a
 * younger one may belong to a QEMU another daemon is spawning right now. Returns their names.
 */
export function sweepGroups(host: CgroupHost, now = Date.now()): string[] {
  const removed: string[] = [];
  const first = Object.values(host.parents)[0];
  if (!first) return removed;
  for (const entry of readdirSync(first, { withFileTypes: true })) {
    if (!entry.isDirectory() || now - statSync(join(first, entry.name)).mtimeMs < 60000) continue;
    let procs = "";
    try {
      procs = readFileSync(join(first, entry.name, "cgroup.procs"), "utf8").trim();
    } catch {
      /* being removed by someone else */
    }
    if (procs === "" && removeGroup(host, entry.name)) removed.push(entry.name);
  }
  return removed;
}

/** What setUpCgroups would find, without making anything (for `mvm doctor`). */
export function cgroupSupport(root = "/sys/fs/cgroup"): { mode: CgroupMode; detail: string } {
  const v2 = existsSync(join(root, "cgroup.controllers")) ? readFileSync(join(root, "cgroup.controllers"), "utf8").split(/\s+/).filter(Boolean) : [];
  if (CONTROLLERS.every((c) => v2.includes(c))) return { mode: "v2", detail: `cgroup v2 with ${v2.join(", ")}` };
  const v1 = CONTROLLERS.filter((c) => existsSync(join(root, c, "cgroup.procs")));
  if (v1.length === CONTROLLERS.length) return { mode: "v1", detail: `cgroup v1 hierarchies for ${v1.join(", ")} (v2 has ${v2.join(", ") || "no controllers"})` };
  return { mode: "none", detail: `no memory, pids and cpu controllers (v2: ${v2.join(", ") || "none"}; v1: ${v1.join(", ") || "none"})` };
}

/**
 * Removes a group now, or keeps trying twice a second for 30 s: a QEMU that was just killed may still be
 * a zombie nobody has reaped yet (its parent, a daemon that died, is gone), and its group stays busy until
 * then. Resolves with whether it went.
 */
export function removeGroupSoon(host: CgroupHost, name: string): Promise<boolean> {
  return new Promise((resolve) => {
    let tries = 0;
    const attempt = () => {
      if (removeGroup(host, name)) return resolve(true);
      if (++tries >= 60) return resolve(false);
      setTimeout(attempt, 500).unref();
    };
    attempt();
  });
}
