// `mvm bench start` and `mvm bench density`: how fast VMs start and how many fit, through the daemon as
// users get them. Each runs private daemons in temporary homes (one without a warm pool, for cold boots
// and clones; one with, for pool takes), interleaved so that a noisy host hurts every configuration alike.
//   start: start request -> agent ready for cold, clone and pool; `mvm run --rm -- true` through the CLI;
//          create + exec + remove through the library. cloneSpeedup/poolSpeedup = cold p50 / their p50.
//   density: N VMs started as users get them, every one asked to answer an exec, then its PSS, RSS and
//          idle CPU from /proc, and what the host's memory says.

import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { connect, type MvmClient } from "../client/client.js";
import { percentile, round, summarize, type Summary } from "./stats.js";

const run = promisify(execFile);
const CLI = new URL("../cli/main.js", import.meta.url).pathname;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface BenchDaemon {
  home: string;
  client: MvmClient;
  close(): Promise<void>;
}

async function privateDaemon(poolSize: number): Promise<BenchDaemon> {
  const home = await mkdtemp(join(tmpdir(), "mvm-bench-"));
  const before = process.env.MVM_POOL_SIZE;
  process.env.MVM_POOL_SIZE = String(poolSize);
  const client = await connect({ home }).finally(() => {
    if (before === undefined) delete process.env.MVM_POOL_SIZE;
    else process.env.MVM_POOL_SIZE = before;
  });
  return {
    home,
    client,
    close: async () => {
      for (const vm of await client.list()) await client.remove(vm.id, { force: true }).catch(() => undefined);
      const pid = (await client.info()).pid;
      process.kill(pid, "SIGTERM");
      for (let i = 0; i < 100 && alive(pid); i++) await sleep(50);
      await rm(home, { recursive: true, force: true });
    },
  };
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function timeStart(c: MvmClient, spec: Record<string, unknown>): Promise<{ ms: number; how: string }> {
  const vm = await c.create(spec);
  const t0 = performance.now();
  const started = await c.start(vm.id);
  const ms = performance.now() - t0;
  await c.remove(vm.id, { force: true });
  return { ms, how: started.boot?.how ?? "unknown" };
}

export interface StartBenchResult {
  results: Array<{ config: string } & Summary>;
  cloneSpeedup: number;
  poolSpeedup: number;
  /** Starts that did not go the way their configuration meant (a pool miss, a fallback). */
  misses: Record<string, number>;
}

export async function benchStart(o: { runs: number; cliRuns: number; onProgress?: (line: string) => void }): Promise<StartBenchResult> {
  const progress = o.onProgress ?? (() => undefined);
  const plain = await privateDaemon(0);
  const pooled = await privateDaemon(1);
  try {
    progress("warming up: building the template (a cold boot) and filling the pool");
    await timeStart(plain.client, {});
    await timeStart(pooled.client, {});
    const samples: Record<string, number[]> = { cold: [], clone: [], pool: [], "cli run --rm true": [], "library create+exec+rm": [] };
    const misses: Record<string, number> = {};
    const note = (config: string, how: string, ms: number) => {
      samples[config]!.push(ms);
      if (how !== config) misses[config] = (misses[config] ?? 0) + 1;
    };
    for (let i = 0; i < o.runs; i++) {
      progress(`round ${i + 1}/${o.runs}`);
      const cold = await timeStart(plain.client, { boot: "cold" });
      note("cold", cold.how, cold.ms);
      const clone = await timeStart(plain.client, {});
      note("clone", clone.how, clone.ms);
      await sleep(1500); // the pool's refill (a parked QEMU is up well within this)
      const pool = await timeStart(pooled.client, {});
      note("pool", pool.how, pool.ms);
      // create + exec + remove through the library, as a program driving sandboxes does.
      const t0 = performance.now();
      const vm = await plain.client.create({});
      await plain.client.start(vm.id);
      await plain.client.exec(vm.id, ["true"]);
      await plain.client.remove(vm.id, { force: true });
      samples["library create+exec+rm"]!.push(performance.now() - t0);
    }
    for (let i = 0; i < o.cliRuns; i++) {
      await sleep(1500);
      const t0 = performance.now();
      await run(process.execPath, [CLI, "run", "--rm", "--", "true"], { env: { ...process.env, MVM_HOME: pooled.home } });
      samples["cli run --rm true"]!.push(performance.now() - t0);
    }
    const results = Object.entries(samples).map(([config, s]) => ({ config, ...summarize(s) }));
    const p50 = (c: string) => percentile(samples[c]!, 50);
    return { results, cloneSpeedup: round(p50("cold") / p50("clone"), 2), poolSpeedup: round(p50("cold") / p50("pool"), 2), misses };
  } finally {
    await plain.close();
    await pooled.close();
  }
}

export interface DensityBenchResult {
  requested: number;
  running: number;
  answering: number;
  createPerSec: number;
  concurrency: number;
  pssMiBP50: number;
  rssMiBP50: number;
  idleCpuPctP50: number;
  hostUsedMiB: number;
  startedAs: Record<string, number>;
  /** Why the ones that booted cold did (a fallback is a finding, not noise). */
  coldReasons: string[];
}

const memAvailableKiB = (): number => Number(/MemAvailable:\s+(\d+)/.exec(readFileSync("/proc/meminfo", "utf8"))?.[1] ?? 0);

function smaps(pid: number): { pss: number; rss: number } {
  try {
    const t = readFileSync(`/proc/${pid}/smaps_rollup`, "utf8");
    const kib = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+)`, "m").exec(t)?.[1] ?? 0);
    return { pss: kib("Pss") / 1024, rss: kib("Rss") / 1024 };
  } catch {
    return { pss: NaN, rss: NaN };
  }
}

function cpuTicks(pid: number): number {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, "utf8");
    const f = s.slice(s.lastIndexOf(")") + 2).split(" ");
    return Number(f[11]) + Number(f[12]); // utime + stime
  } catch {
    return NaN;
  }
}

export async function benchDensity(o: { count: number; concurrency: number; idleSeconds: number; onProgress?: (line: string) => void }): Promise<DensityBenchResult> {
  const progress = o.onProgress ?? (() => undefined);
  const d = await privateDaemon(Math.min(4, o.concurrency));
  try {
    progress("warming up: the template and the pool");
    await timeStart(d.client, {});
    await sleep(2000);
    const hostBefore = memAvailableKiB();
    const startedAs: Record<string, number> = {};
    const coldReasons: string[] = [];
    const t0 = performance.now();
    let next = 0;
    let failed = 0;
    const worker = async () => {
      while (next < o.count) {
        const i = next++;
        try {
          const vm = await d.client.start((await d.client.create({ name: `dense-${i}` })).id);
          startedAs[vm.boot?.how ?? "unknown"] = (startedAs[vm.boot?.how ?? "unknown"] ?? 0) + 1;
          if (vm.boot?.how === "cold" && !coldReasons.includes(vm.boot.reason)) coldReasons.push(vm.boot.reason);
        } catch (e) {
          failed++;
          progress(`dense-${i}: ${(e as Error).message}`);
        }
        if ((i + 1) % 25 === 0) progress(`${i + 1}/${o.count} started`);
      }
    };
    await Promise.all(Array.from({ length: o.concurrency }, worker));
    const createPerSec = (o.count - failed) / ((performance.now() - t0) / 1000);
    const vms = (await d.client.list()).filter((v) => v.state === "running");
    progress(`${vms.length} running; asking each to answer`);
    let answering = 0;
    for (const vm of vms) {
      const r = await d.client.exec(vm.id, ["true"]).catch(() => undefined);
      if (r?.status === 0) answering++;
    }
    progress(`idle for ${o.idleSeconds} s, then measuring`);
    await sleep(2000);
    const pids = vms.map((v) => v.pid!).filter(Boolean);
    const ticks0 = pids.map(cpuTicks);
    await sleep(o.idleSeconds * 1000);
    const hz = 100; // USER_HZ
    const idle = pids.map((p, i) => ((cpuTicks(p) - ticks0[i]!) / hz / o.idleSeconds) * 100);
    const mem = pids.map(smaps);
    return {
      requested: o.count,
      running: vms.length,
      answering,
      createPerSec: round(createPerSec, 2),
      concurrency: o.concurrency,
      pssMiBP50: round(percentile(mem.map((m) => m.pss), 50)),
      rssMiBP50: round(percentile(mem.map((m) => m.rss), 50)),
      idleCpuPctP50: round(percentile(idle, 50), 2),
      hostUsedMiB: Math.round((hostBefore - memAvailableKiB()) / 1024),
      startedAs,
      coldReasons,
    };
  } finally {
    await d.close();
  }
}
