// What clients see of a VM and of a snapshot: the record as stored, plus a few derived fields (`inspect`
// prints a VM's); a snapshot without its paths on the daemon's host, its machine summed up.

import type { SnapshotView } from "../api/snapshot-schemas.js";
import type { VmRecord } from "../store/vm-store.js";
import type { Snapshot } from "./snapshots.js";

export interface VmView extends VmRecord {
  uptimeMs?: number;
  bootMs?: number;
}

export function vmView(r: VmRecord): VmView {
  const started = r.timings?.startedAt ? Date.parse(r.timings.startedAt) : undefined;
  return {
    ...r,
    uptimeMs: (r.state === "running" || r.state === "paused") && started ? Date.now() - started : undefined,
    bootMs: r.timings?.helloMs,
  };
}

export function snapshotView(s: Snapshot): SnapshotView {
  return {
    name: s.name,
    vm: { id: s.vm.id, name: s.vm.name },
    createdAt: s.createdAt,
    qemuBuild: { sha256: s.qemuBuild.sha256, version: s.qemuBuild.version },
    stateBytes: s.stateBytes,
    diskBytes: s.diskBytes,
    pausedMs: s.pausedMs,
    spec: { memoryMiB: s.spec.memoryMiB, cpus: s.spec.cpus, image: s.spec.image },
  };
}
