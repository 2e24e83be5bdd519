// The daemon's recent figures, so that a chart has points the moment it is drawn: every 5 s
// (MVM_STATS_HISTORY_MS) the sampler reads, for each running or paused VM, QEMU's CPU seconds and RSS from
// /proc (the same parsers as GET /v1/vms/:ref/stats, stats.ts; no QMP call, so a QEMU that hangs costs the
// sampler nothing) and the host machine's CPU and memory, and keeps the last 60 samples (5 minutes) per VM
// and for the host in rings. A removed VM is forgotten; a stopped one keeps its samples until they are
// older than the window. Served by GET /v1/vms/:ref/stats/history and GET /v1/host/stats/history
// (observe-routes.ts). Its timer is unref'd and stopped by close(): it never keeps a daemon alive.

import { readFile } from "node:fs/promises";
import type { HostStatsSample, VmStatsSample } from "../api/stats-schemas.js";
import type { VmRecord } from "../store/vm-store.js";
import { parseProcStat, parseSmapsRollup } from "./stats.js";

/** A fixed number of the latest items; pushing onto a full ring drops the oldest. */
export class Ring<T> {
  private readonly items: T[] = [];
  private head = 0;

  constructor(readonly capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError(`a ring holds at least one item, not ${capacity}`);
  }

  push(item: T): void {
    if (this.items.length < this.capacity) this.items.push(item);
    else {
      this.items[this.head] = item;
      this.head = (this.head + 1) % this.capacity;
    }
  }

  get length(): number {
    return this.items.length;
  }

  /** Oldest first. */
  values(): T[] {
    return [...this.items.slice(this.head), ...this.items.slice(0, this.head)];
  }

  last(): T | undefined {
    return this.items.length ? this.items[(this.head + this.items.length - 1) % this.items.length] : undefined;
  }
}

/** How often the sampler reads (MVM_STATS_HISTORY_MS, default 5 s), and how many samples it keeps. */
export const HISTORY_INTERVAL_MS = Number(process.env.MVM_STATS_HISTORY_MS) || 5000;
export const HISTORY_SAMPLES = 60;

/** The machine's CPU counters from /proc/stat's first line: busy and total jiffies. */
export function parseCpuLine(text: string): { busy: number; total: number } | undefined {
  const m = /^cpu\s+(.*)$/m.exec(text);
  if (!m) return undefined;
  // user nice system idle iowait irq softirq steal (guest and guest_nice are inside user and nice already).
  const f = m[1]!.trim().split(/\s+/).slice(0, 8).map(Number);
  if (f.length < 4 || f.some((n) => !Number.isFinite(n))) return undefined;
  const total = f.reduce((a, b) => a + b, 0);
  const idle = f[3]! + (f[4] ?? 0);
  return { busy: total - idle, total };
}

/** MemTotal and MemAvailable of /proc/meminfo, in bytes. */
export function parseMeminfo(text: string): { memTotalBytes: number; memAvailableBytes: number } | undefined {
  const kb = (key: string) => {
    const m = new RegExp(`^${key}:\\s+(\\d+) kB`, "m").exec(text);
    return m ? Number(m[1]) * 1024 : undefined;
  };
  const total = kb("MemTotal");
  const avail = kb("MemAvailable");
  return total === undefined || avail === undefined ? undefined : { memTotalBytes: total, memAvailableBytes: avail };
}

interface Kept extends VmStatsSample {
  t: number;
}

interface VmHistory {
  ring: Ring<Kept>;
  /** The pid and CPU seconds of the last sample: a rate is only made against the same QEMU. */
  prev?: { t: number; pid: number; cpuSeconds: number };
}

/** One tick of the host: each VM's share (so a caller's totals can be cut to its own VMs) and the machine. */
interface HostTick {
  t: number;
  at: string;
  vms: Map<string, { cpuPercent: number; rssBytes: number }>;
  machine?: HostStatsSample["machine"];
}

export interface StatsHistoryOptions {
  /** The VMs now (the store's records). */
  list: () => readonly VmRecord[];
  intervalMs?: number;
  samples?: number;
  procRoot?: string;
  now?: () => number;
  log?: (line: string) => void;
}

export class StatsHistory {
  readonly intervalMs: number;
  readonly samples: number;
  private readonly vms = new Map<string, VmHistory>();
  private readonly host: Ring<HostTick>;
  private prevMachine?: { busy: number; total: number };
  private timer?: NodeJS.Timeout;
  private running?: Promise<void>;
  private closed = false;

  constructor(private readonly o: StatsHistoryOptions) {
    this.intervalMs = o.intervalMs ?? HISTORY_INTERVAL_MS;
    this.samples = o.samples ?? HISTORY_SAMPLES;
    this.host = new Ring(this.samples);
  }

  get windowMs(): number {
    return this.intervalMs * this.samples;
  }

