// The jail every QEMU of a root daemon starts in, asserted from outside on real guests: /proc/<pid>/status,
// its control group's files, its environment and rlimits; a clone of a template is jailed alike; a VM with
// a shared folder keeps only the file capabilities; a QEMU that ends takes its control group with it.
import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync, readlinkSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { cgroupDirs } from "../support/host-state.js";
import { FILE_CAPS } from "../../src/jail/jail.js";
import { startTestDaemon, waitGone } from "../support/daemon.js";

const root = process.getuid?.() === 0;
const field = (status: string, name: string) => new RegExp(`^${name}:\\s+(.+)$`, "m").exec(status)?.[1]?.trim();
// Capability numbers (linux/capability.h) of FILE_CAPS: chown 0, dac_override 1, dac_read_search 2, fowner 3, fsetid 4.
const FILE_CAPS_HEX = "000000000000001f";


test("a root daemon's QEMU: no_new_privs, seccomp, no capabilities, its own control group with limits, a clean environment", { timeout: 240_000, skip: !root && "needs root" }, async (t) => {
  const d = await startTestDaemon(t);
  const c = d.client;
  for (const name of ["cold-one", "cloned"]) {
    const vm = await c.create({ name, memory: "192M", cpus: 2 });
    const rec = await c.start(vm.id);
    const pid = rec.pid!;
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    assert.equal(field(status, "NoNewPrivs"), "1", name);
    assert.equal(field(status, "Seccomp"), "2", `${name}: QEMU's -sandbox filter`);
    assert.ok(Number(field(status, "Seccomp_filters")) >= 2, `${name}: and mvm's against new user namespaces beneath it`);
    assert.equal(field(status, "CapEff"), "0000000000000000", name);
    assert.equal(field(status, "CapBnd"), "0000000000000000", `${name}: nothing to regain through exec either`);
    assert.deepEqual(readFileSync(`/proc/${pid}/environ`, "utf8").split("\0").filter(Boolean).filter((e) => !e.startsWith("PWD=")), ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"]);
    const limits = readFileSync(`/proc/${pid}/limits`, "utf8");
    assert.match(limits, /Max core file size\s+0\s+0/);
    assert.match(limits, /Max open files\s+4096\s+4096/);
    const dirs = cgroupDirs(pid);
    assert.ok(dirs.length > 0, "QEMU is in an mvm control group");
    const read = (f: string) => dirs.map((dir) => join(dir, f)).filter(existsSync).map((p) => readFileSync(p, "utf8").trim())[0];
    assert.equal(Number(read("memory.max") ?? read("memory.limit_in_bytes")), (192 + 256) * 1024 * 1024, "guest RAM + 256 MiB");
    assert.equal(read("pids.max"), "132");
    assert.match(read("cpu.max") ?? read("cpu.cfs_quota_us") ?? "", /^300000\b/, "3 cores: 2 vCPUs and QEMU's own threads");
    // Its own uid from mvm's range, in namespaces of its own, seeing a root that holds only its paths.
    const uid = Number(field(status, "Uid")!.split(/\s+/)[0]);
    assert.ok(uid > 0x7a000000 && uid <= 0x7a00ffff, `${name}: uid ${uid} is one of mvm's range`);
    assert.match(field(status, "NSpid") ?? "", /^\d+\s+1$/, `${name}: QEMU is PID 1 of a PID namespace of its own`);
    for (const ns of ["mnt", "pid", "ipc", "uts", "net"]) assert.notEqual(readlinkSync(`/proc/${pid}/ns/${ns}`), readlinkSync(`/proc/self/ns/${ns}`), `${name}: ${ns} namespace`);
    const top = readdirSync(`/proc/${pid}/root`).sort();
    assert.ok(!top.includes("etc") && !top.includes("root") && !top.includes("home"), `${name}: no host /etc, /root or /home in its root: ${top.join(" ")}`);
    assert.deepEqual(readdirSync(`/proc/${pid}/root/proc/1/root/dev`).filter((n) => n === "kvm" || n === "net" || n === "sda" || n === "mem").sort(), [], `${name}: TCG without a network: no /dev/kvm, no tun, no disks or memory`);
    assert.equal(existsSync(`/proc/${pid}/root${d.home}/mvm.db`), false, `${name}: the daemon's database is not in its view`);
    // A pool QEMU still sees its directory where it was parked (the host renamed it when the VM took it).
    const seen = (JSON.parse(readFileSync(join(d.home, "vms", rec.id, "jail.json"), "utf8")) as { dir: string }).dir;
    assert.equal(existsSync(`/proc/${pid}/root${seen}/agent.sock`), true, `${name}: its own sockets are`);
    const view = await c.get(vm.id);
    assert.equal(view.jail?.enabled, true);
    assert.equal(view.jail?.mode, "uid");
    assert.equal(view.jail?.uid, uid);
    assert.deepEqual(view.jail?.namespaces?.filter((n) => ["mnt", "pid", "ipc", "uts", "net"].includes(n)).sort(), ["ipc", "mnt", "net", "pid", "uts"]);
    assert.equal(view.jail?.seccomp, 2);
    assert.equal(view.jail?.cgroup?.pids, 132);
    let out = "";
    assert.equal((await c.exec(vm.id, ["echo", "jailed"], { onStdout: (b) => (out += b.toString()) })).status, 0);
    assert.equal(out, "jailed\n");
    if (name === "cloned") assert.equal(rec.boot?.how === "clone" || rec.boot?.how === "pool", true, `a jailed clone works: ${JSON.stringify(rec.boot)}`);
    await c.kill(vm.id);
    assert.deepEqual(await waitGone([pid]), []);
    // The exit is noticed, then the group removed.
    for (let i = 0; i < 50 && dirs.some(existsSync); i++) await new Promise((r) => setTimeout(r, 100));
    assert.deepEqual(dirs.filter(existsSync), [], "the control group went with QEMU");
  }
});

test("a VM with a shared folder keeps the file capabilities only, and its files work", { timeout: 180_000, skip: !root && "needs root" }, async (t) => {
  const d = await startTestDaemon(t);
  const share = await mkdtemp(join(tmpdir(), "mvm-jail-share-"));
  t.after(() => rm(share, { recursive: true, force: true }));
  await writeFile(join(share, "in"), "from the host\n", { mode: 0o600 });
  const vm = await d.client.create({ name: "shares", volumes: [`${share}:/mnt/s`] });
  const rec = await d.client.start(vm.id);
  const status = readFileSync(`/proc/${rec.pid!}/status`, "utf8");
  assert.equal(FILE_CAPS.length, 5);
  assert.equal(field(status, "CapEff"), FILE_CAPS_HEX, "chown, dac_override, dac_read_search, fowner, fsetid and nothing else");
  assert.equal(field(status, "NoNewPrivs"), "1");
  const view = await d.client.get(vm.id);
  assert.equal(view.jail?.mode, "root", "shared folders: QEMU acts on the folder's files with their owners' rights");
  assert.match(view.jail?.reason ?? "", /shares host folders/);
  assert.ok(view.jail?.namespaces?.includes("mnt"), "still in a mount namespace of its own");
  assert.equal(existsSync(`/proc/${rec.pid!}/root${share}/in`), true, "the shared folder is in its view");
  assert.equal(existsSync(`/proc/${rec.pid!}/root/etc/passwd`), false, "the host's /etc is not");
  let out = "";
  const r = await d.client.exec(vm.id, ["sh", "-c", "cat /mnt/s/in && echo back > /mnt/s/out"], { onStdout: (b) => (out += b.toString()) });
  assert.equal(r.status, 0);
  assert.equal(out, "from the host\n");
  assert.equal(readFileSync(join(share, "out"), "utf8"), "back\n");
});
