import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmdirSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { MemoryInUseError } from "../errors.js";
import { cgroupSupport, createGroup, groupDirs, groupOfProcess, readLimits, readMemoryUsage, removeGroup, setCpuMax, setCpuWeight, setMemoryMax, setUpCgroups, sweepGroups, weightToShares, type CgroupHost } from "./cgroups.js";

// A cgroup filesystem is only files and directories to this module, so a folder stands in for one.
function fakeRoot(layout: Record<string, string>): string {
  const root = mkdtempSync(join(tmpdir(), "mvm-cg-"));
  for (const [path, content] of Object.entries(layout)) {
    mkdirSync(join(root, path, ".."), { recursive: true });
    writeFileSync(join(root, path), content);
  }
  return root;
}

test("v2: the daemon leaves its group for a leaf, controllers are enabled, limits are written in v2's names", () => {
  const root = fakeRoot({ "cgroup.controllers": "cpuset cpu io memory hugetlb pids", "svc/cgroup.procs": "4242\n", "svc/cgroup.subtree_control": "" });
  try {
    const host = setUpCgroups(root, "0::/svc\n", 4242);
    assert.equal(host.mode, "v2");
    assert.equal(readFileSync(join(root, "svc/mvm-daemon/cgroup.procs"), "utf8"), "4242");
    assert.equal(readFileSync(join(root, "svc/cgroup.subtree_control"), "utf8"), "+memory +pids +cpu");
    const procs = createGroup(host, "mvm-abc", { memoryBytes: 1 << 30, pids: 130, cpuQuotaUs: 200000 });
    assert.deepEqual(procs, [join(root, "svc/mvm/mvm-abc/cgroup.procs")]);
    assert.equal(readFileSync(join(root, "svc/mvm/mvm-abc/cpu.max"), "utf8"), "200000 100000");
    assert.equal(readFileSync(join(root, "svc/mvm/mvm-abc/memory.swap.max"), "utf8"), "0");
    assert.deepEqual(readLimits(host, "mvm-abc"), { memoryBytes: 1 << 30, pids: 130, cpuQuotaUs: 200000, path: join(root, "svc/mvm/mvm-abc") });
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test("v1 (a hybrid host whose v2 has no controllers): one group per hierarchy, below the daemon's own", () => {
  const root = fakeRoot({ "unified/cgroup.controllers": "hugetlb", "memory/cgroup.procs": "", "pids/cgroup.procs": "", "cpu/cgroup.procs": "" });
  try {
    const proc = "4:memory:/box/1\n8:pids:/\n1:cpu,cpuacct:/\n0::/\n";
    const host = setUpCgroups(root, proc);
    assert.equal(host.mode, "v1");
    assert.deepEqual(cgroupSupport(root).mode, "v1");
    const procs = createGroup(host, "mvm-x", { memoryBytes: 512 << 20, pids: 130, cpuQuotaUs: 100000 });
    assert.deepEqual(procs.sort(), [join(root, "cpu/mvm/mvm-x/cgroup.procs"), join(root, "memory/box/1/mvm/mvm-x/cgroup.procs"), join(root, "pids/mvm/mvm-x/cgroup.procs")]);
    assert.equal(readFileSync(join(root, "memory/box/1/mvm/mvm-x/memory.limit_in_bytes"), "utf8"), String(512 << 20));
    assert.equal(readFileSync(join(root, "cpu/mvm/mvm-x/cpu.cfs_quota_us"), "utf8"), "100000");
    assert.equal(readLimits(host, "mvm-x")?.pids, 130);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test("no controllers at all: mode none with the reason, and groups are neither made nor expected", () => {
  const root = fakeRoot({ "cgroup.controllers": "hugetlb" });
  try {
    const host = setUpCgroups(root, "0::/\n");
    assert.equal(host.mode, "none");
    assert.match(host.reason, /memory, pids, cpu/);
    assert.deepEqual(createGroup(host, "mvm-y", { memoryBytes: 1, pids: 1, cpuQuotaUs: 1 }), []);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test("names are plain; the sweep removes old empty groups only", () => {
  const host = { mode: "v2" as const, reason: "", parents: { memory: "/x", pids: "/x", cpu: "/x" } };
  assert.throws(() => groupDirs(host, "../etc"), RangeError);
  assert.throws(() => groupDirs(host, "a/b"), RangeError);
  // A real cgroup directory can be removed with its files in it; here an old empty one stands for that.
  const root = fakeRoot({ "mvm/busy/cgroup.procs": "77\n" });
  try {
    for (const g of ["old", "young"]) mkdirSync(join(root, "mvm", g));
    const h = { mode: "v2" as const, reason: "", parents: { memory: join(root, "mvm"), pids: join(root, "mvm"), cpu: join(root, "mvm") } };
    const old = new Date(Date.now() - 120_000);
    for (const g of ["old", "busy"]) utimesSync(join(root, "mvm", g), old, old);
    assert.deepEqual(sweepGroups(h), ["old"], "busy has a process; young may be another daemon's, just made");
    assert.equal(removeGroup(h, "busy"), false, "a group that cannot be removed is reported");
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test("v2: a user's cpuShare, cpuMax and memoryMax replace the jail's values in the group's own files; undefined puts the default back", () => {
  const root = fakeRoot({ "cgroup.controllers": "cpu memory pids", "cgroup.subtree_control": "", "cgroup.procs": "" });
  try {
    const host = setUpCgroups(root, "0::/\n");
    assert.equal(host.mode, "v2");
    createGroup(host, "mvm-v2", { memoryBytes: 512 << 20, pids: 130, cpuQuotaUs: 200000 });
    const file = (f: string) => readFileSync(join(root, "mvm/mvm-v2", f), "utf8");
    setCpuWeight(host, "mvm-v2", 250);
    setCpuMax(host, "mvm-v2", 0.3, 200000);
    setMemoryMax(host, "mvm-v2", 768 << 20, 512 << 20);
    assert.deepEqual([file("cpu.weight"), file("cpu.max"), file("memory.max")], ["250", "30000 100000", String(768 << 20)]);
    assert.deepEqual(readLimits(host, "mvm-v2"), { memoryBytes: 768 << 20, pids: 130, cpuQuotaUs: 30000, cpuWeight: 250, path: join(root, "mvm/mvm-v2") });
    setCpuMax(host, "mvm-v2", 0.01, 200000);
    assert.equal(file("cpu.max"), "1000 100000", "0.01 cores: CFS's smallest quota, 1 ms per period");
    setCpuWeight(host, "mvm-v2", undefined);
    setCpuMax(host, "mvm-v2", undefined, 200000);
    setMemoryMax(host, "mvm-v2", undefined, 512 << 20);
    assert.deepEqual([file("cpu.weight"), file("cpu.max"), file("memory.max")], ["100", "200000 100000", String(512 << 20)], "the defaults: the kernel's weight, the jail's caps");
    // Below what the group uses now: refused before writing (v2 would reclaim, then OOM-kill QEMU).
    writeFileSync(join(root, "mvm/mvm-v2/memory.current"), String(600 << 20));
    assert.equal(readMemoryUsage(host, "mvm-v2"), 600 << 20);
    assert.throws(
      () => setMemoryMax(host, "mvm-v2", 550 << 20, 512 << 20),
      (e: unknown) => e instanceof MemoryInUseError && MemoryInUseError.status === 409 && /cap to 550 MiB: QEMU's control group uses 600 MiB now/.test(e.message) && /OOM-kill/.test(e.message) && /above 600M/.test(e.hint ?? ""),
    );
    assert.equal(file("memory.max"), String(512 << 20), "the old cap stays");
    setMemoryMax(host, "mvm-v2", 700 << 20, 512 << 20);
    assert.equal(file("memory.max"), String(700 << 20), "above the usage it is taken");
    assert.throws(() => setCpuWeight(host, "../x", 5), RangeError, "names stay plain");
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test("v1: cpu.shares is the weight × 1024 / 100, the cap is cfs_quota_us, memory memory.limit_in_bytes; read back as v2's", () => {
  const root = fakeRoot({ "memory/cgroup.procs": "", "pids/cgroup.procs": "", "cpu/cgroup.procs": "" });
  try {
    const host = setUpCgroups(root, "4:memory:/m\n8:pids:/\n1:cpu,cpuacct:/\n0::/\n");
    assert.equal(host.mode, "v1");
    createGroup(host, "mvm-v1", { memoryBytes: 512 << 20, pids: 130, cpuQuotaUs: 200000 });
    setCpuWeight(host, "mvm-v1", 200);
    setCpuMax(host, "mvm-v1", 1.25, 200000);
    setMemoryMax(host, "mvm-v1", 1 << 30, 512 << 20);
    assert.equal(readFileSync(join(root, "cpu/mvm/mvm-v1/cpu.shares"), "utf8"), "2048");
    assert.equal(readFileSync(join(root, "cpu/mvm/mvm-v1/cpu.cfs_quota_us"), "utf8"), "125000");
    assert.equal(readFileSync(join(root, "cpu/mvm/mvm-v1/cpu.cfs_period_us"), "utf8"), "100000", "the period stays the jail's");
    assert.equal(readFileSync(join(root, "memory/m/mvm/mvm-v1/memory.limit_in_bytes"), "utf8"), String(1 << 30));
    assert.deepEqual(readLimits(host, "mvm-v1"), { memoryBytes: 1 << 30, pids: 130, cpuQuotaUs: 125000, cpuWeight: 200, path: join(root, "memory/m/mvm/mvm-v1") });
    assert.deepEqual([1, 100, 10000].map(weightToShares), [10, 1024, 102400]);
    assert.equal(weightToShares(0.1), 2, "v1's smallest share");
    setCpuWeight(host, "mvm-v1", undefined);
    assert.equal(readFileSync(join(root, "cpu/mvm/mvm-v1/cpu.shares"), "utf8"), "1024");
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test("without control groups nothing is written: the writers throw rather than pretend", () => {
  const none: CgroupHost = { mode: "none", reason: "off", parents: {} };
  assert.throws(() => setCpuMax(none, "mvm-z", 0.5, 200000), /no cpu control group/);
  assert.throws(() => setMemoryMax(none, "mvm-z", 1 << 30, 1 << 29), /no memory control group/);
  assert.equal(readMemoryUsage(none, "mvm-z"), undefined);
});

test("a process's mvm group, from /proc/PID/cgroup: v2's line or v1's memory line", () => {
  const proc = fakeRoot({ "10/cgroup": "0::/svc/mvm/mvm-aa\n", "11/cgroup": "4:memory:/box/mvm/mvm-bb\n1:cpu:/mvm/mvm-bb\n0::/\n", "12/cgroup": "0::/user.slice\n" });
  try {
    assert.deepEqual([groupOfProcess(10, proc), groupOfProcess(11, proc), groupOfProcess(12, proc), groupOfProcess(13, proc)], ["mvm-aa", "mvm-bb", undefined, undefined]);
  } finally {
    rmSync(proc, { recursive: true, force: true });
  }
});

// The real kernel (cgroup v1's memory controller, as on this project's hosts, as root): a cap below what the
// group's processes hold, with no swap to push it to, is refused with EBUSY after reclaim; mvm says so.
const v1MemoryOwn = (() => {
  if (process.getuid?.() !== 0 || !existsSync("/sys/fs/cgroup/memory/cgroup.procs")) return undefined;
  const line = readFileSync("/proc/self/cgroup", "utf8").split("\n").find((l) => l.split(":")[1]?.split(",").includes("memory"));
  return line ? join("/sys/fs/cgroup/memory", line.split(":")[2]!) : undefined;
})();
const swapless = existsSync("/proc/swaps") && readFileSync("/proc/swaps", "utf8").trim().split("\n").length === 1;

test("v1, the real kernel: lowering memory below what the group holds is MEMORY_IN_USE and leaves the old cap", { skip: (!v1MemoryOwn || !swapless) && "needs root, cgroup v1's memory controller and no swap", timeout: 20000 }, async () => {
  const name = `mvm-test-${process.pid}`;
  const parent = join(v1MemoryOwn!, "mvm-unit");
  const host: CgroupHost = { mode: "v1", reason: "", parents: { memory: parent } };
  mkdirSync(join(parent, name), { recursive: true });
  // A process that holds 64 MiB it has written to (anonymous memory: without swap, nothing reclaims it),
  // in the group from before its first allocation (it joins, as the jail does, then execs).
  const procs = join(parent, name, "cgroup.procs");
  const code = "const b = Buffer.alloc(64 << 20, 1); console.log('held', b.length); setInterval(() => b[0]++, 1000);";
  const child = spawn("/bin/sh", ["-c", 'echo $$ > "$0" && exec "$1" -e "$2"', procs, process.execPath, code], { stdio: ["ignore", "pipe", "inherit"] });
  try {
    await new Promise<void>((resolve, reject) => {
      child.stdout.once("data", () => resolve());
      child.once("exit", (c) => reject(new Error(`the child exited ${c}`)));
    });
    const cap = readFileSync(join(parent, name, "memory.limit_in_bytes"), "utf8").trim();
    const usage = readMemoryUsage(host, name)!;
    assert.ok(usage >= 64 << 20, `the group holds ${usage} bytes`);
    assert.throws(
      () => setMemoryMax(host, name, 16 << 20, 1 << 30),
      (e: unknown) => e instanceof MemoryInUseError && /cap to 16 MiB/.test(e.message) && /EBUSY/.test(e.message) && (e.details as { usageBytes: number }).usageBytes >= 64 << 20,
    );
    assert.equal(readFileSync(join(parent, name, "memory.limit_in_bytes"), "utf8").trim(), cap, "the old cap stays");
    setMemoryMax(host, name, 512 << 20, 1 << 30);
    assert.equal(readFileSync(join(parent, name, "memory.limit_in_bytes"), "utf8").trim(), String(512 << 20), "a cap above it is taken");
  } finally {
    child.kill("SIGKILL");
    await new Promise((r) => child.once("exit", r));
    for (let i = 0; i < 50; i++) {
      try {
        rmdirSync(join(parent, name));
        break;
      } catch {
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    try {
      rmdirSync(parent);
    } catch {
      /* another run's group is still in it */
    }
  }
});
