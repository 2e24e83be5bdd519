// What clients see of a VM: the record as stored, plus a few derived fields. `inspect` prints this.

import type { VmRecord } from "../store/vm-store.js";

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
