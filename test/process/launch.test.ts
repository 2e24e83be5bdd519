// Below the manager: the probe and the choice of binary, a one-off launch found on PATH (console on QEMU's
// stdout, a temporary directory), and a guest's agent channel reconnecting, all against the fake QEMU.

import assert from "node:assert/strict";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { test } from "node:test";
import { chooseBinary } from "../../src/qemu/binary-choice.js";
import { probeBinary } from "../../src/qemu/probe.js";
import { launchGuest } from "../../src/vm/launch.js";
import { FAKE_QEMU, alive, fakeQemuPids } from "./harness.js";

const T = { timeout: 15000 };

test("the probe reads the fake as QEMU 7.2, and the choice falls on it", T, async (t) => {
  const cache = mkdtempSync(join(tmpdir(), "mvm-proc-probe-"));
  t.after(() => rmSync(cache, { recursive: true, force: true }));
  const info = await probeBinary(FAKE_QEMU, cache);
  assert.equal(info.version, "7.2.0");
  assert.deepEqual(info.accels.sort(), ["kvm", "tcg"]);
  for (const d of ["virtio-serial-device", "virtserialport", "virtio-rng-device", "virtio-blk-device"]) assert.ok(info.devices.includes(d), d);
  assert.ok(info.netdevs.includes("user") && info.netdevs.includes("tap"));
  assert.ok(info.sandbox);
  const choice = chooseBinary("auto", { accel: "tcg", devices: ["virtio-serial-device"], netdevs: ["user"] }, { full: info });
  assert.deepEqual({ kind: choice.kind, usable: choice.usable, path: choice.path }, { kind: "full", usable: true, path: FAKE_QEMU });
});

test("a one-off launch finds qemu-system-x86_64 on PATH; its console is QEMU's stdout; its directory goes with it", T, async (t) => {
  const path = process.env.PATH;
  process.env.PATH = `${dirname(FAKE_QEMU)}:${path}`;
  t.after(() => (process.env.PATH = path));
  const artifactsDir = mkdtempSync(join(tmpdir(), "mvm-proc-oneoff-"));
  t.after(() => rmSync(artifactsDir, { recursive: true, force: true }));
  const artifacts = {
    kernel: { dir: artifactsDir, vmlinux: join(artifactsDir, "vmlinux"), bzImage: join(artifactsDir, "vmlinux"), info: { release: "fake", sourceVersion: "fake", hz: 1000, key: "fake", buildSeconds: 0 } },
    initramfs: { dir: artifactsDir, path: join(artifactsDir, "initramfs"), info: { busyboxVersion: "fake", key: "fake", bytes: 0, agentBytes: 0, initBytes: 0 } },
  };
  const guest = await launchGuest({ artifacts, helloTimeoutMs: 5000, config: { hostname: "one-off" } });
  t.after(() => guest.kill());
  assert.equal(guest.hello?.hostname, "one-off", "the fake read the guest configuration QEMU was given");
  assert.match(guest.console(), /mvm-init: started/);
  assert.match(guest.argv.flatMap((e) => e.args).join(" "), /-name mvm-run-[0-9a-f]{8}/);
  assert.deepEqual(fakeQemuPids(guest.dir), [guest.process.pid]);

  // The agent channel dropped by the host: QEMU connects again (reconnect=1) and the agent says hello.
  const before = guest.agent;
  const hello = await guest.reconnect(5000);
  assert.equal(hello.hostname, "one-off");
  assert.notEqual(guest.agent, before);
  assert.equal((await guest.agent!.run(["echo", "back"])).stdout.toString(), "back\n");

  const { via } = await guest.stop();
  assert.equal(via, "guest");
  assert.ok(!alive(guest.process.pid));
  assert.ok(!existsSync(guest.dir), "the temporary directory is removed");
});
