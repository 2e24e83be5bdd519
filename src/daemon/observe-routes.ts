// The routes that watch the daemon rather than change it: GET /v1/events (event-routes.ts), GET /metrics
// (metrics.ts), GET /v1/vms/:ref/stats (stats.ts) and the last minutes' samples, GET
// /v1/vms/:ref/stats/history and GET /v1/host/stats/history (stats-history.ts), registered together from
// server.ts.

import type { FastifyInstance, FastifyRequest } from "fastify";
import { VmStatsSchema, type MvmEvent } from "../api/event-schemas.js";
import { HostStatsHistorySchema, VmStatsHistorySchema, type HostStatsHistory, type VmStatsHistory } from "../api/stats-schemas.js";
import { mayUseVm } from "../auth/ownership.js";
import { route } from "../api/routes.js";
import { registerEventRoutes, type EventStreamOptions } from "./event-routes.js";
import { DaemonMetrics, registerMetricsRoutes } from "./metrics.js";
import { readVmStats } from "./stats.js";
import type { VmManager } from "./vm-manager.js";

/** Whether the caller of a request may see an event (the ownership rules' hook; default: every event). */
export type EventVisibility = (e: MvmEvent, req: FastifyRequest) => boolean;

export function registerObserveRoutes(app: FastifyInstance, manager: VmManager, o: { visibleEvent?: EventVisibility; events?: EventStreamOptions } = {}): DaemonMetrics {
  // The manager is read when a request comes, not now (a test's stand-in manager may have no event bus).
  registerEventRoutes(app, { bus: () => manager.events, vmId: (ref) => manager.get(ref).id, ...o.events, visible: o.visibleEvent ?? o.events?.visible });
  const metrics = new DaemonMetrics(() => manager);
  registerMetricsRoutes(app, metrics);
  app.get<{ Params: { ref: string } }>("/v1/vms/:ref/stats", route({ summary: "one VM's figures now: QEMU's CPU seconds, RSS/PSS, disk I/O (QMP), tap bytes, uptime, boot timings; what could not be read is listed in unavailable", answer: "json", response: VmStatsSchema }), (req) => {
    const rec = manager.get(req.params.ref);
    return readVmStats(rec, manager.qmpOf(rec.id));
  });
  // :ref is resolved among a user token's own VMs before this runs (access.ts), as for /stats.
  const vmHistoryDoc = route({ summary: "one VM's CPU and memory over the last 5 minutes, sampled by the daemon every 5 s from /proc (oldest first)", answer: "json", response: VmStatsHistorySchema });
  app.get<{ Params: { ref: string } }>("/v1/vms/:ref/stats/history", vmHistoryDoc, (req): VmStatsHistory => {
    const rec = manager.get(req.params.ref);
    const h = manager.statsHistory;
    return { id: rec.id, name: rec.name, intervalSeconds: h.intervalMs / 1000, windowSeconds: h.windowMs / 1000, samples: h.vm(rec.id) };
  });
  const hostHistoryDoc = route({ summary: "the VMs' CPU and memory summed, and the machine's, over the last 5 minutes (a user token: its own VMs' totals, no machine figures)", answer: "json", response: HostStatsHistorySchema });
  app.get("/v1/host/stats/history", hostHistoryDoc, (req): HostStatsHistory => {
    const h = manager.statsHistory;
    const caller = req.caller;
    let only: ((id: string) => boolean) | undefined;
    if (caller?.kind === "token" && caller.role === "user") {
      const mine = new Set(manager.list().filter((r) => mayUseVm(caller, r.owner)).map((r) => r.id));
      only = (id) => mine.has(id);
    }
    return { intervalSeconds: h.intervalMs / 1000, windowSeconds: h.windowMs / 1000, samples: h.hostSamples(only) };
  });
  return metrics;
}
