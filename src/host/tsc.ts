// The host's TSC frequency. Under TCG the guest's TSC ticks at the host's rate, and a guest kernel that
// has to calibrate it against the emulated PIT can fail and hang for good when host cores are busy; telling
// it the frequency (tsc_early_khz, lpj) removes the calibration. Sources, best first: the host kernel's own
// calibration in its log, then /proc/cpuinfo.

import { closeSync, constants, openSync, readFileSync, readSync } from "node:fs";

export interface TscInfo {
  khz: number;
  source: string;
}

const KMSG_PATTERNS = [
  /tsc: Refined TSC clocksource calibration: (\d+)\.(\d+) MHz/,
  /tsc: Detected (\d+)\.(\d+) MHz processor/,
];

function fromKmsg(): TscInfo | undefined {
  let fd: number | undefined;
  try {
    fd = openSync("/dev/kmsg", constants.O_RDONLY | constants.O_NONBLOCK);
    const buf = Buffer.alloc(8192);
    const found: (TscInfo | undefined)[] = [];
    // One record per read; EAGAIN ends the log. Bounded so a busy log cannot keep us here.
    for (let i = 0; i < 100000; i++) {
      let n: number;
      try {
        n = readSync(fd, buf, 0, buf.length, null);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === "EPIPE") continue; // overwritten records
        break;
      }
      if (n <= 0) break;
      const line = buf.toString("utf8", 0, n);
      KMSG_PATTERNS.forEach((re, k) => {
        const m = re.exec(line);
        if (m) found[k] = { khz: Number(m[1]) * 1000 + Number(m[2]!.padEnd(3, "0").slice(0, 3)), source: "host kernel log" };
      });
    }
    return found[0] ?? found[1];
  } catch {
    return undefined;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

function fromCpuinfo(text: string): TscInfo | undefined {
  if (!/^flags\s*:.*\btsc\b/m.test(text)) return undefined;
  const m = /^cpu MHz\s*:\s*(\d+)(?:\.(\d+))?/m.exec(text);
  if (!m) return undefined;
  return { khz: Number(m[1]) * 1000 + Number((m[2] ?? "0").padEnd(3, "0").slice(0, 3)), source: "/proc/cpuinfo cpu MHz" };
}

let cached: TscInfo | null | undefined;

/** The host TSC frequency, or undefined when it cannot be known (then no timer hints are given). */
export function hostTsc(): TscInfo | undefined {
  if (cached === undefined) {
    let cpuinfo = "";
    try {
      cpuinfo = readFileSync("/proc/cpuinfo", "utf8");
    } catch {
      /* not Linux */
    }
    cached = fromKmsg() ?? fromCpuinfo(cpuinfo) ?? null;
  }
  return cached ?? undefined;
}

export const parseCpuinfoForTest = fromCpuinfo;
