// `mvm bench boot`: mvm's default VM against what users run today, in the same run, interleaved:
// -M q35 with Debian's linux-image-cloud-amd64 kernel and the same initramfs, kernel command line
// "console=ttyS0 quiet". Both are timed from spawn to the first line /init prints on the serial console;
// mvm also to its agent's hello (ready for work). speedup = q35 p50 / mvm p50 on the first-line measure.

import { execFile, spawn } from "node:child_process";
import { promisify } from "node:util";
import { withDeadline } from "../deadline.js";
import type { GuestArtifacts } from "../guest/artifacts.js";
import { launchGuest } from "../vm/launch.js";
import { packageRoot } from "../host/paths.js";
import { round, summarize, type Summary } from "./stats.js";

const INIT_MARK = "mvm-init: started";

export interface BootBenchResult {
  results: Array<{ config: string } & Summary>;
  speedup: number;
  baselineKernel: string;
}

/** Spawns QEMU and resolves with the ms from spawn to the first console line of /init; kills it then. */
async function q35FirstLine(kernel: string, initrd: string): Promise<number> {
  const args = ["-M", "q35", "-accel", "tcg", "-m", "256M", "-smp", "1", "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot", "-serial", "stdio", "-kernel", kernel, "-initrd", initrd, "-append", "console=ttyS0 quiet"];
  const t0 = performance.now();
  const child = spawn("qemu-system-x86_64", args, { stdio: ["ignore", "pipe", "ignore"] });
  let text = "";
  try {
    return await withDeadline(
      new Promise<number>((resolve, reject) => {
        child.stdout.on("data", (b: Buffer) => {
          text += b.toString("latin1");
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

export async function benchBoot(o: { artifacts: GuestArtifacts; runs: number; onProgress?: (l: string) => void }): Promise<BootBenchResult> {
  const kernel = await baselineKernel();
  const firstLine: Record<string, number[]> = { mvm: [], "q35+debian-cloud": [] };
  const hello: number[] = [];
  for (let i = 0; i < o.runs; i++) {
    o.onProgress?.(`run ${i + 1}/${o.runs}`);
    const guest = await launchGuest({ artifacts: o.artifacts, helloTimeoutMs: 60000 });
    firstLine.mvm!.push(guest.timeline.initLineMs ?? NaN);
    hello.push(guest.timeline.helloMs!);
    await guest.kill();
    firstLine["q35+debian-cloud"]!.push(await q35FirstLine(kernel, o.artifacts.initramfs.path));
  }
  const results = [
    { config: "mvm (first line from /init)", ...summarize(firstLine.mvm!) },
    { config: "mvm (agent hello: ready)", ...summarize(hello) },
    { config: "q35+debian-cloud (first line from /init)", ...summarize(firstLine["q35+debian-cloud"]!) },
  ];
  return { results, speedup: round(results[2]!.p50Ms / results[0]!.p50Ms, 2), baselineKernel: kernel };
}
