// The routes that watch the daemon rather than change it: GET /v1/events (event-routes.ts), GET /metrics
// (metrics.ts) and GET /v1/vms/:ref/stats (stats.ts), registered together from server.ts.

import type { FastifyInstance, FastifyRequest } from "fastify";
import { VmStatsSchema, type MvmEvent } from "../api/event-schemas.js";
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
  return metrics;
}
