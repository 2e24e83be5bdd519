// `mvm bench jail`: what the jail costs, in the same run: cold boots (spawn -> agent hello) with the jail
// on and off, interleaved, then each QEMU's RSS once the guest has sat idle for a second.

import { readFileSync } from "node:fs";
import type { GuestArtifacts } from "../guest/artifacts.js";
import { decideJail } from "../jail/jail.js";
import { launchGuest } from "../vm/launch.js";
import { round, summarize, type Summary } from "./stats.js";

export interface JailBenchResult {
  results: Array<{ config: string; hello: Summary; idleRssMiB: number }>;
  /** Jail on p50 minus jail off p50, ms. */
  addedMs: number;
  jail: { enabled: boolean; reason: string; cgroups: string };
}

const rssMiB = (pid: number): number => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? NaN) / 1024;

export async function benchJail(o: { artifacts: GuestArtifacts; runs: number; onProgress?: (l: string) => void }): Promise<JailBenchResult> {
  const jail = decideJail();
  if (!jail.enabled) throw new Error(`the jail cannot be measured here: it is off (${jail.reason})`);
  const configs = [{ config: "jail on", jail }, { config: "jail off", jail: undefined }];
  const hello = new Map(configs.map((c) => [c.config, [] as number[]]));
  const rss = new Map(configs.map((c) => [c.config, [] as number[]]));
  for (let i = 0; i < o.runs; i++) {
    for (const c of configs) {
      o.onProgress?.(`run ${i + 1}/${o.runs}: ${c.config}`);
      // Seccomp goes with the jail: it is part of what a jailed QEMU runs with.
      const g = await launchGuest({ artifacts: o.artifacts, accel: "tcg", helloTimeoutMs: 60000, jail: c.jail, seccomp: !!c.jail });
      try {
        hello.get(c.config)!.push(g.timeline.helloMs!);
        await new Promise((r) => setTimeout(r, 1000));
        rss.get(c.config)!.push(rssMiB(g.process.pid));
      } finally {
        await g.kill();
      }
    }
  }
  const results = configs.map((c) => ({ config: c.config, hello: summarize(hello.get(c.config)!), idleRssMiB: round(summarize(rss.get(c.config)!).p50Ms) }));
  return { results, addedMs: round(results[0]!.hello.p50Ms - results[1]!.hello.p50Ms), jail: { enabled: true, reason: jail.reason, cgroups: jail.cgroups.mode } };
}
