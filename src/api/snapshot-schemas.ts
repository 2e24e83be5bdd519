// The wire contract for snapshots: a VM's whole state (memory, devices) and its root disk at one moment,
// kept under the daemon's home (src/daemon/snapshots.ts), and what taking one takes.

import { Type, type Static } from "@sinclair/typebox";

/** As the snapshot store checks names (they become directory names): a VM-like name, no '-' at either end. */
export const SNAPSHOT_NAME_PATTERN = "^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$";

export const SnapshotCreateBodySchema = Type.Object(
  { name: Type.Optional(Type.String({ pattern: SNAPSHOT_NAME_PATTERN, description: "default: the VM's name and the time, e.g. web-20250101120000" })) },
  { additionalProperties: false },
);
export type SnapshotCreateBody = Static<typeof SnapshotCreateBodySchema>;

export const QemuBuildSchema = Type.Object({ sha256: Type.String(), version: Type.String() }, { description: "the QEMU binary that saved the state: only the same build can load it" });

export const SnapshotViewSchema = Type.Object({
  name: Type.String(),
  vm: Type.Object({ id: Type.String(), name: Type.String() }, { description: "the VM it was taken of (which may be gone since)" }),
  createdAt: Type.String(),
  qemuBuild: QemuBuildSchema,
  stateBytes: Type.Integer({ description: "the saved state (RAM included)" }),
  diskBytes: Type.Optional(Type.Integer({ description: "the copy of the root disk, for a VM with an image" })),
  pausedMs: Type.Number({ description: "how long the VM was stopped for it" }),
  spec: Type.Object(
    { memoryMiB: Type.Integer(), cpus: Type.Integer(), image: Type.Optional(Type.String()) },
    { description: "the machine a VM made from it has (create with {snapshot: NAME})" },
  ),
});
export type SnapshotView = Static<typeof SnapshotViewSchema>;
