// Faults on real guests under TCG (issue 12): the host's disk full while a snapshot is written. QEMU writes
// the state itself (a migration to a file), so the fake QEMU of the process tier cannot show it; the other
// disk-full cases (VM create, image import) are in test/process/faults.test.ts.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdirSync, readdirSync, statfsSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { fillDisk } from "../support/host-state.js";
import { startTestDaemon } from "../support/daemon.js";

const root = process.getuid?.() === 0;

test("the host's disk full while a snapshot is written: HOST_DISK_FULL, no snapshot half-made, the VM runs on", { timeout: 240_000, skip: !root && "mounting a size-limited tmpfs needs root" }, async (t) => {
  const d = await startTestDaemon(t);
  const c = d.client;
  const vm = await c.start((await c.create({ name: "snap-src", memory: "256M" })).id);
  // $MVM_HOME/snapshots on a small filesystem of its own: the daemon's database and the VM's files stay
  // where they are, so only the snapshot meets the full disk.
  const snaps = join(d.home, "snapshots");
  mkdirSync(snaps, { recursive: true, mode: 0o700 });
  execFileSync("mount", ["-t", "tmpfs", "-o", "size=256m,mode=0700", "tmpfs", snaps]);
  const unmount = () => {
    try {
      execFileSync("umount", ["-l", snaps], { stdio: "ignore" });
    } catch {
      /* already */
    }
  };
  t.after(unmount);
  try {
    const free = fillDisk(snaps).free;
    assert.ok(statfsSync(snaps).bavail * statfsSync(snaps).bsize < 4096, "full");
    const t0 = Date.now();
    await assert.rejects(c.createSnapshot(vm.id, { name: "too-big" }), (e: Error & { code?: string; hint?: string }) => {
      t.diagnostic(`after ${Date.now() - t0} ms: ${e.code}: ${e.message} (hint: ${e.hint})`);
      assert.equal(e.code, "HOST_DISK_FULL", e.message);
      assert.match(e.message, /no space left on the host's disk to save VM snap-src's state/);
      assert.match(e.hint ?? "", /free space/);
      return true;
    });
    assert.deepEqual(await c.snapshots(), [], "no snapshot registered");
    assert.deepEqual(readdirSync(snaps).filter((f) => !f.startsWith("filler-")), [], "no half-written state or temporary folder left");
    const after = await c.get(vm.id);
    assert.equal(after.state, "running", "the VM runs on");
    assert.equal(after.pid, vm.pid, "in the same QEMU");
    let out = "";
    assert.equal((await c.exec(vm.id, ["sh", "-c", "echo alive"], { onStdout: (b) => (out += b.toString()) })).status, 0);
    assert.equal(out, "alive\n");
    free();
    // With room, the same snapshot is taken: nothing of the failed one is in the way.
    const snap = await c.createSnapshot(vm.id, { name: "too-big" });
    t.diagnostic(`with room: snapshot of ${snap.stateBytes} bytes, the VM stopped for ${snap.pausedMs} ms`);
    assert.equal((await c.exec(vm.id, ["true"])).status, 0);
    await c.removeSnapshot("too-big");
    await c.kill(vm.id);
  } finally {
    unmount();
  }
});

test("QEMU of a bridged VM killed under a live daemon: crashed, its tap removed, and a start makes it again", { timeout: 180_000, skip: !root && "bridged networks need root" }, async (t) => {
  const d = await startTestDaemon(t, { netns: true });
  const c = d.client;
  await c.createNetwork("lan", { subnet: "10.79.0.0/24" });
  const vm = await c.start((await c.create({ name: "tapped", network: "lan" })).id);
  const tap = vm.bridged!.tap;
  assert.match(d.inNetns(["ip", "link", "show"]), new RegExp(tap));
  process.kill(vm.pid!, "SIGKILL");
  let after = await c.get(vm.id);
  for (let i = 0; i < 100 && after.state !== "crashed"; i++) {
    await new Promise((r) => setTimeout(r, 100));
    after = await c.get(vm.id);
  }
  assert.equal(after.state, "crashed");
  assert.equal(after.lastExit?.signal, "SIGKILL");
  let links = d.inNetns(["ip", "link", "show"]);
  for (let i = 0; i < 50 && links.includes(tap); i++) {
    await new Promise((r) => setTimeout(r, 100));
    links = d.inNetns(["ip", "link", "show"]);
  }
  assert.doesNotMatch(links, new RegExp(tap), "the tap went with QEMU");
  const again = await c.start(vm.id);
  assert.equal(again.bridged?.ip, vm.bridged?.ip);
  assert.match(d.inNetns(["ip", "link", "show"]), new RegExp(tap));
  assert.equal((await c.exec(vm.id, ["ping", "-c", "1", "-W", "5", "10.79.0.1"])).status, 0);
  await c.kill(vm.id);
});
