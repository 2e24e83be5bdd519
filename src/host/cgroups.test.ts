import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { cgroupSupport, createGroup, groupDirs, readLimits, removeGroup, setUpCgroups, sweepGroups } from "./cgroups.js";

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
