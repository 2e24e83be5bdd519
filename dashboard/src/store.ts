// What the page knows of the daemon: the VM list (kept live from the event stream) and each running VM's
// recent figures: the daemon's own last 5 minutes first (GET /v1/vms/:ref/stats/history, sampled every
// 5 s), then polled from /v1/vms/:ref/stats every 2 s, the last 5 minutes kept for the charts.

import { api, followEvents, type DaemonError, type MvmEvent } from "./api.js";

export interface Vm {
  id: string;
  name: string;
  state: string;
  owner?: string;
  spec: { image?: string; cpus?: number; memoryMiB?: number; memory?: number | string; network?: string; command?: string[] };
  boot?: { how: string; readyMs?: number };
  timings?: { startedAt?: string; qmpMs?: number; restoredMs?: number; helloMs?: number; guestInitUptimeMs?: number; guestHelloUptimeMs?: number };
  uptimeMs?: number;
  createdAt: string;
}

export interface Sample {
  t: number;
  cpuPct: number;
  rssBytes: number;
}

const KEEP_MS = 5 * 60_000;
export const vms = new Map<string, Vm>();
export const samples = new Map<string, Sample[]>();
/** Ready times of the starts seen since the page loaded (and of the VMs it found), newest last. */
export const readyTimes: { t: number; name: string; ms: number; how: string }[] = [];
const lastCpu = new Map<string, { t: number; s: number }>();
const listeners = new Set<() => void>();
let refreshTimer: ReturnType<typeof setTimeout> | undefined;

export const onChange = (f: () => void): (() => void) => {
  listeners.add(f);
  return () => listeners.delete(f);
};
const changed = () => listeners.forEach((f) => f());

export async function refresh(): Promise<void> {
  const list = await api<Vm[]>("GET", "/v1/vms");
  const seen = new Set<string>();
  for (const v of list) {
    const before = vms.get(v.id);
    if (v.boot?.readyMs !== undefined && (!before || before.boot?.readyMs !== v.boot.readyMs || before.timings?.startedAt !== v.timings?.startedAt)) {
      readyTimes.push({ t: v.timings?.startedAt ? Date.parse(v.timings.startedAt) : Date.now(), name: v.name, ms: v.boot.readyMs, how: v.boot.how });
      readyTimes.sort((a, b) => a.t - b.t);
      if (readyTimes.length > 50) readyTimes.shift();
    }
    vms.set(v.id, v);
    seen.add(v.id);
    if (v.state === "running" || v.state === "paused") void seed(v.id);
  }
  for (const id of [...vms.keys()]) {
    if (seen.has(id)) continue;
    vms.delete(id);
    samples.delete(id);
    seeded.delete(id);
  }
  changed();
}

/** A refresh soon: events come in bursts (created, starting, running), one list read answers them all. */
const refreshSoon = () => {
  refreshTimer ??= setTimeout(() => {
    refreshTimer = undefined;
    refresh().catch(() => undefined);
  }, 100);
};

export function start(signal: AbortSignal, onStream: (up: boolean, err?: DaemonError) => void): void {
  followEvents(
    (e: MvmEvent) => {
      if (e.type.startsWith("vm.") || e.type === "reset") refreshSoon();
      eventListeners.forEach((f) => f(e));
    },
    (up, err) => {
      if (up) refreshSoon();
      onStream(up, err);
    },
    signal,
  );
  const poll = async () => {
    if (signal.aborted) return;
    await Promise.all([...vms.values()].filter((v) => v.state === "running" || v.state === "paused").map((v) => sample(v).catch(() => undefined)));
    changed();
    setTimeout(() => void poll(), 2000);
  };
  void poll();
}

const seeded = new Map<string, Promise<void>>();

/**
 * Once per VM: the samples the daemon kept before the page came (those with a CPU figure), put before the
 * page's own. A failure is not shown (the live samples still come); it is tried again next time.
 */
export function seed(id: string): Promise<void> {
  let p = seeded.get(id);
  if (!p) {
    p = api<{ samples: { at: string; cpuPercent?: number; rssBytes: number }[] }>("GET", `/v1/vms/${encodeURIComponent(id)}/stats/history`).then(
      (h) => {
        const list = samples.get(id) ?? [];
        const first = list[0]?.t ?? Infinity;
        const old = h.samples.filter((s) => s.cpuPercent !== undefined).map((s) => ({ t: Date.parse(s.at), cpuPct: s.cpuPercent!, rssBytes: s.rssBytes }));
        samples.set(id, [...old.filter((s) => s.t < first && s.t >= Date.now() - KEEP_MS), ...list]);
        changed();
      },
      () => void seeded.delete(id),
    );
    seeded.set(id, p);
  }
  return p;
}

export const eventListeners = new Set<(e: MvmEvent) => void>();

async function sample(v: Vm): Promise<void> {
  const s = await api<{ cpu?: { totalSeconds: number }; memory?: { rssBytes: number }; uptimeSeconds?: number }>("GET", `/v1/vms/${encodeURIComponent(v.id)}/stats`);
  if (!s.cpu || !s.memory) return;
  const t = Date.now();
  const prev = lastCpu.get(v.id);
  lastCpu.set(v.id, { t, s: s.cpu.totalSeconds });
  if (s.uptimeSeconds !== undefined) v.uptimeMs = s.uptimeSeconds * 1000;
  if (!prev) return;
  const cpuPct = Math.max(0, ((s.cpu.totalSeconds - prev.s) / ((t - prev.t) / 1000)) * 100);
  const list = samples.get(v.id) ?? [];
  list.push({ t, cpuPct, rssBytes: s.memory.rssBytes });
  while (list.length && list[0]!.t < t - KEEP_MS) list.shift();
  samples.set(v.id, list);
}

export const latest = (id: string): Sample | undefined => samples.get(id)?.at(-1);

export const byRef = (ref: string): Vm | undefined => vms.get(ref) ?? [...vms.values()].find((v) => v.name === ref);
