// `mvm bench guest`: what the guest side costs and delivers, measured through the host-side protocol code.
// Boot: spawn -> agent hello (with the timeline) for the PVH vmlinux, beside the same kernel as a bzImage in
// the same run. Agent: bare exec round trip, and raw stream throughput both ways (dd with 64 KiB blocks at
// the guest end). Sizes of the artefacts.

import { readFileSync, statSync } from "node:fs";
import type { AgentClient } from "../agent/client.js";
import type { GuestArtifacts } from "../guest/artifacts.js";
import { launchGuest } from "../vm/launch.js";
import { round, summarize, type Summary } from "./stats.js";

export interface GuestBenchOptions {
  artifacts: GuestArtifacts;
  boots: number;
  execs: number;
  streamMiB: number;
  onProgress?: (line: string) => void;
}

interface BootSample {
  helloMs: number;
  qemuConnectedMs: number;
  firstConsoleMs: number;
  initLineMs: number;
  guestInitUptimeMs: number;
  guestHelloUptimeMs: number;
}

async function bootOnce(artifacts: GuestArtifacts): Promise<BootSample> {
  const guest = await launchGuest({ artifacts, helloTimeoutMs: 60000 });
  try {
    const t = guest.timeline;
    return {
      helloMs: t.helloMs!,
      qemuConnectedMs: t.qemuConnectedMs!,
      firstConsoleMs: t.firstConsoleMs ?? NaN,
      initLineMs: t.initLineMs ?? NaN,
      guestInitUptimeMs: t.guestInitUptimeMs ?? NaN,
      guestHelloUptimeMs: t.guestHelloUptimeMs ?? NaN,
    };
  } finally {
    await guest.kill();
  }
}

const median = (xs: number[]) => summarize(xs.filter((x) => !Number.isNaN(x))).p50Ms;

/** Raw agent streams: dd output to the host and host data into dd, no files, no daemon. */
export async function agentThroughput(agent: AgentClient, mib: number, sink = "/dev/null"): Promise<{ guestToHostMBps: number; hostToGuestMBps: number }> {
  const bytes = mib * 1024 * 1024;
  let received = 0;
  let t = performance.now();
  // dd with 64 KiB blocks: busybox head and wc move 4 KiB a syscall, which would measure them, not the agent.
  const blocks = String(bytes / 65536);
  const out = await agent.exec({ argv: ["dd", "if=/dev/zero", "bs=65536", `count=${blocks}`], onStdout: (b) => (received += b.length) }).result;
  const outSeconds = (performance.now() - t) / 1000;
  if (out.exitCode !== 0 || received !== bytes) throw new Error(`stream out: got ${received} of ${bytes} bytes, status ${out.status}`);

  const chunk = Buffer.alloc(256 * 1024, 0x5a);
  t = performance.now();
  let counted = "";
  const dd = agent.exec({ argv: ["dd", `of=${sink}`, "bs=65536", "iflag=fullblock"], stdin: true, onStderr: (b) => (counted += b.toString()) });
  for (let sent = 0; sent < bytes; sent += chunk.length) await dd.write(chunk);
  await dd.end();
  await dd.result;
  const inSeconds = (performance.now() - t) / 1000;
  // With full blocks, dd's "N+0 records in" proves every byte arrived (bytes is a multiple of 64 KiB).
  const m = /^(\d+)\+0 records in/m.exec(counted);
  if (!m || Number(m[1]) !== bytes / 65536) throw new Error(`stream in: the guest's dd said ${JSON.stringify(counted.trim())}`);
  return { guestToHostMBps: round(bytes / 1e6 / outSeconds), hostToGuestMBps: round(bytes / 1e6 / inSeconds) };
}

export interface GuestBenchResult {
  boot: Array<{ config: string } & Summary & { timelineP50: Record<string, number> }>;
  bootSpeedup: number;
  exec: Summary;
  stream: { mib: number; guestToHostMBps: number; hostToGuestMBps: number };
  idleRssMiB: number;
  sizes: { vmlinuxBytes: number; bzImageBytes: number; initramfsBytes: number; agentBytes: number; initBytes: number };
  kernel: { release: string; buildSeconds: number };
}

export async function benchGuest(o: GuestBenchOptions): Promise<GuestBenchResult> {
  const progress = o.onProgress ?? (() => {});
  const bzArtifacts: GuestArtifacts = { ...o.artifacts, kernel: { ...o.artifacts.kernel, vmlinux: o.artifacts.kernel.bzImage } };
  const samples: Record<string, BootSample[]> = { "microvm+vmlinux(PVH)": [], "microvm+bzImage": [] };
  // Interleaved, so both configurations see the same machine noise.
  for (let i = 0; i < o.boots; i++) {
    progress(`boot ${i + 1}/${o.boots}`);
    samples["microvm+vmlinux(PVH)"]!.push(await bootOnce(o.artifacts));
    samples["microvm+bzImage"]!.push(await bootOnce(bzArtifacts));
  }
  const boot = Object.entries(samples).map(([config, s]) => ({
    config,
    ...summarize(s.map((x) => x.helloMs)),
    timelineP50: {
      qemuConnectedMs: median(s.map((x) => x.qemuConnectedMs)),
      firstConsoleMs: median(s.map((x) => x.firstConsoleMs)),
      initLineMs: median(s.map((x) => x.initLineMs)),
      helloMs: median(s.map((x) => x.helloMs)),
      guestInitUptimeMs: median(s.map((x) => x.guestInitUptimeMs)),
      guestHelloUptimeMs: median(s.map((x) => x.guestHelloUptimeMs)),
    },
  }));

  progress("exec round trips and stream throughput");
  const guest = await launchGuest({ artifacts: o.artifacts, helloTimeoutMs: 60000 });
  try {
    const agent = guest.agent!;
    await new Promise((r) => setTimeout(r, 500)); // let the guest settle after boot
    const rss = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${guest.process.pid}/status`, "utf8"))?.[1] ?? NaN) / 1024;
    const trips: number[] = [];
    for (let i = 0; i < o.execs; i++) {
      const t = performance.now();
      const r = await agent.exec({ argv: ["true"] }).result;
      if (r.exitCode !== 0) throw new Error(`exec true failed: ${r.status}`);
      trips.push(performance.now() - t);
    }
    const stream = await agentThroughput(agent, o.streamMiB);
    return {
      boot,
      bootSpeedup: round(boot[1]!.p50Ms / boot[0]!.p50Ms, 2),
      exec: summarize(trips),
      stream: { mib: o.streamMiB, ...stream },
      idleRssMiB: round(rss),
      sizes: {
        vmlinuxBytes: statSync(o.artifacts.kernel.vmlinux).size,
        bzImageBytes: statSync(o.artifacts.kernel.bzImage).size,
        initramfsBytes: o.artifacts.initramfs.info.bytes,
        agentBytes: o.artifacts.initramfs.info.agentBytes,
        initBytes: o.artifacts.initramfs.info.initBytes,
      },
      kernel: { release: o.artifacts.kernel.info.release, buildSeconds: o.artifacts.kernel.info.buildSeconds },
    };
  } finally {
    await guest.kill();
  }
}
