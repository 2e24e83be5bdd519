// The wire contract for the daemon's recent figures (GET /v1/vms/:ref/stats/history, GET
// /v1/host/stats/history): what the daemon's own sampler (src/daemon/stats-history.ts) recorded every few
// seconds over the last minutes, oldest first, so that a chart has points the moment it is drawn.

import { Type, type Static } from "@sinclair/typebox";

export const VmStatsSampleSchema = Type.Object({
  at: Type.String({ description: "when the figures were read (ISO 8601)" }),
  cpuSeconds: Type.Number({ description: "QEMU's CPU time so far, user + system (/proc/PID/stat), the guest's vCPUs included" }),
  cpuPercent: Type.Optional(Type.Number({ description: "CPU use since the sample before, in % of one core (200 = two cores busy); left out on a VM's first sample and after a restart" })),
  rssBytes: Type.Number({ description: "QEMU's resident memory (/proc/PID/smaps_rollup)" }),
});
export type VmStatsSample = Static<typeof VmStatsSampleSchema>;

const Window = {
  intervalSeconds: Type.Number({ description: "how often the daemon samples" }),
  windowSeconds: Type.Number({ description: "how far back samples are kept" }),
};

export const VmStatsHistorySchema = Type.Object({
  id: Type.String(),
  name: Type.String(),
  ...Window,
  samples: Type.Array(VmStatsSampleSchema, { description: "oldest first; only while the VM ran (none for a VM that has not run in the window)" }),
});
export type VmStatsHistory = Static<typeof VmStatsHistorySchema>;

export const HostStatsSampleSchema = Type.Object({
  at: Type.String({ description: "when the sample was taken (ISO 8601)" }),
  vms: Type.Integer({ description: "running or paused VMs whose figures were read" }),
  cpuPercent: Type.Number({ description: "the VMs' CPU use summed, in % of one core (VMs on their first sample count 0)" }),
  rssBytes: Type.Number({ description: "the VMs' resident memory summed" }),
  machine: Type.Optional(
    Type.Object(
      {
        cpuPercent: Type.Optional(Type.Number({ description: "the whole machine's CPU use since the sample before (/proc/stat), in % of all its cores" })),
        memTotalBytes: Type.Number({ description: "/proc/meminfo MemTotal" }),
        memAvailableBytes: Type.Number({ description: "/proc/meminfo MemAvailable" }),
      },
      { description: "the host machine as a whole; left out for a user token, whose totals are its own VMs'" },
    ),
  ),
});
export type HostStatsSample = Static<typeof HostStatsSampleSchema>;

export const HostStatsHistorySchema = Type.Object({
  ...Window,
  samples: Type.Array(HostStatsSampleSchema, { description: "oldest first" }),
});
export type HostStatsHistory = Static<typeof HostStatsHistorySchema>;
