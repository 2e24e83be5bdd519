import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { InvalidSizeError, InvalidSpecError } from "../errors.js";
import { burstBytes, ifbFor, netLimitCommands } from "../host/tc.js";
import { throttleArguments, throttleGroup } from "../qemu/throttle.js";
import type { GuestArtifacts } from "../guest/artifacts.js";
import { flattenArgv } from "../qemu/microvm-argv.js";
import { buildArgv } from "../plan/argv.js";
import { templateKey } from "../plan/clone-plan.js";
import { planVm } from "../plan/vm-plan.js";
import type { VmRecord } from "../store/vm-store.js";
import { formatCores, formatRate, parseCpuMax, parseCpuShare, parseIops, parseMemoryMax, parseRate, patchLimits, wantsCgroup } from "./limits.js";
import { checkSpec } from "./vm-spec.js";
import { tempDir } from "../../test/support/temp-dirs.js";

const disk = (() => {
  const dir = tempDir("mvm-limits-");
  writeFileSync(join(dir, "d.img"), Buffer.alloc(4096));
  return join(dir, "d.img");
})();

test("rates: bytes per second, or with a power-of-1024 unit, optionally /s", () => {
  assert.equal(parseRate("5M", "diskBps"), 5 * 1048576);
  assert.equal(parseRate("5MiB/s", "diskBps"), 5 * 1048576);
  assert.equal(parseRate("512k", "diskBps"), 512 * 1024);
  assert.equal(parseRate("1G", "netBps"), 1024 ** 3);
  assert.equal(parseRate(5242880, "diskBps"), 5242880);
  assert.equal(parseRate(" 65536 ", "diskBps"), 65536);
  for (const bad of ["", "M", "5X", "-5M", "5.5M", "5 M/sec", "0x10M", "1e9", "5M5"]) assert.throws(() => parseRate(bad, "diskBps"), (e: unknown) => e instanceof InvalidSizeError && /diskBps: cannot read/.test(e.message), bad);
  // Zero, negative, tiny and huge: out of range, with the range in the hint.
  for (const bad of [0, -1, "0", "1K", 65535, "2T", Number.MAX_SAFE_INTEGER, 2 ** 60]) {
    assert.throws(() => parseRate(bad, "diskBps"), (e: unknown) => e instanceof InvalidSizeError && /out of range|cannot read/.test(e.message) && (/between 64K and 1T/.test(e.hint ?? "") || /unit/.test(e.hint ?? "")), String(bad));
  }
  assert.equal(parseRate("1T", "diskBps"), 1024 ** 4);
  assert.deepEqual(["5M", "512K", "1G", "65537"].map((r) => formatRate(parseRate(r, "x"))), ["5M", "512K", "1G", "65537"]);
});

test("IOPS: a whole number from 10 to a million", () => {
  assert.equal(parseIops(500, "diskIops"), 500);
  assert.equal(parseIops("500", "diskIops"), 500);
  for (const bad of [0, -5, 9, 1_000_001, 2 ** 53, 1.5, "5k", "ten"]) assert.throws(() => parseIops(bad, "diskIops"), InvalidSizeError, String(bad));
});

test("the spec: limits checked, in bytes per second; each needs something to limit", () => {
  const s = checkSpec({ name: "a", disks: [disk], diskBps: "5M", diskIops: 200 });
  assert.deepEqual({ bps: s.diskBps, iops: s.diskIops, net: s.netBps }, { bps: 5242880, iops: 200, net: undefined });
  assert.equal(checkSpec({ name: "a", image: "debian", diskBps: 1048576 }).diskBps, 1048576, "an image's root disk counts");
  assert.equal(checkSpec({ name: "a", network: "lan", netBps: "10M" }).netBps, 10 * 1048576);
  assert.ok(!("diskBps" in checkSpec({ name: "a" })), "no key without a limit");
  assert.throws(() => checkSpec({ diskBps: "5M" }), (e: unknown) => e instanceof InvalidSpecError && /has none/.test(e.message) && /--disk/.test(e.hint ?? ""));
  assert.throws(() => checkSpec({ disks: [disk], diskBps: 0 }), InvalidSizeError);
  assert.throws(() => checkSpec({ disks: [disk], diskIops: -1 }), InvalidSizeError);
  assert.throws(() => checkSpec({ disks: [disk], diskIops: "100" }), /\/diskIops/, "the schema wants an integer");
  assert.throws(() => checkSpec({ disks: [disk], diskBps: true }), /\/diskBps/);
  // Network limits: bridged networks only; user networking says why and what to use instead.
  assert.throws(() => checkSpec({ netBps: "10M" }), (e: unknown) => e instanceof InvalidSpecError && /network none/.test(e.message));
  for (const network of ["user", "user,restrict"]) {
    assert.throws(
      () => checkSpec({ network, netBps: "10M" }),
      (e: unknown) => e instanceof InvalidSpecError && /slirp runs inside QEMU/.test(e.message) && /bridged network/.test(e.hint ?? "") && /mvm network create/.test(e.hint ?? ""),
    );
  }
});

