// Resource limits a user can set on a VM: disk bandwidth and IOPS (QEMU's throttling, one group per VM, so
// the limit is shared by all its disks), network bandwidth (tc on a bridged VM's tap, both ways), and CPU
// and memory (the control group the jail puts each QEMU in: src/host/cgroups.ts). Rates as users write them:
// "5M" (MiB/s), "512K", "1G", "5MiB/s", or a number of bytes per second; memory as "768M", "1G" or bytes.
// The same checks serve the spec (at create) and a live change (PATCH /v1/vms/:ref/limits).

import { InvalidSizeError, InvalidSpecError } from "../errors.js";

export const LIMIT_KEYS = ["diskBps", "diskIops", "netBps", "cpuShare", "cpuMax", "memoryMax"] as const;
export type LimitKey = (typeof LIMIT_KEYS)[number];
/** The limits that live in the VM's control group: only a daemon whose jail makes groups can apply them. */
export const CGROUP_LIMIT_KEYS = ["cpuShare", "cpuMax", "memoryMax"] as const satisfies readonly LimitKey[];

/** The limits of a VM, checked. Absent: no limit (the jail's defaults, for the control group's). */
export interface Limits {
  /** Bytes per second, shared by the VM's disks. */
  diskBps?: number;
  diskIops?: number;
  /** Bytes per second, each way. */
  netBps?: number;
  /** Relative CPU weight against other VMs, 1..10000 (cgroup v2 cpu.weight; 100 is the kernel's default). */
  cpuShare?: number;
  /** A cap in cores (1.5: one and a half cores' time per period), at most the jail's default of vCPUs + 1. */
  cpuMax?: number;
  /** A cap on QEMU's whole memory, guest RAM included, in bytes. */
  memoryMax?: number;
}

/** A change of limits: a value sets one, null removes it, an absent key leaves it as it is. */
export type LimitsPatch = { [K in LimitKey]?: number | string | null };

const KIB = 1024;
/** Below this a guest's I/O mostly times out; above it, nothing a host can deliver (and QEMU's own cap is 1e15). */
export const RATE_BOUNDS = { min: 64 * KIB, max: KIB ** 4 };
export const IOPS_BOUNDS = { min: 10, max: 1_000_000 };

const UNITS: Record<string, number> = { "": 1, b: 1, k: KIB, kb: KIB, kib: KIB, m: KIB ** 2, mb: KIB ** 2, mib: KIB ** 2, g: KIB ** 3, gb: KIB ** 3, gib: KIB ** 3, t: KIB ** 4, tb: KIB ** 4, tib: KIB ** 4 };

/** "5M", "512K", "1G", "5MiB/s", 5242880 → bytes per second, within RATE_BOUNDS. */
export function parseRate(input: string | number, key: string): number {
  const text = String(input).trim();
  const m = /^(\d+)\s*([a-z]*)(\/s)?$/i.exec(text);
  const unit = m ? UNITS[m[2]!.toLowerCase()] : undefined;
  if (!m || unit === undefined) {
    throw new InvalidSizeError(`${key}: cannot read ${JSON.stringify(text)} as a rate`, { hint: "write bytes per second as a number (5242880) or with a unit: 512K, 5M, 1G (powers of 1024)" });
  }
  const bps = Number(m[1]) * unit;
  if (!Number.isSafeInteger(bps) || bps < RATE_BOUNDS.min || bps > RATE_BOUNDS.max) {
    throw new InvalidSizeError(`${key} ${text} is out of range`, { hint: `give between ${formatRate(RATE_BOUNDS.min)} and ${formatRate(RATE_BOUNDS.max)} per second (bytes; leave ${key} out for no limit)` });
  }
  return bps;
}

/** An I/O operations per second limit: a whole number within IOPS_BOUNDS. */
export function parseIops(input: string | number, key: string): number {
  const text = String(input).trim();
  const n = /^\d+$/.test(text) ? Number(text) : NaN;
  if (!Number.isSafeInteger(n)) throw new InvalidSizeError(`${key}: ${JSON.stringify(text)} is not a whole number of operations per second`, { hint: "write e.g. 500" });
  if (n < IOPS_BOUNDS.min || n > IOPS_BOUNDS.max) {
    throw new InvalidSizeError(`${key} ${text} is out of range`, { hint: `give between ${IOPS_BOUNDS.min} and ${IOPS_BOUNDS.max} operations per second (leave ${key} out for no limit)` });
  }
  return n;
}