  private now(): number {
    return (this.o.now ?? Date.now)();
  }

  /** Samples now and then every interval, until close(). Calling it again does nothing. */
  start(): void {
    if (this.timer || this.closed) return;
    this.timer = setInterval(() => void this.sample(), this.intervalMs);
    this.timer.unref();
    void this.sample();
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** A removed VM's samples go at once. */
  forget(id: string): void {
    this.vms.delete(id);
  }

  /** One round of reads; a round still running when the next is due is not doubled (its promise is returned). */
  sample(): Promise<void> {
    this.running ??= this.round().finally(() => (this.running = undefined));
    return this.running;
  }

  private async round(): Promise<void> {
    const proc = this.o.procRoot ?? "/proc";
    const t = this.now();
    const at = new Date(t).toISOString();
    const records = this.o.list();
    const live = records.filter((r) => (r.state === "running" || r.state === "paused") && r.pid);
    const tick: HostTick = { t, at, vms: new Map() };
    const read = async (rec: VmRecord) => {
      const pid = rec.pid!;
      const [stat, smaps] = await Promise.all([readFile(`${proc}/${pid}/stat`, "utf8"), readFile(`${proc}/${pid}/smaps_rollup`, "utf8")]);
      const cpu = parseProcStat(stat);
      const mem = parseSmapsRollup(smaps);
      // A round under way when close() came records nothing (its reads finish after).
      if (!cpu || !mem || this.closed) return;
      const cpuSeconds = cpu.userSeconds + cpu.systemSeconds;
      let h = this.vms.get(rec.id);
      if (!h) this.vms.set(rec.id, (h = { ring: new Ring(this.samples) }));
      const p = h.prev;
      const cpuPercent = p && p.pid === pid && cpuSeconds >= p.cpuSeconds && t > p.t ? round1(((cpuSeconds - p.cpuSeconds) / ((t - p.t) / 1000)) * 100) : undefined;
      h.prev = { t, pid, cpuSeconds };
      h.ring.push({ t, at, cpuSeconds, rssBytes: mem.rssBytes, ...(cpuPercent === undefined ? {} : { cpuPercent }) });
      tick.vms.set(rec.id, { cpuPercent: cpuPercent ?? 0, rssBytes: mem.rssBytes });
    };
    // A QEMU that ended between the list and the read is skipped: its next state says why.
    await Promise.all(live.map((r) => read(r).catch(() => undefined)));
    tick.machine = await this.readMachine(proc);
    if (this.closed) return;
    this.host.push(tick);
    // Removed VMs go; stopped ones once their last sample is out of the window.
    const known = new Set(records.map((r) => r.id));
    for (const [id, h] of this.vms) if (!known.has(id) || (h.ring.last()?.t ?? 0) < t - this.windowMs) this.vms.delete(id);
  }

  private async readMachine(proc: string): Promise<HostStatsSample["machine"]> {
    try {
      const [stat, meminfo] = await Promise.all([readFile(`${proc}/stat`, "utf8"), readFile(`${proc}/meminfo`, "utf8")]);
      const cpu = parseCpuLine(stat);
      const mem = parseMeminfo(meminfo);
      if (!mem) return undefined;
      const p = this.prevMachine;
      this.prevMachine = cpu;
      const cpuPercent = cpu && p && cpu.total > p.total ? round1(((cpu.busy - p.busy) / (cpu.total - p.total)) * 100) : undefined;
      return { ...mem, ...(cpuPercent === undefined ? {} : { cpuPercent }) };
    } catch (e) {
      this.o.log?.(`stats history: the host's figures could not be read: ${(e as Error).message}`);
      return undefined;
    }
  }

  /** A VM's samples within the window, oldest first. */
  vm(id: string): VmStatsSample[] {
    const from = this.now() - this.windowMs;
    return (this.vms.get(id)?.ring.values() ?? []).filter((s) => s.t >= from).map(({ t: _t, ...s }) => s);
  }

  /**
   * The host's samples within the window, oldest first. With `only`, the totals are those VMs' alone and
   * the machine's figures are left out (a user token's view).
   */
  hostSamples(only?: (id: string) => boolean): HostStatsSample[] {
    const from = this.now() - this.windowMs;
    return this.host
      .values()
      .filter((k) => k.t >= from)
      .map((k) => {
        let vms = 0;
        let cpuPercent = 0;
        let rssBytes = 0;
        for (const [id, v] of k.vms) {
          if (only && !only(id)) continue;
          vms++;
          cpuPercent += v.cpuPercent;
          rssBytes += v.rssBytes;
        }
        return { at: k.at, vms, cpuPercent: round1(cpuPercent), rssBytes, ...(!only && k.machine ? { machine: k.machine } : {}) };
      });
  }
}

const round1 = (n: number) => Math.round(n * 10) / 10;
