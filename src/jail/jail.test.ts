import assert from "node:assert/strict";
import { chownSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { cgroupLimits, decideJail, prepareJail, type JailHost, type JailInput } from "./jail.js";

const none = { mode: "none" as const, reason: "test", parents: {} };
const flat: JailHost = { enabled: true, reason: "", cgroups: none, namespaces: false };
const root = process.getuid?.() === 0;

function input(dir: string, o: Partial<JailInput> = {}): JailInput {
  return { label: "mvm-a", memoryMiB: 256, cpus: 1, dir, binary: "/usr/bin/qemu-system-x86_64", accel: "tcg", network: "none", volumes: [], files: [], sockets: [], ...o };
}

function withDir(fn: (dir: string) => void): void {
  const dir = mkdtempSync(join(tmpdir(), "mvm-jail-"));
  try {
    fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test("the jail is on for root only, and MVM_JAIL=0 turns it off", () => {
  assert.equal(decideJail({}, 1000).enabled, false);
  assert.match(decideJail({}, 1000).reason, /not run as root/);
  assert.equal(decideJail({ MVM_JAIL: "0" }, 0).enabled, false);
  assert.equal(prepareJail({ ...flat, enabled: false }, input("/nowhere")), undefined);
});

test("without namespaces: sh, prlimit and setpriv into QEMU, no capabilities, a clean environment", () => {
  const j = prepareJail(flat, input("/nowhere"))!;
  assert.deepEqual(j.prefix.slice(0, 2), ["/bin/sh", "-c"]);
  assert.ok(j.prefix.includes("/usr/bin/prlimit") && j.prefix.includes("/usr/bin/setpriv"));
  assert.ok(!j.prefix.includes("/usr/bin/bwrap"));
  assert.ok(j.prefix.includes("--no-new-privs") && j.prefix.includes("--bounding-set=-all") && j.prefix.includes("--core=0:0"));
  assert.equal(j.prefix.at(-1), "--", "QEMU's binary and argv follow");
  assert.deepEqual(j.env, { PATH: "/usr/sbin:/usr/bin:/sbin:/bin" });
  assert.deepEqual(j.capabilities, []);
  assert.equal(j.forks, false, "QEMU is the spawned process itself");
  const shares = prepareJail(flat, input("/nowhere", { volumes: [{ hostPath: "/srv", readOnly: false }] }))!;
  assert.deepEqual(shares.capabilities, ["dac_override", "dac_read_search", "fowner", "chown", "fsetid"]);
});

test("with namespaces: bwrap then setpriv to a uid of the range, the VM's paths bound, its files made QEMU's", { skip: !root && "chown needs root" }, () => {
  withDir((dir) => {
    const claims = join(dir, "claims");
    const host: JailHost = { ...flat, namespaces: true, ids: { base: 0x7a000000, dir: claims }, managed: [join(dir, "cache")] };
    const vm = join(dir, "vm");
    const cache = join(dir, "cache");
    for (const d of [vm, cache]) mkdirSync(d);
    writeFileSync(join(cache, "vmlinux"), "k", { mode: 0o600 });
    writeFileSync(join(vm, "root.qcow2"), "", { mode: 0o600 });
    writeFileSync(join(vm, "agent.sock"), "");
    const j = prepareJail(host, input(vm, { files: [{ path: join(cache, "vmlinux"), want: "r" }, { path: join(vm, "root.qcow2"), want: "rw" }], sockets: [join(vm, "agent.sock")], consoleLog: join(vm, "console.log") }))!;
    const uid = j.record.uid;
    assert.equal(j.record.mode, "uid");
    assert.ok(uid > 0x7a000000 && uid <= 0x7a000000 + 65535, `${uid} in the range`);
    assert.deepEqual(j.record.groups, [0x7a000000], "the shared group");
    const bwrapAt = j.prefix.indexOf("/usr/bin/bwrap");
    const setprivAt = j.prefix.indexOf("/usr/bin/setpriv");
    assert.ok(bwrapAt > 0 && setprivAt > bwrapAt, "bwrap, then setpriv inside it");
    assert.ok(j.prefix.includes(`--reuid=${uid}`) && j.prefix.includes(`--regid=${uid}`) && j.prefix.includes(`--groups=${0x7a000000}`));
    assert.ok(j.prefix.includes("--unshare-net"), "a VM without a network gets a network namespace");
    assert.equal(j.forks, true);
    const bound = (p: string) => j.prefix.some((a, i) => (a === "--bind" || a === "--ro-bind") && j.prefix[i + 1] === p);
    assert.ok(bound(vm) && bound(join(cache, "vmlinux")));
    j.setUp();
    assert.equal(statSync(vm).gid, uid);
    assert.equal(statSync(vm).mode & 0o777, 0o750);
    assert.equal(statSync(join(vm, "root.qcow2")).uid, uid, "the overlay is QEMU's");
    assert.equal(statSync(join(vm, "console.log")).uid, uid, "made in advance, QEMU's");
    assert.equal(statSync(join(vm, "agent.sock")).gid, uid);
    assert.equal(statSync(join(vm, "xfer")).uid, uid, "where it drops saved states");
    const k = statSync(join(cache, "vmlinux"));
    assert.equal(k.gid, 0x7a000000, "mvm's kernel: readable by the shared group");
    assert.equal(k.mode & 0o040, 0o040);
    assert.equal((JSON.parse(readFileSync(join(vm, "jail.json"), "utf8")) as { uid: number }).uid, uid);
    // A second VM gets another uid; a user's file it cannot read puts it in root mode, with the reason.
    const theirs = join(dir, "theirs.img");
    writeFileSync(theirs, "", { mode: 0o600 });
    chownSync(theirs, 1000, 1000);
    const other = prepareJail(host, input(vm, { label: "mvm-b", network: "user", files: [{ path: theirs, want: "rw" }] }))!;
    assert.equal(other.record.mode, "root");
    assert.match(other.record.reason ?? "", /theirs\.img/);
    assert.deepEqual(other.capabilities.length, 5, "another user's file: the file capabilities");
    assert.ok(!other.prefix.includes("--unshare-net"), "user networking stays in the host's network namespace");
    j.cleanup();
    other.cleanup();
  });
});

test("limits: guest RAM plus headroom, threads, a core per vCPU and one for QEMU", () => {
  assert.deepEqual(cgroupLimits({ memoryMiB: 256, cpus: 1 }), { memoryBytes: 512 * 1048576, pids: 130, cpuQuotaUs: 200000 });
  assert.equal(cgroupLimits({ memoryMiB: 4096, cpus: 4 }).memoryBytes, (4096 + 1024) * 1048576, "a quarter of a large guest");
});
