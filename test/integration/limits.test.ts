// Disk limits on a real guest under TCG: a VM with two disks and diskBps 5M writes 50 MiB to its second
// disk (dd oflag=direct: no page cache between the guest and QEMU) in no less than 9 s, timed on the host;
// `mvm limits` raises the limit live to 50M and the same write is at least 3× faster. The limit is one
// throttle group for both disks; inspect and `mvm limits` show it in effect. A bridged VM's netBps 1M holds
// what it sends to the host to that rate (tc on its tap, through its ifb), and removed live it does not.
// cpuMax 0.3 holds a guest's busy loop to 0.3 of a core, measured from outside (QEMU's CPU time, and the
// periods its control group was throttled), raised live it does not; memoryMax is in the group's file and
// in inspect, and a live change rewrites it.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { createInterface } from "node:readline";
import { truncate, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { startTestDaemon, type TestDaemon } from "../support/daemon.js";
import { cgroupDirs } from "../support/host-state.js";

/** Runs dd in the guest and returns how long it took as the host saw it (ms). */
async function timedWrite(d: TestDaemon, vm: string): Promise<number> {
  let err = "";
  const t0 = performance.now();
  const r = await d.client.exec(vm, ["dd", "if=/dev/zero", "of=/dev/vdb", "bs=1M", "count=50", "oflag=direct"], { onStderr: (b) => (err += b.toString()), timeoutMs: 40_000 });
  const ms = performance.now() - t0;
  assert.equal(r.status, 0, `dd failed: ${err}`);
  assert.match(err, /^50\+0 records out$/m, "dd wrote all 50 MiB");
  return ms;
}

test("diskBps 5M holds a 50 MiB direct write to ≥ 9 s; raised live to 50M it is ≥ 3× faster", { timeout: 120_000 }, async (t) => {
  const d = await startTestDaemon(t);
  const first = join(d.home, "first.img");
  const scratch = join(d.home, "scratch.img");
  await writeFile(first, "");
  await truncate(first, 8 * 1048576);
  await writeFile(scratch, "");
  await truncate(scratch, 64 * 1048576);
  const created = await d.cli(["create", "--name", "lim", "--disk", first, "--disk", scratch, "--disk-bps", "5M", "--json"]);
  assert.equal(created.code, 0, created.stderr);
  const vm = await d.client.start("lim");
  assert.deepEqual({ ...vm.limits, appliedAt: undefined }, { diskBps: 5 * 1048576, disks: ["vd0", "vd1"], group: `vm-${vm.id}`, appliedAt: undefined }, "both disks, one group");

  const slow = await timedWrite(d, "lim");
  process.stderr.write(`limits: 50 MiB at diskBps 5M: ${(slow / 1000).toFixed(2)} s\n`);
  assert.ok(slow >= 9000, `the write took ${Math.round(slow)} ms, under 9 s: the limit did not hold`);

  const raised = await d.cli(["limits", "lim", "--disk-bps", "50M", "--json"]);
  assert.equal(raised.code, 0, raised.stderr);
  const shown = JSON.parse(raised.stdout) as { set: { diskBps: number }; inEffect: { diskBps: number } };
  assert.deepEqual([shown.set.diskBps, shown.inEffect.diskBps], [50 * 1048576, 50 * 1048576]);

  const fast = await timedWrite(d, "lim");
  process.stderr.write(`limits: 50 MiB at diskBps 50M (changed live): ${(fast / 1000).toFixed(2)} s, ${(slow / fast).toFixed(1)}× faster\n`);
  assert.ok(fast * 3 <= slow, `raised to 50M the write took ${Math.round(fast)} ms, not 3× faster than ${Math.round(slow)} ms`);

  // What a user sees: inspect's view and the table.
  const inspect = await d.cli(["inspect", "lim"]);
  const view = JSON.parse(inspect.stdout) as { spec: { diskBps: number }; limits: { diskBps: number; group: string } };
  assert.deepEqual([view.spec.diskBps, view.limits.diskBps, view.limits.group], [50 * 1048576, 50 * 1048576, `vm-${vm.id}`]);
  const table = await d.cli(["limits", "lim"]);
  assert.match(table.stdout, /^diskBps\s+50M\/s\s+50M\/s on vd0, vd1$/m);
});

const root = process.getuid?.() === 0;

/** A TCP sink in the daemon's network namespace: how many bytes one connection brought, and in how long (first byte to EOF). */
async function sink(d: TestDaemon, host: string, port: number): Promise<{ result: Promise<{ bytes: number; ms: number }>; close: () => void }> {
  const code = `const s = require("node:net").createServer((c) => { let n = 0, t0; c.on("data", (b) => { t0 ??= performance.now(); n += b.length; }); c.on("end", () => { console.log(JSON.stringify({ bytes: n, ms: performance.now() - t0 })); c.end(); s.close(); }); }); s.listen(${port}, ${JSON.stringify(host)}, () => console.log("ready"));`;
  const child = spawn("ip", ["netns", "exec", d.netns!, process.execPath, "-e", code], { stdio: ["ignore", "pipe", "inherit"] });
  const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  assert.equal((await lines.next()).value, "ready");
  const result = lines.next().then((l) => JSON.parse(String(l.value)) as { bytes: number; ms: number });
  return { result, close: () => child.kill("SIGKILL") };
}

test("netBps 1M on a bridged VM: what it sends is held to the rate (tc on its tap and ifb); removed live, it is not; rm leaves no ifb", { skip: !root && "needs root", timeout: 120_000 }, async (t) => {
  const d = await startTestDaemon(t, { netns: true });
  await d.client.createNetwork("lan", { subnet: "10.79.0.0/24" });
  const vm = await d.client.start((await d.client.create({ name: "n", network: "lan", netBps: "1M" })).id);
  const tap = vm.bridged!.tap;
  const ifb = tap.replace(/^mvt-/, "mvi-");
  assert.equal(vm.limits?.tap, tap);
  assert.match(d.inNetns(["tc", "qdisc", "show", "dev", tap]), /qdisc tbf .*rate 8388Kbit/, "to the guest: tbf on the tap");
  assert.match(d.inNetns(["tc", "qdisc", "show", "dev", tap]), /qdisc ingress/);
  assert.match(d.inNetns(["tc", "filter", "show", "dev", tap, "parent", "ffff:"]), new RegExp(`mirred \\(Egress Redirect to device ${ifb}\\)`));
  assert.match(d.inNetns(["tc", "qdisc", "show", "dev", ifb]), /qdisc tbf .*rate 8388Kbit/, "from the guest: tbf on its ifb");

  // 3 MiB from the guest to a sink on the bridge's address: about 3 s at 1 MiB/s.
  const send = async () => {
    const s = await sink(d, "10.79.0.1", 9000);
    t.after(s.close);
    const r = await d.client.exec("n", ["sh", "-c", "dd if=/dev/zero bs=64k count=48 2>/dev/null | nc 10.79.0.1 9000"], { timeoutMs: 30_000 });
    assert.equal(r.status, 0);
    const got = await s.result;
    assert.equal(got.bytes, 3 * 1048576);
    return got.ms;
  };
  const slow = await send();
  process.stderr.write(`limits: 3 MiB sent by the guest at netBps 1M: ${(slow / 1000).toFixed(2)} s\n`);
  assert.ok(slow >= 2500, `3 MiB took ${Math.round(slow)} ms at 1 MiB/s`);

  const removed = await d.cli(["limits", "n", "--net-bps", "none", "--json"]);
  assert.equal(removed.code, 0, removed.stderr);
  assert.equal((JSON.parse(removed.stdout) as { inEffect: unknown }).inEffect, null);
  assert.doesNotMatch(d.inNetns(["tc", "qdisc", "show", "dev", tap]), /tbf|ingress/);
  assert.doesNotMatch(d.inNetns(["ip", "link", "show"]), new RegExp(ifb), "the ifb went with the limit");
  const fast = await send();
  process.stderr.write(`limits: the same without the limit: ${(fast / 1000).toFixed(2)} s\n`);
  // Unlimited, a TCG guest's own speed is the bound (0.7 to 1.4 s here, depending on the host's load).
  assert.ok(fast * 1.5 <= slow, `without the limit 3 MiB took ${Math.round(fast)} ms, against ${Math.round(slow)} ms with it`);

  // Set live again, then rm: the tap and the ifb both go.
  assert.equal((await d.cli(["limits", "n", "--net-bps", "2M"])).code, 0);
  assert.match(d.inNetns(["ip", "link", "show"]), new RegExp(ifb));
  await d.client.remove("n", { force: true });
  assert.doesNotMatch(d.inNetns(["ip", "link", "show"]), new RegExp(`${tap}|${ifb}`));
});

/** Seconds of CPU a process (all its threads) has used: its group's own count where it keeps one, else /proc. */
function cpuSeconds(pid: number, dirs: string[]): number {
  for (const d of dirs) {
    if (existsSync(join(d, "cpu.stat")) && /^usage_usec /m.test(readFileSync(join(d, "cpu.stat"), "utf8"))) return Number(/^usage_usec (\d+)/m.exec(readFileSync(join(d, "cpu.stat"), "utf8"))![1]) / 1e6; // v2
    if (existsSync(join(d, "cpuacct.usage"))) return Number(readFileSync(join(d, "cpuacct.usage"), "utf8")) / 1e9; // v1, cpu,cpuacct mounted together
  }
  // v1 with cpuacct on a hierarchy of its own (mvm's groups are in cpu's): utime + stime, in USER_HZ ticks.
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(f[11]) + Number(f[12])) / 100;
}

