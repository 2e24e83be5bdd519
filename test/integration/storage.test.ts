// Disks and shared folders, booting real guests under TCG.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { InvalidStorageError, type MvmError } from "../../src/errors.js";
import { launchGuest } from "../../src/vm/launch.js";
import { startTestDaemon } from "../support/daemon.js";
import { guestArtifacts } from "../support/guests.js";

/** A small ext4 image with one file in it, made without loop mounts. */
async function ext4Image(dir: string, name: string, content: string): Promise<string> {
  const tree = join(dir, `${name}.tree`);
  await mkdir(tree, { recursive: true });
  await writeFile(join(tree, "hello.txt"), content);
  const image = join(dir, `${name}.ext4`);
  execFileSync("mkfs.ext4", ["-q", "-F", "-d", tree, image, "16M"]);
  return image;
}

test("disks: raw and qcow2, in order, writes kept, read-only enforced; commas in paths inject nothing", { timeout: 180_000 }, async (t) => {
  const d = await startTestDaemon(t);
  const raw = await ext4Image(d.home, "data,evil=1", "raw disk\n");
  const base = await ext4Image(d.home, "base", "qcow2 disk\n");
  const qcow = join(d.home, "q.qcow2");
  execFileSync("qemu-img", ["convert", "-q", "-O", "qcow2", base, qcow]);
  await d.client.start((await d.client.create({ name: "disks", disks: [raw, `${qcow}:ro`] })).id);
  let out = "";
  let err = "";
  await d.client.exec("disks", ["sh", "-c", "mkdir -p /a /b && mount /dev/vda /a && mount -o ro /dev/vdb /b && cat /a/hello.txt /b/hello.txt && echo written > /a/new.txt && umount /a && (mount -o remount,rw /b 2>/dev/null || echo vdb-ro)"], {
    onStdout: (b) => (out += b.toString()),
    onStderr: (b) => (err += b.toString()),
  });
  assert.equal(out, "raw disk\nqcow2 disk\nvdb-ro\n", err);
  await d.client.stop("disks");
  assert.equal(execFileSync("debugfs", ["-R", "cat /new.txt", raw], { stdio: ["ignore", "pipe", "ignore"] }).toString(), "written\n");
  // A second VM writing the same image is refused with the reason, while the first holds it.
  await d.client.start("disks");
  await d.client.create({ name: "thief", disks: [raw] });
  const thief = await d.cli(["start", "thief"]);
  assert.equal(thief.code, 125);
  assert.match(thief.stderr, /in use by another VM/);
  assert.equal((await d.client.get("disks")).state, "running", "the holder is untouched");
});

test("bad disks and folders are refused before boot, naming the input", { timeout: 180_000 }, async (t) => {
  const d = await startTestDaemon(t);
  const cases: Array<[string[], RegExp]> = [
    [["--disk", "/nonexistent.img"], /cannot use disk \/nonexistent\.img: ENOENT/],
    [["--disk", d.home], /neither a file nor a block device/],
    [["-v", "/nonexistent:/mnt"], /cannot share \/nonexistent: ENOENT/],
    [["-v", `${d.home}:/proc`], /cannot share a folder onto \/proc/],
    [["-v", "relative"], /invalid shared folder/],
  ];
  for (const [flags, why] of cases) {
    const r = await d.cli(["run", "--rm", ...flags, "--", "true"]);
    assert.equal(r.code, 125, flags.join(" "));
    assert.match(r.stderr, why);
  }
  assert.deepEqual(await d.client.list(), []);
});

test("shared folders: visible, writable, and read-only ones cannot be written", { timeout: 180_000 }, async (t) => {
  const d = await startTestDaemon(t);
  const rw = join(d.home, "shared-rw");
  const ro = join(d.home, "shared-ro");
  await mkdir(rw);
  await mkdir(ro);
  await writeFile(join(ro, "from-host.txt"), "host file\n");
  const r = await d.cli(["run", "--rm", "-v", `${rw}:/data`, "-v", `${ro}:/opt/in:ro`, "--", "sh", "-c", "cat /opt/in/from-host.txt; echo from-guest > /data/out.txt; echo x > /opt/in/nope 2>/dev/null || echo refused"]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, "host file\nrefused\n");
  assert.equal(await readFile(join(rw, "out.txt"), "utf8"), "from-guest\n");
});

test("a shared folder's guest path over 511 bytes is refused with a clear message, not cut short", { timeout: 180_000 }, async (t) => {
  const d = await startTestDaemon(t);
  const host = join(d.home, "long");
  await mkdir(host);
  const guestPath = "/" + Array.from({ length: 6 }, (_, i) => String(i).repeat(100)).join("/"); // 606 bytes
  // The spec refuses it before anything is made...
  await assert.rejects(d.client.create({ name: "long", volumes: [`${host}:${guestPath}`] }), (e: unknown) => e instanceof InvalidStorageError && /606 bytes; at most 511/.test(e.message));
  assert.deepEqual(await d.client.list(), []);
  // ...and mvm-init refuses it too, for a configuration that did not come through the spec.
  const err = await launchGuest({ artifacts: await guestArtifacts(), volumes: [{ hostPath: host, readOnly: false }], config: { mounts: [{ tag: "mvm0", path: guestPath, readOnly: false }] } }).then(
    (g) => g.kill().then(() => undefined),
    (e: MvmError) => e,
  );
  assert.ok(err, "the guest must not boot with its shared folder somewhere else");
  assert.match(JSON.stringify({ message: err.message, details: err.details }), /shared folder path \/0{63}\.\.\. is 606 bytes, over the limit of 511/);
});
