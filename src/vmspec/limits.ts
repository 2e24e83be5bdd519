// Resource limits a user can set on a VM: disk bandwidth and IOPS (QEMU's throttling, one group per VM, so
// the limit is shared by all its disks) and network bandwidth (tc on a bridged VM's tap, both ways). Rates
// as users write them: "5M" (MiB/s), "512K", "1G", "5MiB/s", or a number of bytes per second. The same
// checks serve the spec (at create) and a live change (PATCH /v1/vms/:ref/limits).

import { InvalidSizeError, InvalidSpecError } from "../errors.js";

export const LIMIT_KEYS = ["diskBps", "diskIops", "netBps"] as const;
export type LimitKey = (typeof LIMIT_KEYS)[number];

/** The limits of a VM, checked: bytes per second and I/O operations per second. Absent: no limit. */
export interface Limits {
  diskBps?: number;
  diskIops?: number;
  netBps?: number;
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
    out[key] = key === "diskIops" ? parseIops(v, key) : parseRate(v, key);
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

/** Only the limit keys of a spec (or of anything else that has them). */
export function limitsOf(s: Limits): Limits {
  const out: Limits = {};
  for (const key of LIMIT_KEYS) if (s[key] !== undefined) out[key] = s[key];
  return out;
}
