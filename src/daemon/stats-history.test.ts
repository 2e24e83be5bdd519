// The daemon's stats history (stats-history.ts): the ring, the /proc parsers, the sampler over a fake /proc
// with a clock the test moves, and its two routes on a stand-in manager with the ownership rules.
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import type { Caller } from "../auth/caller.js";
import { NotFoundError } from "../errors.js";
import type { VmRecord } from "../store/vm-store.js";
import { checkSpec } from "../vmspec/vm-spec.js";
import type { HostStatsHistory, VmStatsHistory } from "../api/stats-schemas.js";
import { buildServer } from "./server.js";
import { parseCpuLine, parseMeminfo, Ring, StatsHistory } from "./stats-history.js";
import type { VmManager } from "./vm-manager.js";

const rec = (id: string, name: string, state: VmRecord["state"], extra: Partial<VmRecord> = {}): VmRecord => ({ id, name, spec: checkSpec({ name }), state, createdAt: "t", updatedAt: "t", ...extra });

/** A /proc with one QEMU per pid: its CPU ticks (utime, stime at 100 Hz) and RSS in kB; and the machine's. */
function fakeProc() {
  const root = mkdtempSync(join(tmpdir(), "mvm-history-"));
  const qemu = (pid: number, utime: number, stime: number, rssKb: number) => {
    mkdirSync(join(root, String(pid)), { recursive: true });
    // The command name holds a space and a parenthesis, as parseProcStat must cope with.
    writeFileSync(join(root, String(pid), "stat"), `${pid} (qemu (x) y) S 1 1 1 0 -1 0 0 0 0 0 ${utime} ${stime} 0 0 20 0 1 0 100 0 0\n`);
    writeFileSync(join(root, String(pid), "smaps_rollup"), `00400000-7ffd [rollup]\nRss:             ${rssKb} kB\nPss:             ${rssKb / 2} kB\n`);
  };
  const machine = (busy: number, idle: number, availKb: number) => {
    writeFileSync(join(root, "stat"), `cpu  ${busy} 0 0 ${idle} 0 0 0 0 0 0\ncpu0 1 2 3 4\n`);
    writeFileSync(join(root, "meminfo"), `MemTotal:        4000000 kB\nMemFree:          100 kB\nMemAvailable:    ${availKb} kB\n`);
  };
  return { root, qemu, machine, done: () => rmSync(root, { recursive: true, force: true }) };
}

test("a ring keeps the latest items, oldest first", () => {
  const r = new Ring<number>(3);
  assert.deepEqual([r.values(), r.last(), r.length], [[], undefined, 0]);
  for (const n of [1, 2]) r.push(n);
  assert.deepEqual([r.values(), r.last()], [[1, 2], 2]);
  for (const n of [3, 4, 5, 6, 7]) r.push(n);
  assert.deepEqual([r.values(), r.last(), r.length], [[5, 6, 7], 7, 3]);
  assert.throws(() => new Ring(0), RangeError);
});

test("/proc/stat's cpu line and /proc/meminfo parse", () => {
  assert.deepEqual(parseCpuLine("cpu  10 2 3 100 5 1 1 0 7 0\ncpu0 1 1 1 1\n"), { busy: 17, total: 122 });
  assert.equal(parseCpuLine("intr 1 2 3"), undefined);
  assert.deepEqual(parseMeminfo("MemTotal: 2048 kB\nMemAvailable: 1024 kB\n"), { memTotalBytes: 2048 * 1024, memAvailableBytes: 1024 * 1024 });
  assert.equal(parseMeminfo("MemTotal: 2048 kB\n"), undefined);
});

