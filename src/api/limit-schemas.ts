// The wire contract for a VM's resource limits: a change (PATCH /v1/vms/:ref/limits) and the limits in
// effect on its QEMU, as a VM's view shows them (src/vmspec/limits.ts checks and explains the values).

import { Type, type Static } from "@sinclair/typebox";

const Rate = (what: string) => Type.Union([Type.Integer(), Type.String(), Type.Null()], { description: `${what}: bytes per second, or with a unit (5M, 512K); null removes the limit` });

export const LimitsPatchSchema = Type.Object(
  {
    diskBps: Type.Optional(Rate("disk bandwidth, shared by the VM's disks")),
    diskIops: Type.Optional(Type.Union([Type.Integer(), Type.Null()], { description: "disk I/O operations per second, shared by the VM's disks; null removes the limit" })),
    netBps: Type.Optional(Rate("network bandwidth each way (bridged networks only)")),
    cpuShare: Type.Optional(Type.Union([Type.Integer(), Type.Null()], { description: "relative CPU weight, 1 to 10000 (default 100); null puts the default back" })),
    cpuMax: Type.Optional(Type.Union([Type.Number(), Type.String(), Type.Null()], { description: "a cap in cores, 0.01 to vCPUs + 1; null puts the jail's default (vCPUs + 1) back" })),
    memoryMax: Type.Optional(Type.Union([Type.Integer(), Type.String(), Type.Null()], { description: "a cap on QEMU's whole memory, guest RAM included: 768M, 2G or bytes, at least memory + 128 MiB; null puts the jail's default back" })),
  },
  { additionalProperties: false, minProperties: 1, description: "the limits to change; keys left out stay as they are" },
);
export type LimitsPatchBody = Static<typeof LimitsPatchSchema>;

export const AppliedLimitsSchema = Type.Object(
  {
    diskBps: Type.Optional(Type.Integer()),
    diskIops: Type.Optional(Type.Integer()),
    netBps: Type.Optional(Type.Integer()),
    cpuShare: Type.Optional(Type.Integer()),
    cpuMax: Type.Optional(Type.Number({ description: "cores" })),
    memoryMax: Type.Optional(Type.Integer({ description: "bytes" })),
    disks: Type.Array(Type.String(), { description: "the virtio-blk devices throttled (their ids on QEMU's argv)" }),
    group: Type.Optional(Type.String({ description: "their QEMU throttle group: the limit is shared, not per disk" })),
    tap: Type.Optional(Type.String({ description: "the tap shaped with tc, both ways" })),
    cgroup: Type.Optional(Type.String({ description: "the control group cpuShare, cpuMax and memoryMax were written to (the jail's group of this QEMU)" })),
    appliedAt: Type.String(),
  },
  { description: "the limits in effect on the running QEMU (set at start or changed live); the spec's diskBps, diskIops, netBps, cpuShare, cpuMax and memoryMax are what the next start applies" },
);
