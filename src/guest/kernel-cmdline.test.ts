import assert from "node:assert/strict";
import { test } from "node:test";
import { cmdlineString, defaultCmdline, guestNeedsNoPit } from "./kernel-cmdline.js";

const tsc = { khz: 2596132, source: "test" };

test("under TCG the timer hints come from the host TSC, lpj only with a known HZ", () => {
  const withHz = cmdlineString(defaultCmdline({ accel: "tcg", tsc, kernelHz: 100 }));
  assert.match(withHz, /tsc_early_khz=2596132 tsc=reliable no_timer_check lpj=25961320/);
  const noHz = cmdlineString(defaultCmdline({ accel: "tcg", tsc }));
  assert.match(noHz, /tsc_early_khz=2596132/);
  assert.doesNotMatch(noHz, /lpj=/);
});

test("KVM needs no timer hints; every flag has a reason", () => {
  const flags = defaultCmdline({ accel: "kvm", tsc, kernelHz: 100 });
  assert.doesNotMatch(cmdlineString(flags), /tsc|lpj/);
  for (const f of flags) assert.ok(f.reason.length > 10, f.flag);
  assert.match(cmdlineString(flags), /^console=ttyS0 /);
});

test("without a known TSC there are no hints rather than wrong ones", () => {
  assert.doesNotMatch(cmdlineString(defaultCmdline({ accel: "tcg", kernelHz: 100 })), /tsc|lpj/);
});

test("mvm's kernel patches are used only when the kernel has them; the APIC timer period only under TCG", () => {
  const patches = ["0001-x86-apic-lapic-timer-period-parameter", "0002-x86-mm-init-poison-parameter"];
  const tcg = cmdlineString(defaultCmdline({ accel: "tcg", tsc, kernelHz: 100, kernelPatches: patches }));
  assert.match(tcg, / init_poison=off /);
  assert.match(tcg, / lapic_timer_period=10000000 /, "1 GHz / HZ 100");
  assert.match(tcg, / noreplace-smp$/);
  assert.ok(guestNeedsNoPit({ accel: "tcg", tsc, kernelHz: 100, kernelPatches: patches }));

  const kvm = cmdlineString(defaultCmdline({ accel: "kvm", tsc, kernelHz: 100, kernelPatches: patches }));
  assert.match(kvm, /init_poison=off/);
  assert.doesNotMatch(kvm, /lapic_timer_period|noreplace-smp/, "KVM calibrates its own timers");
  assert.ok(!guestNeedsNoPit({ accel: "kvm", tsc, kernelHz: 100, kernelPatches: patches }));

  const unpatched = cmdlineString(defaultCmdline({ accel: "tcg", tsc, kernelHz: 100 }));
  assert.doesNotMatch(unpatched, /init_poison|lapic_timer_period/, "a kernel without the patches would pass these to init");
  assert.ok(!guestNeedsNoPit({ accel: "tcg", tsc, kernelHz: 100 }), "without the period the kernel calibrates against a PIT");
  assert.ok(!guestNeedsNoPit({ accel: "tcg", kernelHz: 100, kernelPatches: patches }), "without the TSC rate it calibrates the TSC against the PIT");
});