/** cgroup v2's cpu.weight range; 100, the kernel's default, is what a VM without cpuShare has. */
export const CPU_SHARE_BOUNDS = { min: 1, max: 10000, default: 100 };
/** Cores: 0.01 is CFS's smallest quota (1 ms per 100 ms period); the top is the jail's default, vCPUs + 1. */
export const CPU_MAX_MIN = 0.01;
/**
 * What QEMU itself needs beside the guest's RAM, in MiB. Measured here on a 256 MiB TCG guest, its control
 * group held the guest RAM it had touched + 69 MiB after a cold boot, + 75 MiB with its RAM filled: ~50 MiB
 * of QEMU's own heap and the part of TCG's translation buffer the guest's code has filled (1 GiB reserved,
 * only written pages count, and they grow with the code a guest runs), ~20 MiB of QEMU's binary and
 * libraries (charged to the first group that maps them), and I/O buffers. 128 leaves ~50 MiB for the
 * buffer to grow: a cap below RAM + this floor could OOM-kill QEMU (v2) or stall it in reclaim (v1) when
 * the guest uses the memory it was told it has.
 */
export const QEMU_MEMORY_FLOOR_MIB = 128;
/** The largest memoryMax: the largest guest (1 TiB) and as much again for QEMU. */
const MEMORY_MAX_MAX = 2 * KIB ** 4;

/** A relative CPU weight: a whole number within CPU_SHARE_BOUNDS. */
export function parseCpuShare(input: string | number, key = "cpuShare"): number {
  const text = String(input).trim();
  const n = /^\d+$/.test(text) ? Number(text) : NaN;
  const hint = `give a weight from ${CPU_SHARE_BOUNDS.min} to ${CPU_SHARE_BOUNDS.max}, relative to other VMs (and to the daemon's other groups): ${CPU_SHARE_BOUNDS.default} is the default, 200 twice its share of a busy host`;
  if (!Number.isSafeInteger(n)) throw new InvalidSizeError(`${key}: ${JSON.stringify(text)} is not a whole number`, { hint });
  if (n < CPU_SHARE_BOUNDS.min || n > CPU_SHARE_BOUNDS.max) throw new InvalidSizeError(`${key} ${text} is out of range`, { hint });
  return n;
}

/** A cap in cores ("1.5", 0.3), to two decimals, from CPU_MAX_MIN to vCPUs + 1 (when `cpus` is known). */
export function parseCpuMax(input: string | number, cpus?: number, key = "cpuMax"): number {
  const text = String(input).trim();
  const top = cpus === undefined ? undefined : cpus + 1;
  const range = `from ${CPU_MAX_MIN} to ${top ?? "the VM's vCPUs + 1"} cores`;
  if (!/^\d+(\.\d{1,2})?$/.test(text)) throw new InvalidSizeError(`${key}: cannot read ${JSON.stringify(text)} as a number of cores`, { hint: `write cores with at most two decimals, ${range}: 0.5, 1.5` });
  const n = Number(text);
  if (n < CPU_MAX_MIN || (top !== undefined && n > top)) {
    throw new InvalidSizeError(`${key} ${text} is out of range`, {
      hint: `give ${range}: ${top === undefined ? "" : `the VM has ${cpus} vCPU${cpus === 1 ? "" : "s"}, and QEMU's default cap (the jail's) is one core more; `}cpuMax can lower it, not raise it (more vCPUs: --cpus)`,
    });
  }
  return n;
}

/**
 * A cap on QEMU's whole memory: "768M", "1G", or bytes. With the guest's RAM known (MiB), it must leave
 * QEMU_MEMORY_FLOOR_MIB beside it.
 */
export function parseMemoryMax(input: string | number, memoryMiB?: number, key = "memoryMax"): number {
  const text = String(input).trim();
  const m = /^(\d+)\s*([a-z]*)$/i.exec(text);
  const unit = m ? UNITS[m[2]!.toLowerCase()] : undefined;
  if (!m || unit === undefined) throw new InvalidSizeError(`${key}: cannot read ${JSON.stringify(text)} as a size`, { hint: "write a size with a unit, 768M or 2G (powers of 1024), or a number of bytes" });
  const bytes = Number(m[1]) * unit;
  const least = ((memoryMiB ?? 0) + QEMU_MEMORY_FLOOR_MIB) * KIB ** 2;
  if (!Number.isSafeInteger(bytes) || bytes > MEMORY_MAX_MAX) throw new InvalidSizeError(`${key} ${text} is out of range`, { hint: `give at most ${formatRate(MEMORY_MAX_MAX)}` });
  if (bytes < least) {
    const what = memoryMiB === undefined ? `the ${QEMU_MEMORY_FLOOR_MIB} MiB QEMU itself needs` : `what the VM needs: its ${memoryMiB} MiB of guest RAM and ${QEMU_MEMORY_FLOOR_MIB} MiB for QEMU itself`;
    throw new InvalidSizeError(`${key} ${text} is below ${what}`, {
      hint: `give at least ${formatRate(least)}: memoryMax caps QEMU's whole memory, guest RAM included (a plain number is bytes: write 768M, not 768); for a smaller VM lower --memory`,
    });
  }
  return bytes;
}

