// One VM's resource figures, read when asked: QEMU's CPU time (/proc/PID/stat) and memory
// (/proc/PID/smaps_rollup; under the jail the recorded pid is QEMU's own, not bwrap's), its disks' I/O (QMP
// query-blockstats, bounded by a deadline so that a QEMU that does not answer costs the caller that long
// and no more) and a bridged VM's tap counters (/sys/class/net/TAP/statistics). What cannot be read is
// said in `unavailable`, never guessed. GET /v1/vms/:ref/stats answers with this; /metrics (metrics.ts)
// reads the same figures for every VM.

import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import type { VmStats } from "../api/event-schemas.js";
import type { QmpClient } from "../qemu/qmp-client.js";
import type { VmRecord } from "../store/vm-store.js";

export type { VmStats };

/** The kernel's clock ticks per second, as /proc counts CPU time (100 on every Linux mvm runs on; asked once). */
let clkTck: number | undefined;
export function clockTicks(): number {
  if (clkTck === undefined) {
    try {
      clkTck = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
    } catch {
      clkTck = 100;
    }
  }
  return clkTck;
}

/** utime and stime (fields 14 and 15 of /proc/PID/stat), in seconds; undefined when the process is gone. */
export function parseProcStat(text: string, ticks = clockTicks()): { userSeconds: number; systemSeconds: number } | undefined {
  // The command name (field 2) is in parentheses and may hold spaces or parentheses itself.
  const fields = text.slice(text.lastIndexOf(")") + 2).trim().split(/\s+/);
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  if (!Number.isFinite(utime) || !Number.isFinite(stime)) return undefined;
  return { userSeconds: utime / ticks, systemSeconds: stime / ticks };
}

/** Rss and Pss of /proc/PID/smaps_rollup, in bytes. */
export function parseSmapsRollup(text: string): { rssBytes: number; pssBytes?: number } | undefined {
  const kb = (key: string) => {
    const m = new RegExp(`^${key}:\\s+(\\d+) kB`, "m").exec(text);
    return m ? Number(m[1]) * 1024 : undefined;
  };
  const rss = kb("Rss");
  return rss === undefined ? undefined : { rssBytes: rss, pssBytes: kb("Pss") };
}

export interface BlockStat {
  device: string;
  readBytes: number;
  writeBytes: number;
  readOps: number;
  writeOps: number;
  flushOps: number;
}

interface QmpBlockStats {
  device?: string;
  qdev?: string;
  "node-name"?: string;
  stats?: { rd_bytes?: number; wr_bytes?: number; rd_operations?: number; wr_operations?: number; flush_operations?: number };
}

/** query-blockstats' answer, per device (named by its qdev id, vd0 for the root disk, else its node). */
export function parseBlockStats(answer: unknown): BlockStat[] {
  if (!Array.isArray(answer)) return [];
  return (answer as QmpBlockStats[])
    .filter((b) => b.stats)
    .map((b) => {
      // QEMU gives a QOM path (/machine/peripheral/vd0/virtio-backend) where mvm named the device vd0.
      const qdev = b.qdev ? (/\/peripheral\/([^/]+)/.exec(b.qdev)?.[1] ?? b.qdev) : undefined;
      const s = b.stats!;
      return { device: b.device || qdev || b["node-name"] || "unknown", readBytes: s.rd_bytes ?? 0, writeBytes: s.wr_bytes ?? 0, readOps: s.rd_operations ?? 0, writeOps: s.wr_operations ?? 0, flushOps: s.flush_operations ?? 0 };
    });
}

const readNumber = (path: string): number => Number(readFileSync(path, "utf8").trim());

/** A tap's counters as the host sees them (rx: what the guest sent). */
export function readTapStats(tap: string, root = "/sys/class/net"): { rxBytes: number; txBytes: number; rxPackets: number; txPackets: number } {
  const s = `${root}/${tap}/statistics`;
  return { rxBytes: readNumber(`${s}/rx_bytes`), txBytes: readNumber(`${s}/tx_bytes`), rxPackets: readNumber(`${s}/rx_packets`), txPackets: readNumber(`${s}/tx_packets`) };
}

/** How long a stats read waits for QEMU's monitor (QMP_TIMEOUT_MS; MVM_STATS_QMP_MS). */
export const QMP_TIMEOUT_MS = Number(process.env.MVM_STATS_QMP_MS) || 500;

/** Reads the VM's figures now. `qmp` is the monitor this daemon holds (none: no block stats). */
export async function readVmStats(rec: VmRecord, qmp: QmpClient | undefined, o: { qmpTimeoutMs?: number; procRoot?: string; netRoot?: string } = {}): Promise<VmStats> {
  const proc = o.procRoot ?? "/proc";
  const live = rec.state === "running" || rec.state === "paused";
  const unavailable: string[] = [];
  const out: VmStats = { id: rec.id, name: rec.name, state: rec.state, at: new Date().toISOString(), unavailable };
  if (rec.boot || rec.timings) {
    out.boot = { how: rec.boot?.how ?? "cold", readyMs: rec.boot?.readyMs, qmpMs: rec.timings?.qmpMs, helloMs: rec.timings?.helloMs, restoredMs: rec.timings?.restoredMs };
  }
  if (!live || !rec.pid) {
    unavailable.push(`cpu, memory, block, net: the VM is ${rec.state} (no QEMU)`);
    return out;
  }
  out.pid = rec.pid;
  const started = rec.timings?.startedAt ? Date.parse(rec.timings.startedAt) : NaN;
  if (Number.isFinite(started)) out.uptimeSeconds = Math.max(0, (Date.now() - started) / 1000);
  try {
    const cpu = parseProcStat(readFileSync(`${proc}/${rec.pid}/stat`, "utf8"));
    if (cpu) out.cpu = { ...cpu, totalSeconds: cpu.userSeconds + cpu.systemSeconds };
    else unavailable.push(`cpu: ${proc}/${rec.pid}/stat could not be parsed`);
  } catch (e) {
    unavailable.push(`cpu: ${(e as Error).message}`);
  }
  try {
    const mem = parseSmapsRollup(readFileSync(`${proc}/${rec.pid}/smaps_rollup`, "utf8"));
    if (mem) out.memory = mem;
    else unavailable.push(`memory: ${proc}/${rec.pid}/smaps_rollup has no Rss`);
  } catch (e) {
    unavailable.push(`memory: ${(e as Error).message}`);
  }
  if (rec.bridged) {
    try {
      out.net = { available: true, tap: rec.bridged.tap, ...readTapStats(rec.bridged.tap, o.netRoot) };
    } catch (e) {
      out.net = { available: false, tap: rec.bridged.tap, reason: `its tap's counters could not be read: ${(e as Error).message}` };
    }
  } else {
    const net = rec.spec.network;
    out.net = { available: false, reason: net === "none" ? "the VM has no network" : `network ${net} is QEMU's user-mode network, which has no host interface to count on` };
  }
  if (!qmp) unavailable.push("block: this daemon holds no QMP connection to the VM's QEMU");
  else {
    try {
      out.block = parseBlockStats(await qmp.execute("query-blockstats", undefined, { timeoutMs: o.qmpTimeoutMs ?? QMP_TIMEOUT_MS }));
    } catch (e) {
      unavailable.push(`block: QMP query-blockstats: ${(e as Error).message}`);
    }
  }
  return out;
}
