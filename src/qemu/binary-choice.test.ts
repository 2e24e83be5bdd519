import assert from "node:assert/strict";
import { test } from "node:test";
import { chooseBinary, type BinaryNeeds } from "./binary-choice.js";
import { parseAccelHelp, parseDeviceHelp, type QemuBinaryInfo } from "./probe.js";

// What Debian 12's two binaries report (see shared/ENVIRONMENT.md).
const full: QemuBinaryInfo = {
  path: "/usr/bin/qemu-system-x86_64",
  sha256: "f",
  version: "7.2.22",
  accels: ["kvm", "tcg"],
  devices: ["virtio-blk-device", "virtio-serial-device", "virtserialport", "virtio-rng-device", "virtio-net-device", "virtio-9p-device", "vhost-vsock-device"],
  netdevs: ["user", "tap", "socket"],
  sandbox: true,
};
const microvm: QemuBinaryInfo = {
  path: "/usr/bin/qemu-system-x86_64-microvm",
  sha256: "m",
  version: "7.2.22",
  accels: ["kvm"],
  devices: ["virtio-blk-device", "virtio-serial-device", "virtserialport", "virtio-rng-device", "virtio-net-device"],
  netdevs: ["tap", "socket"],
  sandbox: false,
};
const basic: BinaryNeeds = { accel: "kvm", devices: ["virtio-serial-device", "virtserialport", "virtio-rng-device"], netdevs: [] };

test("auto takes the stripped binary under KVM when the VM needs nothing it lacks", () => {
  const c = chooseBinary("auto", basic, { full, microvm });
  assert.deepEqual([c.kind, c.path, c.usable], ["microvm", microvm.path, true]);
});

test("auto takes the full binary, saying why, when the stripped one lacks something", () => {
  const cases: Array<[BinaryNeeds, RegExp]> = [
    [{ ...basic, accel: "tcg" }, /no TCG accelerator/],
    [{ ...basic, devices: [...basic.devices, "virtio-9p-device"] }, /no virtio-9p-device device/],
    [{ ...basic, netdevs: ["user"] }, /no 'user' network backend/],
    [{ ...basic, sandbox: true }, /-sandbox/],
  ];
  for (const [needs, why] of cases) {
    const c = chooseBinary("auto", needs, { full, microvm });
    assert.equal(c.kind, "full");
    assert.match(c.reason, why);
    assert.ok(c.usable);
  }
});

test("auto without the stripped binary installed uses the full one", () => {
  const c = chooseBinary("auto", basic, { full });
  assert.equal(c.kind, "full");
  assert.match(c.reason, /not installed/);
});

test("microvm requested for a TCG VM is unusable, with the reason", () => {
  const c = chooseBinary("microvm", { ...basic, accel: "tcg" }, { full, microvm });
  assert.deepEqual([c.kind, c.usable], ["microvm", false]);
  assert.match(c.reason, /no TCG/);
});

test("nothing installed is unusable", () => {
  assert.equal(chooseBinary("auto", basic, {}).usable, false);
});

test("help output parsers", () => {
  assert.deepEqual(parseAccelHelp("Accelerators supported in QEMU binary:\ntcg\nkvm\n"), ["tcg", "kvm"]);
  assert.deepEqual(parseDeviceHelp('Storage devices:\nname "virtio-blk-device", bus virtio-bus\nname "floppy", bus floppy-bus, desc "virtual floppy drive"\n'), ["virtio-blk-device", "floppy"]);
});
