// Boot phases from a verbose console: each phase ends at the first console line matching its marker (host
// ms since QEMU's spawn, as the line arrived), after the previous phase's end. Markers are lines the 6.1
// kernel prints on mvm's kernel and on Debian's alike; a phase whose marker never shows (another kernel,
// another config) gets 0 ms and its time goes to the next phase that does show.

export interface PhaseMark {
  phase: string;
  /** The console line that ends the phase; "qmp" and "hello" are host events, not lines. */
  ends: RegExp | "qmp" | "hello";
}

export const BOOT_PHASES: readonly PhaseMark[] = [
  { phase: "QEMU start to QMP ready", ends: "qmp" },
  { phase: "firmware, kernel entry", ends: /^Linux version / },
  { phase: "e820, TSC, ACPI tables", ends: /^Kernel command line: / },
  { phase: "memory, scheduler, IRQs, console", ends: /^Calibrating delay loop/ },
  { phase: "SMP alternatives", ends: /^Freeing SMP alternatives memory/ },
  { phase: "APIC timer, CPU bring-up", ends: /^smpboot: CPU0: / },
  { phase: "initcalls to ACPI", ends: /^ACPI: Interpreter enabled/ },
  { phase: "initcalls to rootfs", ends: /^Unpacking initramfs/ },
  { phase: "initramfs unpack, device initcalls", ends: /^Freeing initrd memory/ },
  { phase: "freeing init memory", ends: /^Run .* as init process/ },
  { phase: "/init to its first line", ends: /mvm-init: started/ },
  { phase: "to the agent's hello", ends: "hello" },
];

/** Collects console lines with their arrival times, then splits them into phases. */
export class PhaseRecorder {
  private readonly lines: Array<{ line: string; ms: number }> = [];
  qmpMs?: number;
  helloMs?: number;

  /** For LaunchOptions.onConsoleLine. Bounded: a verbose boot prints a few hundred lines. */
  readonly onLine = (line: string, ms: number): void => {
    // Kernels built with PRINTK_TIME (Debian's) start each line with "[    0.123456] ".
    if (this.lines.length < 5000) this.lines.push({ line: line.replace(/^\[\s*\d+\.\d+\]\s/, ""), ms });
  };

  phases(): Array<{ phase: string; ms: number }> {
    const out: Array<{ phase: string; ms: number }> = [];
    let last = 0;
    let from = 0;
    for (const mark of BOOT_PHASES) {
      let at: number | undefined;
      if (mark.ends === "qmp") at = this.qmpMs;
      else if (mark.ends === "hello") at = this.helloMs;
      else {
        const re = mark.ends;
        const i = this.lines.findIndex((l, k) => k >= from && re.test(l.line));
        if (i >= 0) {
          at = this.lines[i]!.ms;
          from = i + 1;
        }
      }
      // A host event can come after a later line (QMP after the first printk): it never goes backwards.
      if (at === undefined || at < last) {
        out.push({ phase: mark.phase, ms: 0 });
        continue;
      }
      out.push({ phase: mark.phase, ms: at - last });
      last = at;
    }
    return out;
  }
}

/** Per phase, the median over runs (runs are PhaseRecorder.phases() results with the same phase list). */
export function medianPhases(runs: Array<Array<{ phase: string; ms: number }>>): Array<{ phase: string; ms: number }> {
  if (runs.length === 0) return [];
  return runs[0]!.map((p, i) => {
    const xs = runs.map((r) => r[i]!.ms).sort((a, b) => a - b);
    const mid = xs.length >> 1;
    const m = xs.length % 2 ? xs[mid]! : (xs[mid - 1]! + xs[mid]!) / 2;
    return { phase: p.phase, ms: Math.round(m * 10) / 10 };
  });
}
