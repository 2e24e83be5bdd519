// What clients see of a VM and of a snapshot: the record as stored, plus a few derived fields (`inspect`
// prints a VM's); a snapshot without its paths on the daemon's host, its machine summed up.

import type { SnapshotView } from "../api/snapshot-schemas.js";
import type { VmRecord } from "../store/vm-store.js";
import type { Snapshot } from "./snapshots.js";

export interface VmView extends VmRecord {
  uptimeMs?: number;
  bootMs?: number;
}

/** How long a running or paused VM has been up; undefined otherwise. */
function uptimeOf(r: VmRecord): number | undefined {
  const started = r.timings?.startedAt ? Date.parse(r.timings.startedAt) : undefined;
  return (r.state === "running" || r.state === "paused") && started ? Date.now() - started : undefined;
}

export function vmView(r: VmRecord): VmView {
  return { ...r, uptimeMs: uptimeOf(r), bootMs: r.timings?.helloMs };
}

/**
 * GET /v1/vms's body, made of each record's view serialized once: records are frozen and the store hands
 * out the same objects until one is written (src/store/vm-store.ts), so a record's JSON is kept beside it
 * (a WeakMap: it goes with the record) and only the uptime, which changes with the clock, is put in per
 * request. `serialize` is the route's serializer of one view (the response schema's, so no field it does
 * not name gets out). This was half of a list request's time.
 */
const viewJson = new WeakMap<VmRecord, string>();
export function vmListJson(records: readonly VmRecord[], serialize: (v: VmView) => string): string {
  const parts = records.map((r) => {
    let json = viewJson.get(r);
    if (json === undefined) {
      json = serialize({ ...vmView(r), uptimeMs: undefined });
      viewJson.set(r, json);
    }
    const uptimeMs = uptimeOf(r);
    return uptimeMs === undefined ? json : `{"uptimeMs":${uptimeMs},${json.slice(1)}`;
  });
  return `[${parts.join(",")}]`;
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