test("the sampler: CPU % between samples of the same QEMU, RSS, host totals, the window, removed VMs forgotten", async () => {
  const proc = fakeProc();
  let now = Date.parse("2026-12-02T10:00:00.000Z");
  let vms = [rec("aaa111", "a", "running", { pid: 101 }), rec("bbb222", "b", "running", { pid: 102 }), rec("ccc333", "c", "stopped")];
  const h = new StatsHistory({ list: () => vms, procRoot: proc.root, intervalMs: 5000, samples: 4, now: () => now });
  try {
    proc.qemu(101, 100, 50, 1000); // 1.5 s of CPU
    proc.qemu(102, 0, 0, 2000);
    proc.machine(1000, 9000, 3000000);
    await h.sample();
    now += 5000;
    proc.qemu(101, 300, 100, 1500); // +2.5 s in 5 s: 50%
    proc.qemu(102, 500, 500, 2048); // +10 s in 5 s: 200% (two cores)
    proc.machine(1500, 9500, 2000000); // 500 busy of 1000
    await h.sample();
    assert.deepEqual(h.vm("aaa111"), [
      { at: "2026-12-02T10:00:00.000Z", cpuSeconds: 1.5, rssBytes: 1000 * 1024 },
      { at: "2026-12-02T10:00:05.000Z", cpuSeconds: 4, cpuPercent: 50, rssBytes: 1500 * 1024 },
    ]);
    assert.equal(h.vm("bbb222")[1]?.cpuPercent, 200);
    assert.deepEqual(h.vm("ccc333"), [], "a VM without a QEMU has no samples");
    const host = h.hostSamples();
    assert.deepEqual(host[0], { at: "2026-12-02T10:00:00.000Z", vms: 2, cpuPercent: 0, rssBytes: 3000 * 1024, machine: { memTotalBytes: 4000000 * 1024, memAvailableBytes: 3000000 * 1024 } });
    assert.deepEqual(host[1], { at: "2026-12-02T10:00:05.000Z", vms: 2, cpuPercent: 250, rssBytes: 3548 * 1024, machine: { cpuPercent: 50, memTotalBytes: 4000000 * 1024, memAvailableBytes: 2000000 * 1024 } });
    // Cut to one VM (a user token's view): its figures alone, no machine.
    assert.deepEqual(h.hostSamples((id) => id === "aaa111")[1], { at: "2026-12-02T10:00:05.000Z", vms: 1, cpuPercent: 50, rssBytes: 1500 * 1024 });

    // a restarted under another pid: no rate against the old QEMU's seconds.
    vms = [rec("aaa111", "a", "running", { pid: 201 }), vms[1]!, vms[2]!];
    proc.qemu(201, 10, 0, 800);
    now += 5000;
    await h.sample();
    assert.deepEqual(h.vm("aaa111").at(-1), { at: "2026-12-02T10:00:10.000Z", cpuSeconds: 0.1, rssBytes: 800 * 1024 });

    // The ring holds 4; the window is 20 s: after two more rounds the first two samples are gone.
    for (let i = 0; i < 2; i++) {
      now += 5000;
      await h.sample();
    }
    assert.deepEqual(h.vm("aaa111").map((s) => s.at.slice(11, 19)), ["10:00:05", "10:00:10", "10:00:15", "10:00:20"]);
    assert.equal(h.hostSamples().length, 4);

    // b stops: its samples stay until they are out of the window; a is removed: forgotten at the next round.
    vms = [vms[0]!, rec("bbb222", "b", "stopped")];
    now += 5000;
    await h.sample();
    assert.equal(h.vm("bbb222").length, 4);
    assert.equal(h.hostSamples().at(-1)?.vms, 1);
    now += 25_000;
    vms = [rec("bbb222", "b", "stopped")];
    await h.sample();
    assert.deepEqual([h.vm("aaa111"), h.vm("bbb222")], [[], []]);
    // forget() drops a VM at once (the manager calls it on vm.removed).
    vms = [rec("ddd444", "d", "running", { pid: 102 })];
    await h.sample();
    assert.equal(h.vm("ddd444").length, 1);
    h.forget("ddd444");
    assert.deepEqual(h.vm("ddd444"), []);
  } finally {
    proc.done();
  }
});

