// Booting real guests under TCG: power-off, busy hosts, root disks, and boots that must fail clearly.
import assert from "node:assert/strict";
import { spawn, execFileSync } from "node:child_process";
import { mkdtemp, rm, writeFile, mkdir } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { BootError } from "../../src/errors.js";
import { launchGuest } from "../../src/vm/launch.js";
import { assertGone, bootGuest, guestArtifacts, withConsole } from "../support/guests.js";

test("stop: the guest powers off and QEMU ends with status 0", { timeout: 180_000 }, async (t) => {
  const guest = await bootGuest((fn) => t.after(fn));
  const stopped = await guest.stop({ timeoutMs: 20000 });
  assert.deepEqual(stopped, { exit: { code: 0, signal: null, known: true }, via: "guest" });
  assert.match(guest.console(), /mvm-init: powering off/);
  assert.deepEqual(await guest.stop(), stopped, "a second stop returns the same result");
});

test("stop falls back to QMP quit when the guest ignores power-off", { timeout: 180_000 }, async (t) => {
  const guest = await bootGuest((fn) => t.after(fn));
  // Freeze the vCPUs: the agent can no longer answer, but QEMU's monitor still can.
  await guest.qmp.execute("stop");
  const stopped = await guest.stop({ timeoutMs: 1000 });
  assert.equal(stopped.via, "qmp-quit");
  assert.equal(stopped.exit.code, 0);
});

test("QMP pauses and resumes the guest; the agent serves again after", { timeout: 180_000 }, async (t) => {
  const guest = await bootGuest((fn) => t.after(fn));
  const qmp = guest.qmp;
  assert.ok(guest.timeline.qmpReadyMs! > 0);
  const events: string[] = [];
  qmp.on("event", (e) => events.push(e.event));
  await qmp.execute("stop");
  assert.deepEqual(await qmp.execute("query-status"), { status: "paused", singlestep: false, running: false });
  await qmp.execute("cont");
  assert.equal((await qmp.execute<{ status: string }>("query-status")).status, "running");
  assert.equal((await guest.agent!.run(["echo", "awake"])).stdout.toString(), "awake\n");
  assert.deepEqual(events.filter((e) => e === "STOP" || e === "RESUME"), ["STOP", "RESUME"]);
});

test("a boot with both host cores busy does not hang", { timeout: 300_000 }, async (t) => {
  // Busy loops on every core: the case where TSC calibration used to fail and the kernel hung for good.
  const hogs = Array.from({ length: 2 }, () => spawn(process.execPath, ["-e", "for(;;){}"], { stdio: "ignore" }));
  t.after(() => {
    for (const h of hogs) h.kill("SIGKILL");
  });
  for (let i = 0; i < 2; i++) {
    const guest = await bootGuest((fn) => t.after(fn), { helloTimeoutMs: 90000 });
    await withConsole(guest, async () => {
      const r = await guest.agent!.run(["cat", "/proc/cmdline"]);
      assert.match(r.stdout.toString(), /tsc_early_khz=\d+ /);
    });
    await guest.kill();
  }
});

test("a root disk without anything of mvm in it is switched into, with init still PID 1", { timeout: 180_000 }, async (t) => {
  const dir = await mkdtemp(join(tmpdir(), "mvm-rootfs-"));
  t.after(() => rm(dir, { recursive: true, force: true }));
  // A minimal root filesystem: busybox and a marker, made from the initramfs minus mvm's own files.
  const tree = join(dir, "tree");
  await mkdir(tree);
  const art = await guestArtifacts();
  execFileSync("sh", ["-c", `cpio -id --quiet < '${art.initramfs.path}'`], { cwd: tree });
  await rm(join(tree, "init"));
  await rm(join(tree, "sbin", "mvm-agent"));
  await writeFile(join(tree, "etc", "marker"), "from the disk\n");
  const image = join(dir, "root.ext4");
  execFileSync("mkfs.ext4", ["-q", "-F", "-d", tree, image, "32M"]);

  const guest = await bootGuest((fn) => t.after(fn), {
    config: { root: { device: "/dev/vda" } },
    extraArgs: ["-drive", `if=none,id=root,format=raw,file=${image.replaceAll(",", ",,")}`, "-device", "virtio-blk-device,drive=root"],
  });
  await withConsole(guest, async () => {
    const r = await guest.agent!.run(["sh", "-c", "cat /etc/marker; cat /proc/1/cmdline | tr '\\0' ' '; echo; grep ' / ' /proc/mounts; ls /init 2>&1"]);
    const [marker, cmdline, mount, init] = r.stdout.toString().split("\n");
    assert.equal(marker, "from the disk");
    assert.equal(cmdline, "/run/mvm/init --stage2 ");
    assert.match(mount ?? "", /^\/dev\/vda \/ ext4 rw/);
    assert.match(init ?? "", /No such file/);
  });
  // Writes land on the disk, and power-off unmounts it cleanly.
  await guest.agent!.run(["sh", "-c", "echo written > /etc/written"]);
  assert.equal((await guest.stop({ timeoutMs: 20000 })).exit.code, 0);
  const fsck = execFileSync("sh", ["-c", `e2fsck -fn '${image}' >/dev/null 2>&1; echo $?; debugfs -R 'cat /etc/written' '${image}' 2>/dev/null`]).toString();
  assert.equal(fsck, "0\nwritten\n");
});

test("a root disk that is missing fails the boot with init's reason, and QEMU is gone", { timeout: 180_000 }, async () => {
  const art = await guestArtifacts();
  await assert.rejects(launchGuest({ artifacts: art, config: { root: { device: "/dev/vdz" } }, helloTimeoutMs: 60000 }), (e: unknown) => {
    assert.ok(e instanceof BootError, String(e));
    assert.match(String(e.details.consoleTail), /mvm-init: fatal: cannot mount root disk \/dev\/vdz/);
    return true;
  });
});

test("QEMU refusing its argv is a BootError carrying QEMU's message", { timeout: 60_000 }, async () => {
  const art = await guestArtifacts();
  await assert.rejects(launchGuest({ artifacts: art, extraArgs: ["-device", "no-such-device"] }), (e: unknown) => {
    assert.ok(e instanceof BootError);
    assert.match(String(e.details.qemuStderr), /no-such-device/);
    return true;
  });
});

test("a guest whose agent never answers times out and is killed", { timeout: 60_000 }, async () => {
  const art = await guestArtifacts();
  // "sleep 3600" as PID 1 instead of mvm-init (the kernel passes the bare word on as its argument).
  const started = Date.now();
  await assert.rejects(launchGuest({ artifacts: art, append: "rdinit=/bin/sleep 3600", helloTimeoutMs: 3000 }), /did not become ready within 3000 ms/);
  assert.ok(Date.now() - started < 20000);
});

test("no QEMU process is left", { timeout: 30_000 }, () => {
  // This run's QEMUs: their sockets live under its temporary folder (scripts/test-integration gives each run one).
  const left = execFileSync("sh", ["-c", `pgrep -f '[q]emu-system.*${tmpdir()}/mvm-' || true`]).toString().trim();
  if (left) for (const pid of left.split("\n")) assertGone(Number(pid));
});
