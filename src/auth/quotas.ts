// Quotas per token (issue 13): at most maxVms VMs, maxCpus vCPUs and maxMemoryMiB of guest memory, summed
// over the VMs the token owns that exist (any state: a stopped VM keeps its disk and can start again
// without asking), checked when a VM is created. The check and the record's insertion run in one
// synchronous stretch of the daemon (VmManager.create), so concurrent creates cannot both squeeze under a
// limit. Host-root and tokens without a quota have none.

import { QuotaExceededError } from "../errors.js";
import { describeCaller, type Caller, type Quota } from "./caller.js";

export interface QuotaUse {
  vms: number;
  cpus: number;
  memoryMiB: number;
}

type Sized = { spec: { cpus: number; memoryMiB: number } };

export const useOf = (vms: readonly Sized[]): QuotaUse => ({ vms: vms.length, cpus: vms.reduce((n, v) => n + v.spec.cpus, 0), memoryMiB: vms.reduce((n, v) => n + v.spec.memoryMiB, 0) });

/** QuotaExceededError when one more VM of `spec`'s size would take the caller over a limit of its quota. */
export function checkQuota(caller: Caller, spec: Sized["spec"], owned: readonly Sized[]): void {
  if (caller.kind !== "token" || !caller.quota) return;
  const q: Quota = caller.quota;
  const use = useOf(owned);
  const over = (what: string, limit: number, now: number, asked: number, unit = "") => {
    throw new QuotaExceededError(`${describeCaller(caller)} is over its quota of ${limit}${unit} ${what}: it has ${now}${unit} in ${use.vms} VM${use.vms === 1 ? "" : "s"}, and this VM asks for ${asked}${unit} more`, {
      details: { caller: caller.name, quota: q, use, asked: { vms: 1, cpus: spec.cpus, memoryMiB: spec.memoryMiB } },
    });
  };
  if (q.maxVms !== undefined && use.vms + 1 > q.maxVms) over("VMs", q.maxVms, use.vms, 1);
  if (q.maxCpus !== undefined && use.cpus + spec.cpus > q.maxCpus) over("vCPUs", q.maxCpus, use.cpus, spec.cpus);
  if (q.maxMemoryMiB !== undefined && use.memoryMiB + spec.memoryMiB > q.maxMemoryMiB) over("of memory", q.maxMemoryMiB, use.memoryMiB, spec.memoryMiB, " MiB");
}