test("a QEMU gone between the list and the read is skipped; rounds do not overlap; start and close leave no timer running", async () => {
  const proc = fakeProc();
  proc.machine(1, 1, 1);
  const h = new StatsHistory({ list: () => [rec("aaa111", "a", "running", { pid: 999 })], procRoot: proc.root, intervalMs: 10 });
  try {
    const [p1, p2] = [h.sample(), h.sample()];
    assert.equal(p1, p2, "a round running is shared");
    await p1;
    assert.deepEqual(h.vm("aaa111"), []);
    assert.equal(h.hostSamples()[0]?.vms, 0);
    h.start();
    // Every 10 ms: a few rounds, however loaded the machine (a deadline, not a fixed wait).
    for (const end = Date.now() + 5000; h.hostSamples().length < 4 && Date.now() < end; ) await new Promise((r) => setTimeout(r, 5));
    h.close();
    const n = h.hostSamples().length;
    assert.ok(n >= 4, `sampled ${n} times in 5 s every 10 ms`);
    await new Promise((r) => setTimeout(r, 40));
    assert.equal(h.hostSamples().length, n, "nothing sampled after close");
  } finally {
    proc.done();
  }
});

test("the history routes: a VM's samples and the host's; a user token sees its own VM's and its own totals, another's VM is NOT_FOUND", async () => {
  const proc = fakeProc();
  proc.machine(10, 90, 1000);
  const vms = [rec("aaa111", "a1", "running", { pid: 301, owner: "a" }), rec("bbb222", "b1", "running", { pid: 302, owner: "b" })];
  proc.qemu(301, 100, 0, 1024);
  proc.qemu(302, 200, 0, 4096);
  const history = new StatsHistory({ list: () => vms, procRoot: proc.root, intervalMs: 5000 });
  await history.sample();
  const notFound = (ref: string) => new NotFoundError(`no VM named ${ref}`, { hint: "list VMs with mvm ps -a", details: { vm: ref } });
  const m = {
    list: () => vms,
    get: (ref: string) => vms.find((v) => v.name === ref || v.id === ref) ?? (() => { throw notFound(ref); })(),
    statsHistory: history,
  } as unknown as VmManager;
  const callers: Record<string, Caller> = { a: { kind: "token", name: "a", role: "user" }, read: { kind: "token", name: "ro", role: "read" } };
  const app = buildServer(m, { version: "t", home: "/nonexistent" }, { callerOf: (req) => callers[String(req.headers["x-as"])] ?? { kind: "host-root" } });
  const get = (who: string, url: string) => app.inject({ method: "GET", url, headers: { "x-as": who } });
  try {
    const own = await get("a", "/v1/vms/a1/stats/history");
    assert.equal(own.statusCode, 200);
    const body = own.json<VmStatsHistory>();
    assert.deepEqual([body.id, body.name, body.intervalSeconds, body.windowSeconds, body.samples.length, body.samples[0]?.rssBytes, body.samples[0]?.cpuSeconds], ["aaa111", "a1", 5, 300, 1, 1024 * 1024, 1]);
    const others = await get("a", "/v1/vms/b1/stats/history");
    const absent = await get("a", "/v1/vms/zz/stats/history");
    assert.equal(others.statusCode, 404);
    assert.deepEqual(others.json(), { ...absent.json<object>(), message: "no VM named b1", details: { vm: "b1" } });
    assert.equal((await get("read", "/v1/vms/b1/stats/history")).statusCode, 200);

    const all = (await get("root", "/v1/host/stats/history")).json<HostStatsHistory>();
    assert.deepEqual([all.samples.length, all.samples[0]?.vms, all.samples[0]?.rssBytes, all.samples[0]?.machine?.memTotalBytes], [1, 2, 5120 * 1024, 4000000 * 1024]);
    assert.equal((await get("read", "/v1/host/stats/history")).json<HostStatsHistory>().samples[0]?.vms, 2);
    const mine = (await get("a", "/v1/host/stats/history")).json<HostStatsHistory>();
    assert.deepEqual(mine.samples[0], { at: all.samples[0]!.at, vms: 1, cpuPercent: 0, rssBytes: 1024 * 1024 });

    const doc = (await app.inject({ method: "GET", url: "/v1/openapi.json" })).json<{ paths: Record<string, { get?: { responses?: Record<string, unknown> } }> }>();
    assert.ok(doc.paths["/v1/vms/{ref}/stats/history"]?.get, "documented in the OpenAPI document");
    assert.ok(doc.paths["/v1/host/stats/history"]?.get);
  } finally {
    proc.done();
  }
});
