import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
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
import { formatRate, parseIops, parseRate, patchLimits } from "./limits.js";
import { checkSpec } from "./vm-spec.js";

const disk = (() => {
  const dir = mkdtempSync(join(tmpdir(), "mvm-limits-"));
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
