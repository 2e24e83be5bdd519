// The boot's robustness, beside its speed: N cold boots while busy loops hold every host core (a guest
// kernel that calibrates a timer against emulated time can hang for good then), and the guest clock
// against the host's (a `sleep 5` in the guest must take 5 s of host time: a wrong APIC timer period
// would make every guest timer run fast or slow).

import { spawn, type ChildProcess } from "node:child_process";
import { availableParallelism } from "node:os";
import type { GuestArtifacts } from "../guest/artifacts.js";
import { launchGuest } from "../vm/launch.js";
import { round, summarize, type Summary } from "./stats.js";

export interface BootStressResult {
  boots: number;
  hangs: number;
  busyLoops: number;
  hello: Summary;
  /** Host ms a guest `sleep 5` took, and the guest's own view of it. */
  clock: { hostMs: number; guestMs: number };
}

const HANG_MS = 30000;

function busyLoops(n: number): ChildProcess[] {
  return Array.from({ length: n }, () => spawn("sh", ["-c", "while :; do :; done"], { stdio: "ignore" }));
}

export async function benchBootStress(o: { artifacts: GuestArtifacts; boots: number; onProgress?: (l: string) => void }): Promise<BootStressResult> {
  const loops = busyLoops(availableParallelism());
  const hello: number[] = [];
  let hangs = 0;
  try {
    for (let i = 0; i < o.boots; i++) {
      o.onProgress?.(`boot ${i + 1}/${o.boots} with every core busy`);
      try {
        const g = await launchGuest({ artifacts: o.artifacts, accel: "tcg", helloTimeoutMs: HANG_MS });
        hello.push(g.timeline.helloMs!);
        await g.kill();
      } catch (e) {
        hangs++;
        o.onProgress?.(`boot ${i + 1} did not reach the agent in ${HANG_MS / 1000} s: ${(e as Error).message}`);
      }
    }
  } finally {
    for (const l of loops) l.kill("SIGKILL");
  }
  o.onProgress?.("guest clock: sleep 5");
  const g = await launchGuest({ artifacts: o.artifacts, accel: "tcg", helloTimeoutMs: 60000 });
  try {
    let out = "";
    const t = performance.now();
    const r = await g.agent!.exec({ argv: ["sh", "-c", "a=$(cut -d' ' -f1 /proc/uptime); sleep 5; b=$(cut -d' ' -f1 /proc/uptime); echo $a $b"], onStdout: (b) => (out += b.toString()) }).result;
    const hostMs = performance.now() - t;
    if (r.exitCode !== 0) throw new Error(`sleep 5 in the guest failed: ${r.status}`);
    const [a, b] = out.trim().split(" ").map(Number);
    return { boots: o.boots, hangs, busyLoops: loops.length, hello: summarize(hello), clock: { hostMs: round(hostMs), guestMs: round((b! - a!) * 1000) } };
  } finally {
    await g.kill();
  }
}