/** Cores as mvm writes them back: "1.5", "0.3". */
export const formatCores = (cores: number): string => String(Math.round(cores * 100) / 100);

/** Bytes per second as mvm writes them back: "5M", "512K", or plain bytes when no unit divides them. */
export function formatRate(bps: number): string {
  for (const [unit, size] of [["T", KIB ** 4], ["G", KIB ** 3], ["M", KIB ** 2], ["K", KIB]] as const) if (bps >= size && bps % size === 0) return `${bps / size}${unit}`;
  return String(bps);
}

/** What the limits apply to, from the VM's spec. */
export interface LimitTarget {
  name?: string;
  network: string;
  /** How many virtio-blk disks the VM has (its image's root disk and its own). */
  disks: number;
  /** vCPUs and guest RAM (MiB): the bounds of cpuMax and memoryMax, when known. */
  cpus?: number;
  memoryMiB?: number;
}

/**
 * Checks that each limit can be applied to this VM: a disk limit needs a disk, a network limit a bridged
 * network (tc on its tap). User networking is slirp inside QEMU: its traffic leaves through QEMU's own
 * sockets, which no per-VM tc qdisc sees and QEMU cannot rate-limit.
 */
export function checkLimitTargets(l: Limits, t: LimitTarget): void {
  const vm = t.name ? `VM ${t.name}` : "the VM";
  for (const key of ["diskBps", "diskIops"] as const) {
    if (l[key] !== undefined && t.disks === 0) throw new InvalidSpecError(`${key} limits the VM's disks, and ${vm} has none`, { hint: "add --image NAME or --disk PATH, or leave the disk limits out" });
  }
  if (l.netBps === undefined) return;
  if (t.network === "none") throw new InvalidSpecError(`netBps limits the VM's network, and ${vm} has none (network none)`, { hint: "put the VM on a bridged network (mvm network create NAME; --network NAME)" });
  if (t.network.startsWith("user")) {
    throw new InvalidSpecError(`netBps cannot be applied on a user network: slirp runs inside QEMU and sends the guest's traffic through QEMU's own sockets, which neither QEMU nor a per-VM tc qdisc can rate-limit`, {
      hint: "put the VM on a bridged network, where mvm shapes its tap with tc (mvm network create NAME; --network NAME --net-bps 10M)",
    });
  }
}

/** The spec's limit keys (as written) checked into Limits; absent keys stay absent. */
export function checkLimits(s: LimitsPatch, t: LimitTarget): Limits {
  const out: Limits = {};
  for (const key of LIMIT_KEYS) {
    const v = s[key];
    if (v === undefined || v === null) continue;
    out[key] =
      key === "diskIops" ? parseIops(v, key)
      : key === "cpuShare" ? parseCpuShare(v, key)
      : key === "cpuMax" ? parseCpuMax(v, t.cpus, key)
      : key === "memoryMax" ? parseMemoryMax(v, t.memoryMiB, key)
      : parseRate(v, key);
  }
  checkLimitTargets(out, t);
  return out;
}

/** The limits after a change: null removes a limit, a value replaces it, an absent key keeps it. */
export function patchLimits(current: Limits, patch: LimitsPatch, t: LimitTarget): Limits {
  const next: LimitsPatch = { ...limitsOf(current) };
  for (const key of LIMIT_KEYS) {
    if (!(key in patch) || patch[key] === undefined) continue;
    if (patch[key] === null) delete next[key];
    else next[key] = patch[key];
  }
  return checkLimits(next, t);
}

/** Whether any limit that lives in the control group is set. */
export const wantsCgroup = (l: Limits): boolean => CGROUP_LIMIT_KEYS.some((k) => l[k] !== undefined);

/** Only the limit keys of a spec (or of anything else that has them). */
export function limitsOf(s: Limits): Limits {
  const out: Limits = {};
  for (const key of LIMIT_KEYS) if (s[key] !== undefined) out[key] = s[key];
  return out;
}