test("cpuMax 0.3 holds a busy 1-vCPU guest to ≤ 0.45 cores (CFS throttles its group), raised live it runs free; memoryMax in the group's file and inspect, changed live", { skip: !root && "needs root", timeout: 120_000 }, async (t) => {
  const d = await startTestDaemon(t);
  const created = await d.cli(["create", "--name", "cpu", "--cpu-max", "0.3", "--memory-max", "768M", "--cpu-share", "50", "--json"]);
  assert.equal(created.code, 0, created.stderr);
  const vm = await d.client.start("cpu");
  const jail = (await d.client.get("cpu")).jail;
  assert.equal(jail?.enabled, true, "a root daemon jails its QEMUs");
  if (jail?.cgroup?.mode === "none") return t.skip(`no control groups here: ${jail.reason}`);
  const pid = vm.pid!;
  const dirs = cgroupDirs(pid);
  const read = (...names: string[]) => names.flatMap((f) => dirs.map((dir) => join(dir, f))).filter(existsSync).map((p) => readFileSync(p, "utf8").trim())[0] ?? "";
  const quota = () => read("cpu.max", "cpu.cfs_quota_us").split(" ")[0];
  const memory = () => read("memory.max", "memory.limit_in_bytes");
  assert.equal(quota(), "30000", "0.3 of a core: 30 ms per 100 ms period, in place of the jail's 2 cores");
  assert.equal(memory(), String(768 * 1048576));
  assert.match(read("cpu.weight", "cpu.shares"), /^(50|512)$/, "weight 50 (v1: 512 shares)");
  assert.deepEqual({ ...vm.limits, appliedAt: undefined, cgroup: undefined }, { cpuMax: 0.3, memoryMax: 768 * 1048576, cpuShare: 50, disks: [], appliedAt: undefined, cgroup: undefined });
  const inspect = JSON.parse((await d.cli(["inspect", "cpu"])).stdout) as { limits: { cpuMax: number; memoryMax: number }; jail: { cgroup: { memoryBytes: number; cpuQuotaUs: number; cpuWeight: number } } };
  assert.deepEqual([inspect.limits.cpuMax, inspect.limits.memoryMax], [0.3, 768 * 1048576]);
  assert.deepEqual([inspect.jail.cgroup.memoryBytes, inspect.jail.cgroup.cpuQuotaUs, inspect.jail.cgroup.cpuWeight], [768 * 1048576, 30000, 50], "read back from the group's files");

  // A busy loop on the guest's one vCPU; QEMU's CPU time over 3 s of host time, and the throttled periods.
  await d.client.spawn("cpu", ["sh", "-c", "while :; do :; done"]);
  await new Promise((r) => setTimeout(r, 800));
  const throttled = () => Number(/^nr_throttled (\d+)/m.exec(read("cpu.stat"))?.[1] ?? NaN);
  const measure = async () => {
    const [c0, t0, n0] = [cpuSeconds(pid, dirs), performance.now(), throttled()];
    await new Promise((r) => setTimeout(r, 3000));
    return { cores: (cpuSeconds(pid, dirs) - c0) / ((performance.now() - t0) / 1000), throttledPeriods: throttled() - n0 };
  };
  const slow = await measure();
  process.stderr.write(`limits: a busy guest at cpuMax 0.3: ${slow.cores.toFixed(2)} cores, ${slow.throttledPeriods} periods throttled\n`);
  assert.ok(slow.cores <= 0.45, `QEMU used ${slow.cores.toFixed(2)} cores under cpuMax 0.3`);
  assert.ok(slow.cores >= 0.15, `QEMU used only ${slow.cores.toFixed(2)} cores: is the guest's loop running?`);
  assert.ok(slow.throttledPeriods >= 10, `the group was throttled in ${slow.throttledPeriods} periods of 3 s`);

  // Raised live, through the API: the file changes at once, and the same loop takes its core.
  const raised = await d.client.setLimits("cpu", { cpuMax: 2, memoryMax: "1G" });
  assert.deepEqual([raised.limits?.cpuMax, raised.limits?.memoryMax], [2, 1024 * 1048576]);
  assert.equal(quota(), "200000");
  assert.equal(memory(), String(1024 * 1048576), "memoryMax changed live");
  const fast = await measure();
  process.stderr.write(`limits: the same at cpuMax 2 (changed live): ${fast.cores.toFixed(2)} cores\n`);
  assert.ok(fast.cores >= 0.55 && fast.cores >= 1.5 * slow.cores, `raised to 2 cores the loop used ${fast.cores.toFixed(2)}, against ${slow.cores.toFixed(2)} at 0.3`);

  // Too little for QEMU is refused before anything is written; `mvm limits` shows what is set and in effect.
  await assert.rejects(d.client.setLimits("cpu", { memoryMax: "300M" }), (e: Error & { code?: string; hint?: string }) => e.code === "INVALID_SIZE" && /at least 384M/.test(e.hint ?? ""));
  assert.equal(memory(), String(1024 * 1048576));
  const table = await d.cli(["limits", "cpu"]);
  assert.match(table.stdout, /^cpuMax\s+2 cores\s+2 cores in \S+\/mvm\/mvm-[0-9a-f]+$/m);
  assert.match(table.stdout, /^memoryMax\s+1G\s+1G in /m);
});
