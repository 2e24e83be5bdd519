import assert from "node:assert/strict";
import { test } from "node:test";
import type { VmView } from "../../daemon/views.js";
import { InvalidArgumentError } from "../../errors.js";
import { checkSpec } from "../../vmspec/vm-spec.js";
import { specFromFlags } from "../vm-flags.js";
import { limitsPatchFromFlags, limitsTable } from "./limits.js";

test("--disk-bps, --disk-iops and --net-bps go into the spec as its keys (the daemon checks them)", () => {
  const spec = specFromFlags({ env: [], publish: [], disk: [], volume: [], diskBps: "5M", diskIops: "300", netBps: "10M" }, undefined);
  assert.deepEqual(spec, { diskBps: "5M", diskIops: 300, netBps: "10M" });
  assert.equal(specFromFlags({ env: [], publish: [], disk: [], volume: [], diskIops: "lots" }, undefined).diskIops, "lots", "the schema names the problem");
  const cpu = specFromFlags({ env: [], publish: [], disk: [], volume: [], cpuShare: "200", cpuMax: "1.5", memoryMax: "768M" }, undefined);
  assert.deepEqual(cpu, { cpuShare: 200, cpuMax: "1.5", memoryMax: "768M" });
  assert.deepEqual({ share: checkSpec(cpu).cpuShare, max: checkSpec(cpu).cpuMax, mem: checkSpec(cpu).memoryMax }, { share: 200, max: 1.5, mem: 768 * 1048576 }, "the spec the daemon checks");
});

test("mvm limits: flags as a change, none removes one, nothing given is no change", () => {
  assert.deepEqual(limitsPatchFromFlags({ diskBps: "50M", diskIops: "none", netBps: "none" }), { diskBps: "50M", diskIops: null, netBps: null });
  assert.deepEqual(limitsPatchFromFlags({ diskIops: "200" }), { diskIops: 200 });
  assert.deepEqual(limitsPatchFromFlags({ json: true }), {});
  assert.throws(() => limitsPatchFromFlags({ diskIops: "2k" }), InvalidArgumentError);
  assert.deepEqual(limitsPatchFromFlags({ cpuShare: "50", cpuMax: "0.5", memoryMax: "none" }), { cpuShare: 50, cpuMax: "0.5", memoryMax: null });
  assert.deepEqual(limitsPatchFromFlags({ cpuShare: "none", cpuMax: "none" }), { cpuShare: null, cpuMax: null });
  assert.throws(() => limitsPatchFromFlags({ cpuShare: "lots" }), (e: unknown) => e instanceof InvalidArgumentError && /--cpu-share "lots"/.test(e.message));
});

test("mvm limits: what is set, and what the running QEMU has", () => {
  const spec = { ...checkSpec({ name: "web" }), diskBps: 5242880, netBps: 1048576 };
  const base: VmView = { id: "abc", name: "web", spec, state: "running", createdAt: "t", updatedAt: "t" };
  const rows = (v: VmView) => limitsTable(v).trimEnd().split("\n").map((l) => l.split(/\s{2,}/));
  const running = rows({ ...base, limits: { diskBps: 5242880, netBps: 1048576, disks: ["vd0", "vd1"], group: "vm-abc", tap: "mvt-abc", appliedAt: "t" } });
  assert.deepEqual(running, [
    ["LIMIT", "SET", "IN EFFECT"],
    ["diskBps", "5M/s", "5M/s on vd0, vd1"],
    ["diskIops", "-", "-"],
    ["netBps", "1M/s", "1M/s each way on mvt-abc"],
    ["cpuShare", "-", "-"],
    ["cpuMax", "-", "-"],
    ["memoryMax", "-", "-"],
  ]);
  const cg = "/sys/fs/cgroup/cpu/mvm/mvm-abc";
  const capped = rows({ ...base, spec: { ...spec, cpuMax: 0.5, memoryMax: 805306368 }, limits: { cpuMax: 0.5, memoryMax: 805306368, disks: [], cgroup: cg, appliedAt: "t" } });
  assert.deepEqual(capped.slice(4), [
    ["cpuShare", "-", "-"],
    ["cpuMax", "0.5 cores", `0.5 cores in ${cg}`],
    ["memoryMax", "768M", `768M in ${cg}`],
  ]);
  assert.deepEqual(rows({ ...base, state: "stopped" })[1], ["diskBps", "5M/s", "(not running)"]);
});
