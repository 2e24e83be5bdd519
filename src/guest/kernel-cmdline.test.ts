import assert from "node:assert/strict";
import { test } from "node:test";
import { cmdlineString, defaultCmdline } from "./kernel-cmdline.js";

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
