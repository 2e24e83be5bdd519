// GET /metrics in Prometheus' text format (prom-client): per VM its state, boot timings, QEMU's CPU time,
// memory, disk I/O and tap counters (stats.ts), and per daemon its HTTP requests (counted and timed by an
// onResponse hook), VMs by state, the warm pool, templates and the event stream. Figures are read at each
// scrape, every VM at once, each QMP call bounded (stats.ts) and the whole gather bounded too: a QEMU that
// hangs shows as mvm_vm_stats_up{source="qmp"} 0, it does not hang the scrape. Scrapes that overlap share
// one gather.

import type { FastifyInstance } from "fastify";
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import { route } from "../api/routes.js";
import type { VmState } from "../vm/state.js";
import type { VmRecord } from "../store/vm-store.js";
import type { VmManager } from "./vm-manager.js";
import { readVmStats, QMP_TIMEOUT_MS, type VmStats } from "./stats.js";

const STATES: VmState[] = ["created", "starting", "running", "paused", "stopping", "stopped", "crashed", "suspended"];

/** The longest a scrape waits for all VMs' figures; what is not in by then is reported missing. */
const GATHER_DEADLINE_MS = 2000;

export interface MetricsOptions {
  qmpTimeoutMs?: number;
  gatherDeadlineMs?: number;
}

/** What metrics() reads of the manager: a test may hand in less than a VmManager. */
export type MetricsSource = Pick<VmManager, "list" | "qmpOf" | "pool" | "templates" | "events">;

export class DaemonMetrics {
  readonly registry = new Registry();
  private readonly requests: Counter<"method" | "route" | "status">;
  private readonly latency: Histogram<"method" | "route" | "status">;
  private readonly g: Record<string, Gauge<string>>;
  private readonly c: Record<string, Counter<string>>;
  private inFlight?: Promise<string>;

