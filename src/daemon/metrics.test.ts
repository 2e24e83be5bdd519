import assert from "node:assert/strict";
import { test } from "node:test";
import { checkSpec } from "../vmspec/vm-spec.js";
import type { VmRecord } from "../store/vm-store.js";
import type { QmpClient } from "../qemu/qmp-client.js";
import { withDeadline } from "../deadline.js";
import { EventBus } from "./events.js";
import { DaemonMetrics, type MetricsSource } from "./metrics.js";
import { parseBlockStats, parseProcStat, parseSmapsRollup, readVmStats } from "./stats.js";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseMetrics } from "../../test/support/prom-text.js";

const find = (text: string, name: string, labels: Record<string, string> = {}) =>
  parseMetrics(text).samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));

const rec = (id: string, name: string, state: VmRecord["state"], extra: Partial<VmRecord> = {}): VmRecord => ({ id, name, spec: checkSpec({ name }), state, createdAt: "t", updatedAt: "t", ...extra });

/** A QMP monitor that answers query-blockstats, or never answers at all. */
const qmp = (answer: "ok" | "hang"): QmpClient =>
  ({
    execute: (cmd: string, _args: unknown, o: { timeoutMs?: number }) => {
      assert.equal(cmd, "query-blockstats");
      if (answer === "hang") return withDeadline(new Promise(() => undefined), o, "QMP query-blockstats got no reply");
      return Promise.resolve([{ device: "", qdev: "/machine/peripheral/vd0/virtio-backend", "node-name": "disk0", stats: { rd_bytes: 4096, wr_bytes: 512, rd_operations: 8, wr_operations: 1, flush_operations: 2 } }]);
    },
  }) as unknown as QmpClient;

function source(vms: VmRecord[], monitors: Record<string, QmpClient>): MetricsSource {
  return {
    list: () => vms,
    qmpOf: (id: string) => monitors[id],
    pool: { stats: () => [{ template: "t1", parked: 2, takes: 5, misses: 1 }] },
    templates: { list: () => Promise.resolve([{ key: "t1", meta: { memoryMiB: 256 } }]) },
    events: new EventBus(10, 1),
  } as unknown as MetricsSource;
}

test("/proc and QMP figures parse: stat's times past a command name with spaces and parentheses, smaps_rollup, blockstats", () => {
  const stat = "4242 (qemu (x) y) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 3 0 12345 1000 200 ...";
  assert.deepEqual(parseProcStat(stat, 100), { userSeconds: 2.5, systemSeconds: 0.75 });
  assert.deepEqual(parseSmapsRollup("55d0-7ff [rollup]\nRss:              20480 kB\nPss:              10240 kB\nPss_Anon: 1 kB\n"), { rssBytes: 20480 * 1024, pssBytes: 10240 * 1024 });
  assert.equal(parseSmapsRollup("nothing here"), undefined);
  assert.deepEqual(parseBlockStats([{ device: "", qdev: "/machine/peripheral/vd1/virtio-backend", stats: { rd_bytes: 1, wr_bytes: 2, rd_operations: 3, wr_operations: 4, flush_operations: 5 } }, { device: "x" }]), [
    { device: "vd1", readBytes: 1, writeBytes: 2, readOps: 3, writeOps: 4, flushOps: 5 },
  ]);
});

test("a scrape holds each VM's state, CPU seconds, memory and block I/O, the daemon's VMs by state, pool and templates", async () => {
  // This test process stands in for QEMU: its /proc entries are real.
  const running = rec("aaa111", "web", "running", { pid: process.pid, boot: { how: "cold", reason: "r", readyMs: 812 }, timings: { startedAt: new Date(Date.now() - 5000).toISOString(), qmpMs: 40, helloMs: 700 } });
  const stopped = rec("bbb222", "old", "stopped");
  const m = new DaemonMetrics(() => source([running, stopped], { aaa111: qmp("ok") }));
  const text = await m.render();
  const { types } = parseMetrics(text);
  assert.deepEqual(find(text, "mvm_vm_state", { id: "aaa111", name: "web", state: "running" }).map((s) => s.value), [1]);
  assert.deepEqual(find(text, "mvm_vm_state", { id: "aaa111", state: "stopped" }).map((s) => s.value), [0]);
  assert.deepEqual(find(text, "mvm_vm_state", { id: "bbb222", state: "stopped" }).map((s) => s.value), [1]);
  assert.equal(find(text, "mvm_vm_ready_seconds", { id: "aaa111", how: "cold" })[0]?.value, 0.812);
  assert.equal(types.get("mvm_vm_cpu_seconds_total"), "counter");
  const cpu = find(text, "mvm_vm_cpu_seconds_total", { id: "aaa111" });
  assert.deepEqual(cpu.map((s) => s.labels.mode).sort(), ["system", "user"]);
  assert.ok(cpu.reduce((a, s) => a + s.value, 0) > 0, "this process has used some CPU");
  assert.ok(find(text, "mvm_vm_memory_rss_bytes", { id: "aaa111" })[0]!.value > 10 * 1048576, "a Node process's RSS");
  assert.ok(find(text, "mvm_vm_memory_pss_bytes", { id: "aaa111" })[0]!.value > 0);
  assert.ok(find(text, "mvm_vm_uptime_seconds", { id: "aaa111" })[0]!.value >= 5);
  assert.equal(find(text, "mvm_vm_block_read_bytes_total", { id: "aaa111", device: "vd0" })[0]?.value, 4096);
  assert.equal(find(text, "mvm_vm_block_flush_ops_total", { id: "aaa111", device: "vd0" })[0]?.value, 2);
  assert.equal(find(text, "mvm_vm_stats_up", { id: "aaa111", source: "qmp" })[0]?.value, 1);
  // A stopped VM has a state and no process figures.
  assert.equal(find(text, "mvm_vm_cpu_seconds_total", { id: "bbb222" }).length, 0);
  assert.equal(find(text, "mvm_vms", { state: "running" })[0]?.value, 1);
  assert.equal(find(text, "mvm_vms", { state: "crashed" })[0]?.value, 0);
  assert.equal(find(text, "mvm_pool_parked", { template: "t1" })[0]?.value, 2);
  assert.equal(find(text, "mvm_pool_takes_total", { template: "t1" })[0]?.value, 5);
  assert.equal(find(text, "mvm_templates")[0]?.value, 1);
  assert.equal(find(text, "mvm_template_memory_bytes", { template: "t1" })[0]?.value, 256 * 1048576);
  // A second scrape does not add the counters up again: they are the figures read now.
  assert.equal(find(await m.render(), "mvm_vm_block_read_bytes_total", { id: "aaa111" })[0]?.value, 4096);
});