test("a change of limits: null removes one, a key left out keeps it, the result is checked as the spec is", () => {
  const target = { network: "lan", disks: 2 };
  const now = { diskBps: 5242880, netBps: 1048576 };
  assert.deepEqual(patchLimits(now, { diskBps: "50M" }, target), { diskBps: 50 * 1048576, netBps: 1048576 });
  assert.deepEqual(patchLimits(now, { netBps: null, diskIops: 100 }, target), { diskBps: 5242880, diskIops: 100 });
  assert.deepEqual(patchLimits(now, { diskBps: null, netBps: null }, target), {});
  assert.throws(() => patchLimits(now, { diskBps: "0" }, target), InvalidSizeError);
  assert.throws(() => patchLimits({}, { netBps: "1M" }, { name: "web", network: "user", disks: 0 }), /VM web|user network/);
  assert.throws(() => patchLimits({}, { diskIops: 100 }, { name: "web", network: "none", disks: 0 }), /VM web has none/);
});

test("cpuShare: a whole weight from 1 to 10000, as cgroup v2's cpu.weight", () => {
  assert.deepEqual([parseCpuShare(1), parseCpuShare("100"), parseCpuShare(" 10000 ")], [1, 100, 10000]);
  for (const bad of [0, -1, 10001, 1.5, "1e3", "ten", ""]) assert.throws(() => parseCpuShare(bad), (e: unknown) => e instanceof InvalidSizeError && /cpuShare/.test(e.message) && /1 to 10000/.test(e.hint ?? ""), String(bad));
});

test("cpuMax: cores to two decimals, from 0.01 to the VM's vCPUs + 1 (the jail's default cap, never exceeded)", () => {
  assert.deepEqual([parseCpuMax("0.01", 1), parseCpuMax(0.3, 1), parseCpuMax("1.5", 1), parseCpuMax(2, 1), parseCpuMax("3", 2)], [0.01, 0.3, 1.5, 2, 3]);
  assert.throws(() => parseCpuMax("2.01", 1), (e: unknown) => e instanceof InvalidSizeError && /cpuMax 2.01 is out of range/.test(e.message) && /from 0.01 to 2 cores/.test(e.hint ?? "") && /1 vCPU\b/.test(e.hint ?? ""));
  assert.throws(() => parseCpuMax(4, 2), /out of range/, "2 vCPUs: at most 3 cores");
  for (const bad of [0, "0.00", 0.001, "0.005"]) assert.throws(() => parseCpuMax(bad, 4), InvalidSizeError, String(bad));
  for (const bad of ["-1", "1,5", "1.", ".5", "1.234", "1e-7", 1e-7, "half", "150%"]) assert.throws(() => parseCpuMax(bad, 4), (e: unknown) => e instanceof InvalidSizeError && /cannot read/.test(e.message), String(bad));
  assert.equal(parseCpuMax(64), 64, "without the VM's vCPUs known, only the floor is checked");
  assert.deepEqual([formatCores(1.5), formatCores(0.3), formatCores(2)], ["1.5", "0.3", "2"]);
});

test("memoryMax: a size in bytes (units: powers of 1024), at least guest RAM + the 128 MiB QEMU itself needs", () => {
  const M = 1048576;
  assert.equal(parseMemoryMax("384M", 256), 384 * M, "RAM + the floor exactly");
  assert.equal(parseMemoryMax("1G", 256), 1024 * M);
  assert.equal(parseMemoryMax(768 * M, 512), 768 * M, "a number is bytes");
  assert.equal(parseMemoryMax("4G", 256), 4096 * M, "above the jail's default (RAM + 256M): a user may raise it");
  assert.throws(() => parseMemoryMax("383M", 256), (e: unknown) => e instanceof InvalidSizeError && /memoryMax 383M is below what the VM needs: its 256 MiB of guest RAM and 128 MiB for QEMU itself/.test(e.message) && /at least 384M/.test(e.hint ?? ""));
  assert.throws(() => parseMemoryMax(768, 256), (e: unknown) => e instanceof InvalidSizeError && /write 768M, not 768/.test(e.hint ?? ""), "a bare number is bytes, and the hint says so");
  assert.throws(() => parseMemoryMax("256M", 256), /below/, "guest RAM alone leaves QEMU nothing");
  for (const bad of ["", "M", "1.5G", "-1G", "5X", "5M/s"]) assert.throws(() => parseMemoryMax(bad, 256), (e: unknown) => e instanceof InvalidSizeError && /cannot read/.test(e.message), bad);
  assert.throws(() => parseMemoryMax("3T", 256), /out of range/);
});

