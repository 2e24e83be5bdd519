// Disk limits on a real guest under TCG: a VM with two disks and diskBps 5M writes 50 MiB to its second
// disk (dd oflag=direct: no page cache between the guest and QEMU) in no less than 9 s, timed on the host;
// `mvm limits` raises the limit live to 50M and the same write is at least 3× faster. The limit is one
// throttle group for both disks; inspect and `mvm limits` show it in effect. A bridged VM's netBps 1M holds
// what it sends to the host to that rate (tc on its tap, through its ifb), and removed live it does not.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { truncate, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { startTestDaemon, type TestDaemon } from "../support/daemon.js";

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