  constructor(
    private readonly source: () => MetricsSource,
    private readonly o: MetricsOptions = {},
  ) {
    const r = this.registry;
    collectDefaultMetrics({ register: r, prefix: "mvm_daemon_" });
    this.requests = new Counter({ name: "mvm_http_requests_total", help: "HTTP requests answered, by method, route (its pattern) and status", labelNames: ["method", "route", "status"], registers: [r] });
    this.latency = new Histogram({ name: "mvm_http_request_duration_seconds", help: "time to answer an HTTP request (a stream: until it ended)", labelNames: ["method", "route", "status"], buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10, 60], registers: [r] });
    const vm = ["id", "name"];
    const gauge = (name: string, help: string, labelNames: string[] = vm) => new Gauge({ name, help, labelNames, registers: [r] });
    const counter = (name: string, help: string, labelNames: string[] = vm) => new Counter({ name, help, labelNames, registers: [r] });
    this.g = {
      state: gauge("mvm_vm_state", "1 for the state the VM is in, 0 for the others", ["id", "name", "state"]),
      ready: gauge("mvm_vm_ready_seconds", "the last start: start request to ready, by how it started (cold, clone, pool, snapshot, resume)", ["id", "name", "how"]),
      qmpReady: gauge("mvm_vm_qmp_ready_seconds", "the last start: QEMU's spawn to its QMP monitor ready"),
      hello: gauge("mvm_vm_hello_seconds", "the last start: QEMU's spawn to the guest agent's hello"),
      uptime: gauge("mvm_vm_uptime_seconds", "since the running start of a running or paused VM"),
      rss: gauge("mvm_vm_memory_rss_bytes", "QEMU's resident memory (/proc/PID/smaps_rollup Rss)"),
      pss: gauge("mvm_vm_memory_pss_bytes", "QEMU's proportional set size (shared pages, such as a template's RAM, split between their users)"),
      up: gauge("mvm_vm_stats_up", "1 if the VM's figures from this source (proc, qmp, tap) were read at this scrape, 0 if they could not be", ["id", "name", "source"]),
      vms: gauge("mvm_vms", "VMs by state", ["state"]),
      parked: gauge("mvm_pool_parked", "QEMUs parked in the warm pool, by template", ["template"]),
      templates: gauge("mvm_templates", "memory templates kept in the cache", []),
      templateMemory: gauge("mvm_template_memory_bytes", "a template's guest RAM", ["template"]),
      subscribers: gauge("mvm_event_subscribers", "clients following GET /v1/events", []),
      lastEvent: gauge("mvm_event_last_id", "the id of the last event published", []),
    };
    this.c = {
      cpu: counter("mvm_vm_cpu_seconds_total", "QEMU's CPU time, vCPUs included (/proc/PID/stat utime, stime)", ["id", "name", "mode"]),
      readBytes: counter("mvm_vm_block_read_bytes_total", "bytes read by the guest from a disk (QMP query-blockstats)", ["id", "name", "device"]),
      writeBytes: counter("mvm_vm_block_write_bytes_total", "bytes written by the guest to a disk", ["id", "name", "device"]),
      readOps: counter("mvm_vm_block_read_ops_total", "read operations on a disk", ["id", "name", "device"]),
      writeOps: counter("mvm_vm_block_write_ops_total", "write operations on a disk", ["id", "name", "device"]),
      flushOps: counter("mvm_vm_block_flush_ops_total", "flush operations on a disk", ["id", "name", "device"]),
      rxBytes: counter("mvm_vm_network_rx_bytes_total", "bytes the host received on a bridged VM's tap (what the guest sent); user networks have none", ["id", "name", "tap"]),
      txBytes: counter("mvm_vm_network_tx_bytes_total", "bytes the host sent on the VM's tap (what the guest received)", ["id", "name", "tap"]),
      rxPackets: counter("mvm_vm_network_rx_packets_total", "packets the host received on the VM's tap", ["id", "name", "tap"]),
      txPackets: counter("mvm_vm_network_tx_packets_total", "packets the host sent on the VM's tap", ["id", "name", "tap"]),
      takes: counter("mvm_pool_takes_total", "VM starts served by a parked QEMU, by template", ["template"]),
      misses: counter("mvm_pool_misses_total", "clone starts that found no parked QEMU, by template", ["template"]),
    };
  }

  /** Counts and times every answered request (route: its pattern, so /v1/vms/:ref is one series). */
  hook(app: FastifyInstance): void {
    app.addHook("onResponse", (req, reply, done) => {
      const labels = { method: req.method, route: req.routeOptions.url ?? "(no route)", status: String(reply.statusCode) };
      this.requests.inc(labels);
      this.latency.observe(labels, reply.elapsedTime / 1000);
      done();
    });
  }

  /** The text of a scrape. Overlapping scrapes share one. */
  render(): Promise<string> {
    this.inFlight ??= this.gather()
      .then(() => this.registry.metrics())
      .finally(() => (this.inFlight = undefined));
    return this.inFlight;
  }

  private async gather(): Promise<void> {
    const m = this.source();
    const vms = m.list();
    const deadline = this.o.gatherDeadlineMs ?? GATHER_DEADLINE_MS;
    const qmpTimeoutMs = Math.min(this.o.qmpTimeoutMs ?? QMP_TIMEOUT_MS, deadline);
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<undefined>((r) => (timer = setTimeout(() => r(undefined), deadline)));
    const stats = await Promise.all(vms.map((rec) => Promise.race([readVmStats(rec, m.qmpOf(rec.id), { qmpTimeoutMs }).catch(() => undefined), late])));
    clearTimeout(timer);
    const templates = await Promise.race([m.templates.list().catch(() => undefined), new Promise<undefined>((r) => setTimeout(() => r(undefined), 500).unref())]);
    for (const x of [...Object.values(this.g), ...Object.values(this.c)]) x.reset();
    vms.forEach((rec, i) => this.setVm(rec, stats[i]));
    for (const s of STATES) this.g.vms!.set({ state: s }, vms.filter((v) => v.state === s).length);
    for (const p of m.pool.stats()) {
      this.g.parked!.set({ template: p.template }, p.parked);
      this.c.takes!.inc({ template: p.template }, p.takes);
      this.c.misses!.inc({ template: p.template }, p.misses);
    }
    if (templates) {
      this.g.templates!.set(templates.length);
      for (const t of templates) this.g.templateMemory!.set({ template: t.key }, t.meta.memoryMiB * 1048576);
    }
    this.g.subscribers!.set(m.events.subscribers);
    this.g.lastEvent!.set(m.events.lastId);
  }

  private setVm(rec: VmRecord, s: VmStats | undefined): void {
    const vm = { id: rec.id, name: rec.name };
    for (const state of STATES) this.g.state!.set({ ...vm, state }, rec.state === state ? 1 : 0);
    if (rec.boot?.readyMs !== undefined) this.g.ready!.set({ ...vm, how: rec.boot.how }, rec.boot.readyMs / 1000);
    if (rec.timings?.qmpMs !== undefined) this.g.qmpReady!.set(vm, rec.timings.qmpMs / 1000);
    if (rec.timings?.helloMs !== undefined) this.g.hello!.set(vm, rec.timings.helloMs / 1000);
    if (rec.state !== "running" && rec.state !== "paused") return;
    if (!s) {
      // Not in by the scrape's deadline.
      for (const source of ["proc", "qmp"]) this.g.up!.set({ ...vm, source }, 0);
      return;
    }
    if (s.uptimeSeconds !== undefined) this.g.uptime!.set(vm, s.uptimeSeconds);
    this.g.up!.set({ ...vm, source: "proc" }, s.cpu && s.memory ? 1 : 0);
    if (s.cpu) {
      this.c.cpu!.inc({ ...vm, mode: "user" }, s.cpu.userSeconds);
      this.c.cpu!.inc({ ...vm, mode: "system" }, s.cpu.systemSeconds);
    }
    if (s.memory) {
      this.g.rss!.set(vm, s.memory.rssBytes);
      if (s.memory.pssBytes !== undefined) this.g.pss!.set(vm, s.memory.pssBytes);
    }
    this.g.up!.set({ ...vm, source: "qmp" }, s.block ? 1 : 0);
    for (const b of s.block ?? []) {
      const l = { ...vm, device: b.device };
      this.c.readBytes!.inc(l, b.readBytes);
      this.c.writeBytes!.inc(l, b.writeBytes);
      this.c.readOps!.inc(l, b.readOps);
      this.c.writeOps!.inc(l, b.writeOps);
      this.c.flushOps!.inc(l, b.flushOps);
    }
    if (s.net?.tap) this.g.up!.set({ ...vm, source: "tap" }, s.net.available ? 1 : 0);
    if (s.net?.available && s.net.tap) {
      const l = { ...vm, tap: s.net.tap };
      this.c.rxBytes!.inc(l, s.net.rxBytes ?? 0);
      this.c.txBytes!.inc(l, s.net.txBytes ?? 0);
      this.c.rxPackets!.inc(l, s.net.rxPackets ?? 0);
      this.c.txPackets!.inc(l, s.net.txPackets ?? 0);
    }
  }
}

/** GET /metrics, and the request counting behind it. */
export function registerMetricsRoutes(app: FastifyInstance, metrics: DaemonMetrics): void {
  metrics.hook(app);
  app.get("/metrics", route({ summary: "Prometheus metrics (text format 0.0.4): per VM state, boot times, QEMU CPU seconds, RSS/PSS, disk I/O, tap bytes; per daemon requests, latencies, VMs by state, warm pool, templates", answer: "text" }), async (_req, reply) => {
    const text = await metrics.render();
    return reply.header("content-type", metrics.registry.contentType).send(text);
  });
}
