// Instant start on real guests under TCG: clones of a memory template are distinct machines with their
// own disks, the warm pool serves first starts, snapshots restore what was written, a suspended VM comes
// back with its processes running (across a daemon restart), and every fallback boots cold with a reason.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdir, readFile, truncate, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { cacheDir } from "../../src/host/paths.js";
import { guestArtifacts } from "../support/guests.js";
import { killDaemon, qemuPidsOf, startTestDaemon, type TestDaemon } from "../support/daemon.js";

const out = async (d: TestDaemon, vm: string, script: string): Promise<string> => {
  let s = "";
  const r = await d.client.exec(vm, ["sh", "-c", script], { onStdout: (b) => (s += b.toString()) });
  assert.equal(r.status, 0, `${script} -> ${r.status}`);
  return s.trim();
};

const templateDir = (key: string) => join(cacheDir(), "templates", key);

test("clones are distinct machines: own hostname, entropy, environment, and a true clock after the template sat 20 s", { timeout: 240_000 }, async (t) => {
  const d = await startTestDaemon(t);
  const a = await d.client.start((await d.client.create({ name: "clone-a", env: { WHO: "a" } })).id);
  assert.ok(a.boot && ["clone", "pool"].includes(a.boot.how), `started as ${JSON.stringify(a.boot)}`);
  const key = a.boot.template!;
  // The template must have sat for 20 s: its guest clock stood still all that time.
  const builtAt = Date.parse((JSON.parse(await readFile(join(templateDir(key), "meta.json"), "utf8")) as { builtAt: string }).builtAt);
  const wait = builtAt + 20_000 - Date.now();
  if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  const b = await d.client.start((await d.client.create({ name: "clone-b", env: { WHO: "b" } })).id);
  assert.equal(b.boot?.template, key, "the same template serves both");
  assert.equal(await out(d, "clone-a", "hostname; echo $WHO"), "clone-a\na");
  assert.equal(await out(d, "clone-b", "hostname; echo $WHO"), "clone-b\nb");
  const bytes = async (vm: string) => out(d, vm, "head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \\n'");
  assert.notEqual(await bytes("clone-a"), await bytes("clone-b"), "two clones' random bytes differ");
  // busybox's date has whole seconds: the guest's must lie within the host's before and after, ±1 s.
  const before = Date.now() / 1000;
  const guest = Number(await out(d, "clone-b", "date +%s"));
  const after = Date.now() / 1000;
  assert.ok(guest >= Math.floor(before) - 1 && guest <= Math.ceil(after) + 1, `guest clock ${guest} vs host ${before}..${after}`);
  const sleep = Date.now();
  await out(d, "clone-b", "sleep 2");
  assert.ok(Date.now() - sleep >= 1900, "the clone's timers run at the host's pace");
  // A cold boot on request, with the reason recorded.
  const cold = await d.client.start((await d.client.create({ name: "cold", boot: "cold" })).id);
  assert.deepEqual([cold.boot?.how, cold.boot?.reason], ["cold", "asked for (boot: cold)"]);
});

