// `mvm bench jail`: what the jail costs, in the same run: cold boots (spawn -> agent hello) with the jail
// on and off, interleaved, then each QEMU's RSS once the guest has sat idle for a second.

import { closeSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { GuestArtifacts } from "../guest/artifacts.js";
import { spawn } from "node:child_process";
import { decideJail, prepareJail, type JailHost } from "../jail/jail.js";
import { launchGuest } from "../vm/launch.js";
import { cacheDir } from "../host/paths.js";
import { round, summarize, type Summary } from "./stats.js";

export interface JailBenchResult {
  results: Array<{ config: string; hello: Summary; qmpReady: Summary; idleRssMiB: number }>;
  /** Jail on p50 minus jail off p50, ms (spawn -> hello; noisy under TCG on a busy host). */
  addedMs: number;
  /** The jail's own cost, measured apart: its exec chain (and a control group made and removed) ending in /bin/true, against /bin/true. */
  chain: { jailedMs: number; bareMs: number; addedMs: number; runs: number };
  jail: { enabled: boolean; reason: string; cgroups: string };
}

/** Runs /bin/true through the jail's prefix and bare, interleaved: the chain's own cost, free of guest noise. */
async function chainCost(jail: JailHost, runs: number, artifacts: GuestArtifacts): Promise<JailBenchResult["chain"]> {
  const once = (argv: string[], env?: Record<string, string>, passFds: number[] = []) =>
    new Promise<number>((resolve, reject) => {
      const t = performance.now();
      const c = spawn(argv[0]!, argv.slice(1), { stdio: ["ignore", "ignore", "ignore", ...passFds], ...(env ? { env } : {}) });
      c.once("error", reject);
      c.once("exit", (code) => (code === 0 ? resolve(performance.now() - t) : reject(new Error(`${argv.join(" ")} exited ${code}`))));
    });
  const jailed: number[] = [];
  const bare: number[] = [];
  const dir = mkdtempSync(join(tmpdir(), "mvm-bench-jail-"));
  try {
    for (let i = 0; i < runs; i++) {
      const t = performance.now();
      const j = prepareJail(jail, { label: `mvm-bench-${process.pid}-${i}`, memoryMiB: 256, cpus: 1, dir, binary: "/bin/true", accel: "tcg", network: "none", volumes: [], files: [{ path: artifacts.kernel.vmlinux, want: "r" }, { path: artifacts.initramfs.path, want: "r" }], sockets: [] })!;
      j.setUp();
      await once([...j.prefix, "/bin/true"], j.env, j.passFds).finally(() => j.passFds.forEach((fd) => closeSync(fd)));
      j.cleanup();
      jailed.push(performance.now() - t);
      bare.push(await once(["/bin/true"]));
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const a = summarize(jailed).p50Ms;
  const b = summarize(bare).p50Ms;
  return { jailedMs: a, bareMs: b, addedMs: round(a - b), runs };
}

const rssMiB = (pid: number): number => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? NaN) / 1024;

export async function benchJail(o: { artifacts: GuestArtifacts; runs: number; onProgress?: (l: string) => void }): Promise<JailBenchResult> {
  const jail = decideJail(process.env, undefined, { managed: [cacheDir()] });
  if (!jail.enabled) throw new Error(`the jail cannot be measured here: it is off (${jail.reason})`);
  // The earlier jail (no namespaces, uid 0 without capabilities) beside: what bubblewrap and the uid cost.
  const configs = [{ config: "jail on", jail }, { config: "jail off", jail: undefined }, ...(jail.namespaces ? [{ config: "jail without namespaces", jail: { ...jail, namespaces: false } }] : [])];
  const hello = new Map(configs.map((c) => [c.config, [] as number[]]));
  const qmp = new Map(configs.map((c) => [c.config, [] as number[]]));
  const rss = new Map(configs.map((c) => [c.config, [] as number[]]));
  for (let i = 0; i < o.runs; i++) {
    for (const c of configs) {
      o.onProgress?.(`run ${i + 1}/${o.runs}: ${c.config}`);
      // Seccomp goes with the jail: it is part of what a jailed QEMU runs with.
      const g = await launchGuest({ artifacts: o.artifacts, accel: "tcg", helloTimeoutMs: 60000, jail: c.jail, seccomp: !!c.jail });
      try {
        hello.get(c.config)!.push(g.timeline.helloMs!);
        qmp.get(c.config)!.push(g.timeline.qmpReadyMs!);
        await new Promise((r) => setTimeout(r, 1000));
        rss.get(c.config)!.push(rssMiB(g.process.pid));
      } finally {
        await g.kill();
      }
    }
  }
  const results = configs.map((c) => ({ config: c.config, hello: summarize(hello.get(c.config)!), qmpReady: summarize(qmp.get(c.config)!), idleRssMiB: round(summarize(rss.get(c.config)!).p50Ms) }));
  o.onProgress?.("the jail's exec chain alone");
  const chain = await chainCost(jail, 50, o.artifacts);
  return { results, addedMs: round(results[0]!.hello.p50Ms - results[1]!.hello.p50Ms), chain, jail: { enabled: true, reason: jail.reason, cgroups: jail.cgroups.mode } };
}