test("a QEMU that does not answer QMP costs the scrape its deadline, not more; its other figures are still there", async () => {
  const hung = rec("ccc333", "hung", "running", { pid: process.pid });
  const m = new DaemonMetrics(() => source([hung], { ccc333: qmp("hang") }), { qmpTimeoutMs: 200 });
  const t0 = performance.now();
  const text = await m.render();
  const took = performance.now() - t0;
  assert.ok(took >= 190 && took < 1500, `took ${took} ms`);
  assert.equal(find(text, "mvm_vm_stats_up", { id: "ccc333", source: "qmp" })[0]?.value, 0);
  assert.equal(find(text, "mvm_vm_stats_up", { id: "ccc333", source: "proc" })[0]?.value, 1);
  assert.equal(find(text, "mvm_vm_block_read_bytes_total", { id: "ccc333" }).length, 0);
  assert.ok(find(text, "mvm_vm_memory_rss_bytes", { id: "ccc333" })[0]!.value > 0);
});

test("the whole gather has a deadline too: VMs not in by then are reported missing", async () => {
  const hung = rec("ddd444", "hung2", "running", { pid: process.pid });
  const m = new DaemonMetrics(() => source([hung], { ddd444: qmp("hang") }), { qmpTimeoutMs: 5000, gatherDeadlineMs: 150 });
  const t0 = performance.now();
  const text = await m.render();
  assert.ok(performance.now() - t0 < 1000);
  assert.equal(find(text, "mvm_vm_state", { id: "ddd444", state: "running" })[0]?.value, 1);
  assert.equal(find(text, "mvm_vm_stats_up", { id: "ddd444", source: "qmp" })[0]?.value, 0);
});

test("network figures: a bridged VM's tap counters from sysfs; a user network says it has none; a gone tap says why", async () => {
  const root = mkdtempSync(join(tmpdir(), "mvm-net-"));
  try {
    const dir = join(root, "mvt-aaa", "statistics");
    mkdirSync(dir, { recursive: true });
    for (const [f, v] of Object.entries({ rx_bytes: 1500, tx_bytes: 3000, rx_packets: 10, tx_packets: 20 })) writeFileSync(join(dir, f), `${v}\n`);
    const bridged = rec("eee555", "br", "running", { pid: process.pid, bridged: { network: "lan", ip: "10.0.0.2", prefix: 24, gateway: "10.0.0.1", tap: "mvt-aaa" } });
    const s = await readVmStats(bridged, undefined, { netRoot: root });
    assert.deepEqual(s.net, { available: true, tap: "mvt-aaa", rxBytes: 1500, txBytes: 3000, rxPackets: 10, txPackets: 20 });
    assert.match(s.unavailable.join(), /block: this daemon holds no QMP connection/);
    const gone = await readVmStats({ ...bridged, bridged: { ...bridged.bridged!, tap: "mvt-gone" } }, undefined, { netRoot: root });
    assert.equal(gone.net?.available, false);
    assert.match(gone.net?.reason ?? "", /tap's counters could not be read/);
    const user = await readVmStats(rec("fff666", "u", "running", { pid: process.pid, spec: checkSpec({ name: "u", network: "user" }) }), undefined);
    assert.deepEqual([user.net?.available, /user-mode network/.test(user.net?.reason ?? "")], [false, true]);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