test("image clones: each has its own disk (a pool take too), the template's disk never changes, and a second start boots cold", { timeout: 300_000 }, async (t) => {
  const d = await startTestDaemon(t);
  const work = join(d.home, "work");
  const tree = join(work, "tree");
  await mkdir(tree, { recursive: true });
  execFileSync("sh", ["-c", `cpio -id --quiet < '${(await guestArtifacts()).initramfs.path}' && rm init sbin/mvm-agent`], { cwd: tree });
  await writeFile(join(tree, "etc", "marker"), "from the image\n");
  const ext4 = join(work, "root.ext4");
  execFileSync("mkfs.ext4", ["-q", "-d", tree, ext4, "64M"]);
  await d.client.importImage(ext4, "tiny");
  const one = await d.client.start((await d.client.create({ name: "one", image: "tiny" })).id);
  assert.ok(one.boot && one.boot.how !== "cold", `first start: ${JSON.stringify(one.boot)}`);
  const disk = join(templateDir(one.boot.template!), "disk.qcow2");
  const sum = createHash("sha256").update(await readFile(disk)).digest("hex");
  await d.client.start((await d.client.create({ name: "two", image: "tiny" })).id);
  const running = qemuPidsOf(d.home).length; // one and two (with their jails' processes), before the refill (300 ms on)
  await out(d, "one", "echo mine > /root/one.txt; sync");
  assert.equal(await out(d, "two", "cat /etc/marker; cat /root/one.txt 2>/dev/null || echo absent"), "from the image\nabsent");
  // The pool refills from the plan of the VM just started ("two"): the parked QEMU must still get a disk of
  // its own (it once opened two's, and failed on its lock at the take, or ran on another VM's disk).
  for (const end = Date.now() + 15_000; qemuPidsOf(d.home).length <= running && Date.now() < end; ) await new Promise((r) => setTimeout(r, 100));
  await new Promise((r) => setTimeout(r, 1500)); // the parked QEMU answers its monitor, and joins the pool
  const three = await d.client.start((await d.client.create({ name: "three", image: "tiny" })).id);
  assert.equal(three.boot?.how, "pool", JSON.stringify(three.boot));
  await out(d, "three", "echo third > /root/three.txt; sync");
  assert.equal(await out(d, "two", "cat /root/three.txt 2>/dev/null || echo absent"), "absent");
  assert.equal(await out(d, "three", "cat /etc/marker; cat /root/one.txt 2>/dev/null || echo absent"), "from the image\nabsent");
  await d.client.stop("one");
  const again = await d.client.start("one");
  assert.equal(again.boot?.how, "cold");
  assert.match(again.boot?.reason ?? "", /disk has run a guest/);
  assert.equal(await out(d, "one", "cat /root/one.txt"), "mine", "the clone's disk is its own and kept");
  assert.equal(createHash("sha256").update(await readFile(disk)).digest("hex"), sum, "clones never write the template's disk");
});

test("the warm pool serves first starts and is refilled; nothing is left after rm and daemon stop", { timeout: 240_000 }, async (t) => {
  const d = await startTestDaemon(t);
  await d.client.start((await d.client.create({ name: "warm-0", network: "user" })).id);
  const hows: string[] = [];
  for (let i = 1; i <= 3; i++) {
    // Time for the background refill (a parked QEMU is up within a second).
    await new Promise((r) => setTimeout(r, 2500));
    const port = 20000 + ((process.pid * 7 + i) % 20000);
    const vm = await d.client.start((await d.client.create({ name: `warm-${i}`, network: "user", ports: i === 2 ? [`127.0.0.1:${port}:80`] : [] })).id);
    hows.push(vm.boot!.how);
    assert.equal(await out(d, vm.name, "hostname"), vm.name);
    if (i === 2) {
      // A port published on a taken QEMU (through its monitor) reaches the guest.
      await out(d, vm.name, "(printf 'HTTP/1.0 200 OK\r\n\r\nfrom-the-guest' | nc -l -p 80 >/dev/null 2>&1 &); sleep 0.3");
      assert.equal(await (await fetch(`http://127.0.0.1:${port}/`)).text(), "from-the-guest");
    }
  }
  assert.deepEqual(hows, ["pool", "pool", "pool"]);
  for (const vm of await d.client.list()) await d.client.remove(vm.id, { force: true });
  // Only parked QEMUs are left, and they end with the daemon.
  assert.ok(qemuPidsOf(d.home).length > 0, "the pool keeps parked QEMUs");
  process.kill((await d.client.info()).pid, "SIGTERM");
  for (let i = 0; i < 100 && qemuPidsOf(d.home).length > 0; i++) await new Promise((r) => setTimeout(r, 50));
  assert.deepEqual(qemuPidsOf(d.home), [], "parked QEMUs end with the daemon");
});

