import assert from "node:assert/strict";
import { test } from "node:test";
import { chooseAccel, type HostFacts } from "./accel.js";

const real: HostFacts = { kvmDevice: "ok", pvm: false, cpuVirtFlags: true };

test("auto takes KVM where it is real", () => {
  assert.equal(chooseAccel("auto", real).chosen, "kvm");
});

test("auto falls back to TCG with the reason, for each way KVM can be unusable", () => {
  const cases: Array<[Partial<HostFacts>, RegExp]> = [
    [{ kvmDevice: "absent" }, /does not exist/],
    [{ kvmDevice: "no-access" }, /kvm group/],
    [{ pvm: true }, /PVM/],
    [{ cpuVirtFlags: false }, /vmx\/svm/],
  ];
  for (const [change, reason] of cases) {
    const c = chooseAccel("auto", { ...real, ...change });
    assert.equal(c.chosen, "tcg");
    assert.match(c.reason, reason);
    assert.ok(c.usable);
  }
});

test("kvm requested where it is unusable is reported unusable, with the reason", () => {
  const c = chooseAccel("kvm", { ...real, pvm: true });
  assert.deepEqual([c.chosen, c.usable], ["kvm", false]);
  assert.match(c.reason, /PVM/);
});

test("tcg requested is always honoured", () => {
  assert.deepEqual(chooseAccel("tcg", real), { chosen: "tcg", reason: "requested", usable: true });
});
