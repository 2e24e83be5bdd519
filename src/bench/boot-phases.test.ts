import assert from "node:assert/strict";
import { test } from "node:test";
import { BOOT_PHASES, medianPhases, PhaseRecorder } from "./boot-phases.js";

// Lines as mvm's kernel prints them on a verbose boot, with made-up arrival times.
const LOG: Array<[string, number]> = [
  ["Linux version 6.1.192-mvm (root@vm) #1 SMP", 60],
  ["Command line: console=ttyS0", 61],
  ["Kernel command line: console=ttyS0", 150],
  ["Calibrating delay loop (skipped) preset value.. 4890.00 BogoMIPS (lpj=24450000)", 230],
  ["Freeing SMP alternatives memory: 24K", 240],
  ["smpboot: CPU0: AMD QEMU Virtual CPU version 2.5+", 260],
  ["ACPI: Interpreter enabled", 330],
  ["Unpacking initramfs...", 380],
  ["Freeing initrd memory: 1100K", 450],
  ["Run /init as init process", 480],
  ["mvm-init: started at 420 ms", 500],
];

test("each phase ends at its marker line, and the phases add up to the hello", () => {
  const rec = new PhaseRecorder();
  for (const [line, ms] of LOG) rec.onLine(line, ms);
  rec.qmpMs = 40;
  rec.helloMs = 560;
  const p = rec.phases();
  assert.deepEqual(p.map((x) => x.phase), BOOT_PHASES.map((m) => m.phase));
  assert.deepEqual(p.map((x) => x.ms), [40, 20, 90, 80, 10, 20, 70, 50, 70, 30, 20, 60]);
  assert.equal(p.reduce((s, x) => s + x.ms, 0), 560);
});

test("a marker that never shows gives its phase 0 ms and its time to the next one; QMP after the first line counts 0", () => {
  const rec = new PhaseRecorder();
  // Debian's kernel prefixes its lines with the kernel's own time.
  for (const [line, ms] of LOG.filter(([l]) => !l.startsWith("Freeing SMP"))) rec.onLine(line.startsWith("mvm-init") ? line : `[    0.${ms}000] ${line}`, ms);
  rec.qmpMs = 70; // after "Linux version" at 60
  const p = Object.fromEntries(rec.phases().map((x) => [x.phase, x.ms]));
  assert.equal(p["SMP alternatives"], 0);
  assert.equal(p["APIC timer, CPU bring-up"], 30);
  assert.equal(p["QEMU start to QMP ready"], 70);
  assert.equal(p["firmware, kernel entry"], 0, "time never runs backwards");
  assert.equal(p["to the agent's hello"], 0, "no hello (the q35 baseline stops at /init)");
});

test("medians are taken per phase", () => {
  const runs = [10, 30, 20].map((ms) => [{ phase: "a", ms }, { phase: "b", ms: ms * 2 }]);
  assert.deepEqual(medianPhases(runs), [{ phase: "a", ms: 20 }, { phase: "b", ms: 40 }]);
  assert.deepEqual(medianPhases([]), []);
});