test("snapshot: the VM runs on, a restored VM has what was written, and bad requests change nothing", { timeout: 240_000 }, async (t) => {
  const d = await startTestDaemon(t);
  await d.client.start((await d.client.create({ name: "src" })).id);
  await out(d, "src", "echo before > /root/kept");
  const snap = await d.client.createSnapshot("src", { name: "snap1" });
  assert.equal(snap.name, "snap1");
  assert.equal(await out(d, "src", "cat /root/kept; echo after > /root/kept; cat /root/kept"), "before\nafter", "the source runs on");
  await assert.rejects(d.client.createSnapshot("src", { name: "snap1" }), (e: Error & { code?: string }) => e.code === "NAME_TAKEN");
  await d.client.create({ name: "idle" });
  await assert.rejects(d.client.createSnapshot("idle", { name: "x" }), (e: Error & { code?: string }) => e.code === "WRONG_STATE");
  await assert.rejects(d.client.create({ snapshot: "nope" }), (e: Error & { code?: string }) => e.code === "NOT_FOUND");
  await assert.rejects(d.client.create({ snapshot: "snap1", memory: "1G" }), (e: Error & { code?: string }) => e.code === "INVALID_SPEC");
  assert.deepEqual((await d.client.snapshots()).map((s) => s.name), ["snap1"]);
  const r = await d.client.start((await d.client.create({ name: "restored", snapshot: "snap1" })).id);
  assert.equal(r.boot?.how, "snapshot");
  assert.equal(await out(d, "restored", "cat /root/kept; hostname"), "before\nrestored");
  // A snapshot of another QEMU build is refused, naming both.
  const meta = join(d.home, "snapshots", "snap1", "meta.json");
  const m = JSON.parse(await readFile(meta, "utf8")) as { qemuBuild: { sha256: string; version: string } };
  await writeFile(meta, JSON.stringify({ ...m, qemuBuild: { sha256: "0".repeat(64), version: "6.0.0" } }));
  const other = await d.client.create({ name: "other", snapshot: "snap1" });
  await assert.rejects(d.client.start(other.id), (e: Error & { code?: string }) => e.code === "QEMU_BUILD_MISMATCH" && /6\.0\.0/.test(e.message) && /7\.2/.test(e.message));
  await d.client.removeSnapshot("snap1");
  assert.deepEqual(await d.client.snapshots(), []);
});

test("suspend, daemon restart, resume: processes keep running; stop discards the state", { timeout: 240_000 }, async (t) => {
  const d = await startTestDaemon(t);
  // The VM's own command counts: it must still be the VM's command after the resume.
  await d.client.start((await d.client.create({ name: "sleeper", command: ["sh", "-c", "i=0; while :; do i=$((i+1)); echo $i > /tmp/count; sleep 0.1; done"] })).id);
  await new Promise((r) => setTimeout(r, 500));
  const before = Number(await out(d, "sleeper", "cat /tmp/count"));
  const s = await d.client.suspend("sleeper");
  assert.equal(s.state, "suspended");
  assert.deepEqual(qemuPidsOf(d.home).filter((p) => p === s.pid), []);
  await killDaemon(d);
  const c2 = await d.restart();
  assert.equal((await c2.get("sleeper")).state, "suspended", "a suspended VM stays suspended across a daemon restart");
  const r = await c2.resume("sleeper");
  assert.deepEqual([r.state, r.boot?.how], ["running", "resume"]);
  let seen = "";
  await c2.exec("sleeper", ["sh", "-c", "cat /tmp/count; sleep 1; cat /tmp/count"], { onStdout: (b) => (seen += b.toString()) });
  const [n1, n2] = seen.trim().split("\n").map(Number);
  assert.ok(n1! >= before && n2! > n1!, `the counter went on: ${before} -> ${n1} -> ${n2}`);
  assert.equal((await c2.get("sleeper")).commandExit, undefined, "the VM's command is still running, and still its command");
  await c2.suspend("sleeper");
  const stopped = await c2.stop("sleeper");
  assert.equal(stopped.state, "stopped");
  assert.equal(stopped.suspended, undefined);
});

test("fallbacks: a damaged template boots cold with the reason and is rebuilt", { timeout: 240_000 }, async (t) => {
  const d = await startTestDaemon(t);
  // A memory size no other test uses: this test's own template.
  const first = await d.client.start((await d.client.create({ name: "f1", memory: "200M" })).id);
  const key = first.boot!.template!;
  await truncate(join(templateDir(key), "state"), 100);
  const second = await d.client.start((await d.client.create({ name: "f2", memory: "200M" })).id);
  assert.equal(second.boot?.how, "cold");
  assert.match(second.boot?.reason ?? "", /template failed/);
  assert.equal(await out(d, "f2", "hostname"), "f2");
  const third = await d.client.start((await d.client.create({ name: "f3", memory: "200M" })).id);
  assert.equal(third.boot?.how, "clone", "the template was rebuilt");
  assert.match(third.boot?.reason ?? "", /built for this start/);
});
