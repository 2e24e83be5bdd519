// The wire contract for a VM's resource limits: a change (PATCH /v1/vms/:ref/limits) and the limits in
// effect on its QEMU, as a VM's view shows them (src/vmspec/limits.ts checks and explains the values).

import { Type, type Static } from "@sinclair/typebox";

const Rate = (what: string) => Type.Union([Type.Integer(), Type.String(), Type.Null()], { description: `${what}: bytes per second, or with a unit (5M, 512K); null removes the limit` });

export const LimitsPatchSchema = Type.Object(
  {
    diskBps: Type.Optional(Rate("disk bandwidth, shared by the VM's disks")),
    diskIops: Type.Optional(Type.Union([Type.Integer(), Type.Null()], { description: "disk I/O operations per second, shared by the VM's disks; null removes the limit" })),
    netBps: Type.Optional(Rate("network bandwidth each way (bridged networks only)")),
  },
  { additionalProperties: false, minProperties: 1, description: "the limits to change; keys left out stay as they are" },
);
export type LimitsPatchBody = Static<typeof LimitsPatchSchema>;

export const AppliedLimitsSchema = Type.Object(
  {
    diskBps: Type.Optional(Type.Integer()),
    diskIops: Type.Optional(Type.Integer()),
    netBps: Type.Optional(Type.Integer()),
    disks: Type.Array(Type.String(), { description: "the virtio-blk devices throttled (their ids on QEMU's argv)" }),
    group: Type.Optional(Type.String({ description: "their QEMU throttle group: the limit is shared, not per disk" })),
    tap: Type.Optional(Type.String({ description: "the tap shaped with tc, both ways" })),
    appliedAt: Type.String(),
  },
  { description: "the limits in effect on the running QEMU (set at start or changed live); the spec's diskBps, diskIops and netBps are what the next start applies" },
);