test("CPU and memory in the spec: checked against its vCPUs and memory; a change is checked as the spec is", () => {
  const s = checkSpec({ name: "c", cpus: 2, memory: "512M", cpuShare: 200, cpuMax: "1.5", memoryMax: "1G" });
  assert.deepEqual({ share: s.cpuShare, max: s.cpuMax, mem: s.memoryMax }, { share: 200, max: 1.5, mem: 1024 * 1048576 });
  assert.ok(wantsCgroup(s) && !wantsCgroup(checkSpec({ name: "d" })));
  assert.equal(checkSpec({ cpuMax: 0.5 }).cpuMax, 0.5, "a JSON number works too");
  assert.throws(() => checkSpec({ cpus: 2, cpuMax: 3.5 }), /cpuMax 3.5 is out of range/);
  assert.throws(() => checkSpec({ memory: "1G", memoryMax: "1G" }), /below what the VM needs: its 1024 MiB/);
  assert.throws(() => checkSpec({ cpuShare: "100" }), /\/cpuShare/, "the schema wants an integer");
  assert.throws(() => checkSpec({ memoryMax: true }), /\/memoryMax/);
  const target = { network: "none", disks: 0, cpus: 1, memoryMiB: 256 };
  assert.deepEqual(patchLimits({ cpuMax: 0.5 }, { cpuMax: "1.2", memoryMax: "512M" }, target), { cpuMax: 1.2, memoryMax: 512 * 1048576 });
  assert.deepEqual(patchLimits({ cpuMax: 0.5, cpuShare: 50 }, { cpuMax: null }, target), { cpuShare: 50 });
  assert.throws(() => patchLimits({}, { cpuMax: "2.5" }, target), /out of range/);
  assert.throws(() => patchLimits({}, { memoryMax: "300M" }, target), (e: unknown) => e instanceof InvalidSizeError && /at least 384M/.test(e.hint ?? ""));
});

test("QEMU's throttle: totals, one group per VM, zeros for what is not limited", () => {
  assert.equal(throttleGroup("abc123"), "vm-abc123");
  assert.deepEqual(throttleArguments("vd1", "vm-abc", { diskBps: 5242880 }), { id: "vd1", bps: 5242880, bps_rd: 0, bps_wr: 0, iops: 0, iops_rd: 0, iops_wr: 0, group: "vm-abc" });
  assert.deepEqual(throttleArguments("vd0", "vm-abc", {}), { id: "vd0", bps: 0, bps_rd: 0, bps_wr: 0, iops: 0, iops_rd: 0, iops_wr: 0, group: "vm-abc" }, "all zeros: off");
});

test("tc on a tap: tbf both ways, the guest's outbound through an ifb named after the tap", () => {
  assert.equal(ifbFor("mvt-0123456789"), "mvi-0123456789");
  assert.ok(ifbFor("mvt-0123456789abcdef").length <= 15, "a kernel interface name");
  assert.equal(burstBytes(1048576), 32768, "at least a few frames");
  assert.equal(burstBytes(100 * 1048576), 2097152, "20 ms at the rate");
  assert.equal(burstBytes(1024 ** 4), 1024 ** 3, "tc's sizes are 32-bit");
  const cmds = netLimitCommands("mvt-0123456789", 10 * 1048576).map((c) => c.join(" "));
  assert.deepEqual(cmds, [
    "tc qdisc replace dev mvt-0123456789 root tbf rate 10485760bps burst 209716 latency 400ms",
    "tc qdisc replace dev mvi-0123456789 root tbf rate 10485760bps burst 209716 latency 400ms",
    "tc qdisc add dev mvt-0123456789 handle ffff: ingress",
    "tc filter add dev mvt-0123456789 parent ffff: protocol all prio 1 u32 match u32 0 0 action mirred egress redirect dev mvi-0123456789",
  ]);
});

test("limits are no part of the machine: the plan, argv and template key are the same with and without them", () => {
  const artifacts: GuestArtifacts = {
    kernel: { dir: "/c/k", vmlinux: "/c/k/vmlinux", bzImage: "/c/k/bzImage", info: { release: "6.1-mvm", sourceVersion: "6.1", hz: 100, key: "k", buildSeconds: 1 } },
    initramfs: { dir: "/c/i", path: "/c/i/initramfs.cpio", info: { busyboxVersion: "1.35", key: "i", bytes: 1, agentBytes: 1, initBytes: 1 } },
  };
  const host = { home: "/h", accel: "tcg" as const, qemuBinary: "/usr/bin/qemu-system-x86_64", artifacts, nameservers: [] };
  const rec = (limits: object): VmRecord => ({ id: "0123456789ab", name: "vm", state: "created", spec: checkSpec({ name: "vm", image: "debian", network: "user", ...limits }), createdAt: "t", updatedAt: "t" });
  const plain = planVm(rec({}), host);
  const limited = planVm(rec({ diskBps: "5M", diskIops: 100 }), host);
  const argv = (p: typeof plain) => flattenArgv(buildArgv(p, { artifacts, dir: p.dir, configFile: `${p.dir}/config`, console: "socket" }));
  assert.deepEqual(argv(limited), argv(plain));
  assert.ok(argv(plain).includes("virtio-blk-device,id=vd0,drive=disk0"), "the root disk is vd0, the id QMP throttles");
  const inputs = { qemuBuild: "q", artifacts, image: { path: "/i", size: 1, mtimeMs: 1 } };
  assert.equal(templateKey(limited, inputs), templateKey(plain, inputs), "a limited VM is cloned from the same template");
});
