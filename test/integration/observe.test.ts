// Events, metrics and stats of a real guest under TCG: its start and stop as events, and /metrics and
// /v1/vms/:ref/stats with QEMU's real CPU seconds and memory from /proc and its disk's reads from QMP
// query-blockstats after the guest read 4 MiB from it.
import assert from "node:assert/strict";
import { request } from "node:http";
import { truncate, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import type { StreamedEvent } from "../../src/client/events.js";
import { parseMetrics } from "../support/prom-text.js";
import { startTestDaemon } from "../support/daemon.js";

const scrape = (socketPath: string) =>
  new Promise<string>((resolve, reject) => {
    request({ socketPath, path: "/metrics" }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (d: string) => (body += d));
      res.on("end", () => (res.statusCode === 200 ? resolve(body) : reject(new Error(`/metrics: ${res.statusCode}: ${body}`))));
    })
      .on("error", reject)
      .end();
  });

test("a real guest: start and stop as events; /metrics and stats with QEMU's CPU seconds, RSS and QMP block stats", { timeout: 180_000 }, async (t) => {
  const d = await startTestDaemon(t);
  const disk = join(d.home, "data.img");
  await writeFile(disk, "");
  await truncate(disk, 16 * 1048576);
  const abort = new AbortController();
  const seen: StreamedEvent[] = [];
  const following = (async () => {
    for await (const e of d.client.events({ signal: abort.signal })) seen.push(e);
  })();
  await new Promise((r) => setTimeout(r, 300));
  const vm = await d.client.create({ name: "obs", disks: [disk], boot: "cold" });
  await d.client.start("obs");
  const r = await d.client.exec("obs", ["dd", "if=/dev/vda", "of=/dev/null", "bs=1M", "count=4", "iflag=direct"], { timeoutMs: 60_000 });
  assert.equal(r.status, 0);

  const samples = parseMetrics(await scrape(join(d.home, "mvm.sock"))).samples;
  const one = (name: string, labels: Record<string, string> = {}) => samples.filter((s) => s.name === name && s.labels.id === vm.id && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  const cpu = one("mvm_vm_cpu_seconds_total").reduce((a, s) => a + s.value, 0);
  const rss = one("mvm_vm_memory_rss_bytes")[0]?.value ?? 0;
  const read = one("mvm_vm_block_read_bytes_total", { device: "vd0" })[0]?.value ?? 0;
  process.stderr.write(`observe: QEMU cpu ${cpu.toFixed(2)} s, rss ${(rss / 1048576).toFixed(1)} MiB, vd0 read ${(read / 1048576).toFixed(2)} MiB\n`);
  assert.equal(one("mvm_vm_state", { state: "running" })[0]?.value, 1);
  assert.ok(cpu > 0.2, `a TCG boot costs QEMU more than 0.2 s of CPU (got ${cpu})`);
  assert.ok(rss > 32 * 1048576, `QEMU's RSS is more than 32 MiB (got ${rss})`);
  assert.ok(read >= 4 * 1048576, `QMP counts the 4 MiB the guest read (got ${read})`);
  assert.ok((one("mvm_vm_block_read_ops_total", { device: "vd0" })[0]?.value ?? 0) >= 4);
  assert.equal(one("mvm_vm_stats_up", { source: "qmp" })[0]?.value, 1);

  const stats = await d.client.stats("obs");
  assert.ok(stats.cpu && stats.cpu.totalSeconds >= cpu, "CPU time only grows");
  assert.ok(stats.memory && stats.memory.pssBytes! > 0);
  assert.ok((stats.block?.find((b) => b.device === "vd0")?.readBytes ?? 0) >= 4 * 1048576);
  assert.equal(stats.net?.available, false);

  await d.client.stop("obs");
  const until = Date.now() + 10_000;
  while (!seen.some((e) => e.type === "vm.state" && e.vm.id === vm.id && e.to === "stopped") && Date.now() < until) await new Promise((res) => setTimeout(res, 50));
  abort.abort();
  await following;
  const states = seen.flatMap((e) => (e.type === "vm.state" && e.vm.id === vm.id ? [`${e.from}→${e.to}`] : []));
  assert.deepEqual(states, ["created→starting", "starting→running", "running→stopping", "stopping→stopped"]);
  assert.ok(seen.some((e) => e.type === "command.exit" && e.vm.id === vm.id && e.status === 0), "the dd's exit");
});
