// mvm limits VM [--disk-bps R] [--disk-iops N] [--net-bps R] [--cpu-share N] [--cpu-max CORES]
// [--memory-max SIZE]: a VM's disk, network, CPU and memory limits, changed live on a running or paused VM
// (and kept for its next starts); `none` removes one. Without a flag, shows them.

import { connect, type LimitsPatch, type VmView } from "../../client/client.js";
import { InvalidArgumentError } from "../../errors.js";
import { formatCores, formatRate } from "../../vmspec/limits.js";
import { printJson } from "../output.js";
import { formatTable } from "../table.js";

export interface LimitsFlags {
  diskBps?: string;
  diskIops?: string;
  netBps?: string;
  cpuShare?: string;
  cpuMax?: string;
  memoryMax?: string;
  json?: boolean;
}

/** The flags as a change: `none` removes a limit; the daemon checks the values (as for the spec). */
export function limitsPatchFromFlags(flags: LimitsFlags): LimitsPatch {
  const patch: LimitsPatch = {};
  const value = (v: string, count: boolean) => (v === "none" ? null : count && /^\d+$/.test(v) ? Number(v) : v);
  if (flags.diskBps !== undefined) patch.diskBps = value(flags.diskBps, false);
  if (flags.diskIops !== undefined) {
    const v = value(flags.diskIops, true);
    if (typeof v === "string") throw new InvalidArgumentError(`--disk-iops ${JSON.stringify(v)} is not a whole number`, { hint: "write e.g. --disk-iops 500, or none to remove the limit" });
    patch.diskIops = v;
  }
  if (flags.netBps !== undefined) patch.netBps = value(flags.netBps, false);
  if (flags.cpuShare !== undefined) {
    const v = value(flags.cpuShare, true);
    if (typeof v === "string") throw new InvalidArgumentError(`--cpu-share ${JSON.stringify(v)} is not a whole number`, { hint: "write e.g. --cpu-share 200 (1 to 10000, default 100), or none to remove it" });
    patch.cpuShare = v;
  }
  if (flags.cpuMax !== undefined) patch.cpuMax = value(flags.cpuMax, false);
  if (flags.memoryMax !== undefined) patch.memoryMax = value(flags.memoryMax, false);
  return patch;
}

const rate = (bps: number | undefined) => (bps === undefined ? "-" : `${formatRate(bps)}/s`);
const count = (n: number | undefined) => (n === undefined ? "-" : `${n}/s`);
const cores = (n: number | undefined) => (n === undefined ? "-" : `${formatCores(n)} cores`);
const size = (bytes: number | undefined) => (bytes === undefined ? "-" : formatRate(bytes));

/** LIMIT, what the spec says (every start applies it), and what the running QEMU has now. */
export function limitsTable(vm: VmView): string {
  const live = vm.state === "running" || vm.state === "paused";
  const now = vm.limits;
  const shown = (s: string) => (live ? s : "(not running)");
  const disks = now?.disks.length ? ` on ${now.disks.join(", ")}` : "";
  const group = now?.cgroup ? ` in ${now.cgroup}` : "";
  return formatTable([
    ["LIMIT", "SET", "IN EFFECT"],
    ["diskBps", rate(vm.spec.diskBps), shown(now?.diskBps === undefined ? "-" : `${rate(now.diskBps)}${disks}`)],
    ["diskIops", count(vm.spec.diskIops), shown(now?.diskIops === undefined ? "-" : `${count(now.diskIops)}${disks}`)],
    ["netBps", rate(vm.spec.netBps), shown(now?.netBps === undefined ? "-" : `${rate(now.netBps)} each way on ${now.tap ?? "its tap"}`)],
    ["cpuShare", vm.spec.cpuShare === undefined ? "-" : String(vm.spec.cpuShare), shown(now?.cpuShare === undefined ? "-" : `${now.cpuShare}${group}`)],
    ["cpuMax", cores(vm.spec.cpuMax), shown(now?.cpuMax === undefined ? "-" : `${cores(now.cpuMax)}${group}`)],
    ["memoryMax", size(vm.spec.memoryMax), shown(now?.memoryMax === undefined ? "-" : `${size(now.memoryMax)}${group}`)],
  ]);
}

export async function limitsCommand(ref: string, flags: LimitsFlags): Promise<number> {
  const client = await connect();
  const patch = limitsPatchFromFlags(flags);
  const vm = Object.keys(patch).length ? await client.setLimits(ref, patch) : await client.get(ref);
  if (flags.json) printJson({ name: vm.name, state: vm.state, set: { diskBps: vm.spec.diskBps, diskIops: vm.spec.diskIops, netBps: vm.spec.netBps, cpuShare: vm.spec.cpuShare, cpuMax: vm.spec.cpuMax, memoryMax: vm.spec.memoryMax }, inEffect: vm.limits ?? null });
  else process.stdout.write(limitsTable(vm));
  return 0;
}
