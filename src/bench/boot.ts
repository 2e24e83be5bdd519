// `mvm bench boot`: mvm's cold boot against what users run today, in the same run, interleaved: -M q35
// with Debian's linux-image-cloud-amd64 kernel and the same initramfs ("console=ttyS0 quiet"). Each
// configuration is timed from spawn to the first line /init prints on the serial console, mvm's also to
// its agent's hello (ready for work). speedup = q35 p50 / mvm p50 on the first-line measure.
// Beside the default, mvm runs with one boot-time lever undone each (docs/boot-time.md), and once after the
// host sat idle. With `phases`, each configuration also boots verbose (no `quiet`, earlyprintk) and the
// console lines split its time into phases (boot-phases.ts); those boots are slower and timed apart.

import { spawn } from "node:child_process";
import { execFile } from "node:child_process";
import { mkdtemp, rm, writeFile, readFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { gzipSync } from "node:zlib";
import { withDeadline } from "../deadline.js";
import type { GuestArtifacts } from "../guest/artifacts.js";
import { cmdlineString, defaultCmdline, type CmdlineFlag } from "../guest/kernel-cmdline.js";
import { hostTsc } from "../host/tsc.js";
import { packageRoot } from "../host/paths.js";
import type { MachinePlan } from "../plan/machine.js";
import { launchGuest } from "../vm/launch.js";
import { medianPhases, PhaseRecorder } from "./boot-phases.js";
import { round, summarize, type Summary } from "./stats.js";

const INIT_MARK = "mvm-init: started";
const VERBOSE = ["earlyprintk=serial,ttyS0"];
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** One way of booting mvm's guest: which levers are undone, and whether the host sits idle first. */
interface MvmConfig {
  name: string;
  /** Another build of the guest (an older kernel and initramfs), booted with the flags it supports. */
  artifacts?: GuestArtifacts;
  /** Command-line flags taken out of mvm's default (by prefix). */
  drop?: string[];
  machine?: MachinePlan["machine"];
  gzipInitramfs?: boolean;
  idleMs?: number;
}

const MVM_CONFIGS: MvmConfig[] = [
  { name: "mvm" },
  { name: "mvm after 5 s idle", idleMs: 5000 },
  // Without the period the kernel calibrates its APIC timer against a tick: it needs the PIT back.
  { name: "mvm without the kernel patches' flags", drop: ["init_poison=", "lapic_timer_period="], machine: { pit: "on", pic: "on" } },
  { name: "mvm without noreplace-smp", drop: ["noreplace-smp"] },
  { name: "mvm with PIT and PIC", machine: { pit: "on", pic: "on" } },
  { name: "mvm with a gzip initramfs", gzipInitramfs: true },
];

export interface BootBenchResult {
  results: Array<{ config: string } & Summary>;
  speedup: number;
  baselineKernel: string;
  phases?: Array<{ config: string; totalMs: number; phases: Array<{ phase: string; ms: number }> }>;
  cmdline: string;
}

export interface BootBenchOptions {
  artifacts: GuestArtifacts;
  runs: number;
  /** Also boot every configuration verbose and split its time into phases. */
  phases?: boolean;
  /** A second guest build to boot beside (an older mvm's manifest, from guest/build.sh), as mvm booted it. */
  compare?: { name: string; artifacts: GuestArtifacts };
  onProgress?: (line: string) => void;
}

/** Spawns QEMU and resolves with the ms from spawn to the first console line of /init; kills it then. */
async function q35FirstLine(kernel: string, initrd: string, verbose: boolean, rec?: PhaseRecorder): Promise<number> {
  const append = verbose ? ["console=ttyS0", ...VERBOSE] : ["console=ttyS0", "quiet"];
  const args = ["-M", "q35", "-accel", "tcg", "-m", "256M", "-smp", "1", "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot", "-serial", "stdio", "-kernel", kernel, "-initrd", initrd, "-append", append.join(" ")];
  const t0 = performance.now();
  const child = spawn("qemu-system-x86_64", args, { stdio: ["ignore", "pipe", "ignore"] });
  let text = "";
  let partial = "";
  try {
    return await withDeadline(
      new Promise<number>((resolve, reject) => {
        child.stdout.on("data", (b: Buffer) => {
          const s = b.toString("latin1");
          text = (text + s).slice(-65536);
          if (rec) {
            const lines = (partial + s).split(/\r?\n/);
            partial = lines.pop()!.slice(-4096);
            for (const l of lines) rec.onLine(l, performance.now() - t0);
          }
          if (text.includes(INIT_MARK)) resolve(performance.now() - t0);
        });
        child.once("exit", (code) => reject(new Error(`q35 QEMU exited (${code}) before /init printed; console: ${text.slice(-500)}`)));
      }),
      { timeoutMs: 120000 },
      "the q35 baseline did not reach /init",
    );
  } finally {
    child.kill("SIGKILL");
  }
}

export async function baselineKernel(): Promise<string> {
  const { stdout } = await promisify(execFile)("bash", [`${packageRoot}guest/baseline/debian-kernel.sh`]);
  return stdout.trim();
}

/** mvm's default command line for this host, with some flags taken out, and verbose when asked. */
function cmdlineFor(artifacts: GuestArtifacts, c: MvmConfig, verbose: boolean): string {
  const info = artifacts.kernel.info;
  let flags: CmdlineFlag[] = defaultCmdline({ accel: "tcg", tsc: hostTsc(), kernelHz: info.hz, kernelPatches: info.patches });
  flags = flags.filter((f) => !(c.drop ?? []).some((d) => f.flag.startsWith(d)));
  if (verbose) flags = [...flags.filter((f) => f.flag !== "quiet"), ...VERBOSE.map((flag) => ({ flag, reason: "bench: verbose" }))];
  return cmdlineString(flags);
}

async function bootMvm(defaults: GuestArtifacts, c: MvmConfig, gzInitrd: string, verbose: boolean, rec?: PhaseRecorder): Promise<{ initLineMs: number; helloMs: number }> {
  const artifacts = c.artifacts ?? defaults;
  // The default machine options only apply with the default command line: this one is ours, so say them.
  const defaultMachine = c.artifacts ? {} : ({ pit: "off", pic: "off" } as const);
  const guest = await launchGuest({
    artifacts,
    accel: "tcg",
    helloTimeoutMs: 60000,
    cmdline: cmdlineFor(artifacts, c, verbose),
    machine: { ...defaultMachine, ...c.machine },
    initrd: c.gzipInitramfs ? gzInitrd : undefined,
    onConsoleLine: rec?.onLine,
  });
  try {
    if (rec) {
      rec.qmpMs = guest.timeline.qmpReadyMs;
      rec.helloMs = guest.timeline.helloMs;
    }
    return { initLineMs: guest.timeline.initLineMs ?? NaN, helloMs: guest.timeline.helloMs! };
  } finally {
    await guest.kill();
  }
}

export async function benchBoot(o: BootBenchOptions): Promise<BootBenchResult> {
  const kernel = await baselineKernel();
  const dir = await mkdtemp(join(tmpdir(), "mvm-bench-boot-"));
  // An older build ran without the flags that came with the levers (its kernel lacks the patches anyway).
  const configs = o.compare ? [...MVM_CONFIGS, { name: o.compare.name, artifacts: o.compare.artifacts, drop: ["noreplace-smp"] }] : MVM_CONFIGS;
  try {
    const gzInitrd = join(dir, "initramfs.cpio.gz");
    await writeFile(gzInitrd, gzipSync(await readFile(o.artifacts.initramfs.path), { level: 9 }));
    const q35 = "q35 + Debian cloud kernel";
    const firstLine = new Map<string, number[]>([...configs.map((c) => [c.name, []] as [string, number[]]), [q35, []]]);
    const hello = new Map<string, number[]>(configs.map((c) => [c.name, []]));
    const phaseRuns = new Map<string, Array<Array<{ phase: string; ms: number }>>>([...firstLine.keys()].map((k) => [k, []]));
    // Interleaved, so every configuration sees the same machine noise.
    for (let i = 0; i < o.runs; i++) {
      for (const c of configs) {
        o.onProgress?.(`run ${i + 1}/${o.runs}: ${c.name}`);
        if (c.idleMs) await sleep(c.idleMs);
        const r = await bootMvm(o.artifacts, c, gzInitrd, false);
        firstLine.get(c.name)!.push(r.initLineMs);
        hello.get(c.name)!.push(r.helloMs);
        if (o.phases) {
          if (c.idleMs) await sleep(c.idleMs);
          const rec = new PhaseRecorder();
          await bootMvm(o.artifacts, c, gzInitrd, true, rec);
          phaseRuns.get(c.name)!.push(rec.phases());
        }
      }
      o.onProgress?.(`run ${i + 1}/${o.runs}: ${q35}`);
      // mvm's uncompressed initramfs: the faster of the two for q35 as well (~300 ms here), so the fair one.
      firstLine.get(q35)!.push(await q35FirstLine(kernel, o.artifacts.initramfs.path, false));
      if (o.phases) {
        const rec = new PhaseRecorder();
        await q35FirstLine(kernel, o.artifacts.initramfs.path, true, rec);
        phaseRuns.get(q35)!.push(rec.phases());
      }
    }
    const results = [
      ...configs.flatMap((c) => [
        { config: `${c.name} (first line from /init)`, ...summarize(firstLine.get(c.name)!) },
        { config: `${c.name} (agent hello: ready)`, ...summarize(hello.get(c.name)!) },
      ]),
      { config: `${q35} (first line from /init)`, ...summarize(firstLine.get(q35)!) },
    ];
    const phases = o.phases
      ? [...phaseRuns].map(([config, runs]) => {
          const p = medianPhases(runs);
          return { config, totalMs: round(p.reduce((s, x) => s + x.ms, 0)), phases: p };
        })
      : undefined;
    return {
      results,
      speedup: round(summarize(firstLine.get(q35)!).p50Ms / summarize(firstLine.get("mvm")!).p50Ms, 2),
      baselineKernel: kernel,
      phases,
      cmdline: cmdlineFor(o.artifacts, MVM_CONFIGS[0]!, false),
    };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
