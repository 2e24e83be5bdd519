// Disk images: import, copy-on-write overlays, growing, removal rules, and a real Debian built with
// debootstrap, all booted under TCG.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { execFileSync } from "node:child_process";
import { mkdir, readFile, rm, truncate, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { guestArtifacts } from "../support/guests.js";
import { startTestDaemon, type TestDaemon } from "../support/daemon.js";

/** A busybox root filesystem (the initramfs minus mvm's own files) as a folder. */
async function busyboxTree(dir: string): Promise<string> {
  const tree = join(dir, "tree");
  await mkdir(tree, { recursive: true });
  execFileSync("sh", ["-c", `cpio -id --quiet < '${(await guestArtifacts()).initramfs.path}'`], { cwd: tree });
  await rm(join(tree, "init"));
  await rm(join(tree, "sbin", "mvm-agent"));
  await writeFile(join(tree, "etc", "marker"), "from the image\n");
  return tree;
}

const sha256 = async (path: string) => createHash("sha256").update(await readFile(path)).digest("hex");
const out = async (d: TestDaemon, vm: string, script: string) => {
  let s = "";
  const r = await d.client.exec(vm, ["sh", "-c", script], { onStdout: (b) => (s += b.toString()) });
  assert.equal(r.status, 0, `${script} -> ${r.status}`);
  return s;
};

test("an imported image boots; each VM writes to its own overlay; writes survive stop/start; the base never changes", { timeout: 300_000 }, async (t) => {
  const d = await startTestDaemon(t);
  const tree = await busyboxTree(d.home);
  const ext4 = join(d.home, "root.ext4");
  execFileSync("mkfs.ext4", ["-q", "-F", "-d", tree, ext4, "64M"]);
  const image = await d.client.importImage(ext4, "bb");
  const baseSum = await sha256(image.path);
  assert.deepEqual((await d.client.images()).map((i) => i.name), ["bb"]);

  await d.client.start((await d.client.create({ name: "one", image: "bb" })).id);
  await d.client.start((await d.client.create({ name: "two", image: "bb", diskSize: "256M" })).id);
  assert.equal(await out(d, "one", "cat /etc/marker; grep ' / ' /proc/mounts | cut -d' ' -f1-3"), "from the image\n/dev/vda / ext4\n");
  await out(d, "one", "echo mine > /root/one.txt; sync");
  assert.equal(await out(d, "two", "cat /root/one.txt 2>/dev/null || echo absent"), "absent\n", "VMs from one image do not see each other's writes");
  const size = Number(await out(d, "two", "df -m / | tail -1 | awk '{print $2}'"));
  assert.ok(size > 200 && size <= 256, `the grown root is ${size} MiB`);

  await d.client.stop("one");
  await d.client.start("one");
  assert.equal(await out(d, "one", "cat /root/one.txt"), "mine\n", "a VM's writes survive stop and start");

  const inUse = await d.cli(["image", "rm", "bb"]);
  assert.equal(inUse.code, 125);
  assert.match(inUse.stderr, /used by one, two/);
  await d.client.remove("one", { force: true });
  await d.client.remove("two", { force: true });
  assert.equal(await sha256(image.path), baseSum, "the base image is unchanged");
  assert.equal((await d.cli(["image", "rm", "bb"])).code, 0);
  assert.deepEqual(await d.client.images(), []);
});

test("tarball imports boot; bad images are refused and nothing is registered", { timeout: 300_000 }, async (t) => {
  const d = await startTestDaemon(t);
  const tree = await busyboxTree(d.home);
  const tarball = join(d.home, "rootfs.tar");
  execFileSync("tar", ["-cf", tarball, "-C", tree, "."]);
  assert.equal((await d.cli(["image", "import", tarball, "--name", "from-tar"])).code, 0);
  const r = await d.cli(["run", "--rm", "--image", "from-tar", "--", "cat", "/etc/marker"]);
  assert.equal(r.stdout, "from the image\n", r.stderr);

  const junk = join(d.home, "junk.img");
  await writeFile(junk, Buffer.alloc(4096, 7));
  const notFs = await d.cli(["image", "import", junk, "--name", "junk"]);
  assert.equal(notFs.code, 125);
  assert.match(notFs.stderr, /not a disk image mvm can boot/);

  const qcow = join(d.home, "cut.qcow2");
  execFileSync("qemu-img", ["create", "-q", "-f", "qcow2", qcow, "64M"]);
  execFileSync("qemu-img", ["convert", "-q", "-O", "qcow2", join(d.home, "rootfs.tar"), qcow]);
  await truncate(qcow, 100 * 1024);
  const cut = await d.cli(["image", "import", qcow, "--name", "cut"]);
  assert.equal(cut.code, 125);
  assert.match(cut.stderr, /damaged qcow2|failed/);

  const unknown = await d.cli(["run", "--rm", "--image", "nosuch", "--", "true"]);
  assert.equal(unknown.code, 125);
  assert.match(unknown.stderr, /no image named nosuch/);
  assert.deepEqual((await d.client.images()).map((i) => i.name), ["from-tar"]);
  assert.deepEqual(await d.client.list(), []);
});

test("a Debian image built with debootstrap boots from disk and runs a command", { skip: process.getuid?.() !== 0 ? "needs root" : false, timeout: 900_000 }, async (t) => {
  const d = await startTestDaemon(t);
  const r = await d.cli(["run", "--rm", "--image", "debian", "--", "sh", "-c", "cat /etc/debian_version; readlink /proc/1/exe"]);
  assert.equal(r.code, 0, r.stderr.slice(-2000));
  assert.match(r.stdout, /^12\.\d+\n\/run\/mvm\/init\n$/);
  assert.match(r.stderr, /image: /, "the build showed its progress");
});
