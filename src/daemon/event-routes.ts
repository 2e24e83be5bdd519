// GET /v1/events: the event bus (events.ts) as server-sent events. Each message carries the event's id
// (`id:`), its type (`event:`) and the event as JSON (`data:`). A client that reconnects with
// Last-Event-ID (or ?since=) gets what it missed from the ring buffer first, without a gap or a duplicate,
// or a `reset` message saying that some of it is gone. A comment every 15 s keeps proxies and idle timers
// from closing a quiet stream. A client that stops reading is cut off once its stream holds more than a
// bounded number of bytes or events unread (an `overflow` message, then the end), so no client can make
// the daemon hold memory without limit. Which events a caller sees goes through one function, `visible`.

import type { FastifyInstance, FastifyRequest } from "fastify";
import type { ServerResponse } from "node:http";
import { EVENT_TYPES, EventsQuery, MvmEventSchema, type MvmEvent } from "../api/event-schemas.js";
import { route } from "../api/routes.js";
import { BadRequestError } from "../errors.js";
import { typeFilter, UnknownEventTypes, vmOf, type EventBus, type Published } from "./events.js";

export interface EventStreamOptions {
  /**
   * Whether the caller of `req` may see this event (default: every event). The ownership rules replace it:
   * every event about a VM names the VM's id (vmOf), and this is the only place the stream decides.
   */
  visible?: (e: MvmEvent, req: FastifyRequest) => boolean;
  /** Between keep-alive comments (default 15 s). */
  keepAliveMs?: number;
  /** A client is cut off when more than this many bytes wait unsent to it (default 1 MiB, MVM_EVENTS_CLIENT_BYTES). */
  maxQueuedBytes?: number;
  /** ... or more than this many events were written while it was not reading (default 2,000, MVM_EVENTS_CLIENT_EVENTS). */
  maxQueuedEvents?: number;
}

const envNumber = (name: string): number | undefined => {
  const v = Number(process.env[name]);
  return Number.isFinite(v) && v > 0 ? v : undefined;
};

/** One SSE message. JSON has no raw newline, so the data is one line. */
export const sseMessage = (p: Published): string => `id: ${p.id}\nevent: ${p.event.type}\ndata: ${JSON.stringify(p.event)}\n\n`;

type Query = { Querystring: { vm?: string; types?: string; since?: string } };

export function registerEventRoutes(app: FastifyInstance, o: { bus: () => EventBus; vmId: (ref: string) => string } & EventStreamOptions): void {
  const visible = o.visible ?? (() => true);
  const keepAliveMs = o.keepAliveMs ?? 15000;
  const maxBytes = o.maxQueuedBytes ?? envNumber("MVM_EVENTS_CLIENT_BYTES") ?? 1024 * 1024;
  const maxEvents = o.maxQueuedEvents ?? envNumber("MVM_EVENTS_CLIENT_EVENTS") ?? 2000;
  const open = new Set<ServerResponse>();
  // A closing daemon ends its streams first: an open stream would otherwise hold the server's close.
  app.addHook("preClose", (done) => {
    for (const res of open) res.end();
    done();
  });

  const doc = route({
    summary: "server-sent events: VM state changes, VMs created and removed, commands started and ended, image imports and builds, snapshots; resume with Last-Event-ID",
    answer: "sse",
    query: EventsQuery,
    events: MvmEventSchema,
  });
  app.get<Query>("/v1/events", doc, (req, reply) => {
    let types: ((t: string) => boolean) | undefined;
    try {
      types = typeFilter(req.query.types, EVENT_TYPES);
    } catch (e) {
      if (!(e instanceof UnknownEventTypes)) throw e;
      throw new BadRequestError(`${e.message}`, { hint: `event types are ${EVENT_TYPES.join(", ")} (or a prefix such as vm.)`, details: { unknown: e.names } });
    }
    // Resolved once, when the stream opens: the VM's events keep coming by id after it is removed.
    const vm = req.query.vm === undefined ? undefined : o.vmId(req.query.vm);
    const header = req.headers["last-event-id"];
    const resumeFrom = typeof header === "string" && /^\d+$/.test(header.trim()) ? header.trim() : req.query.since;
    const since = resumeFrom === undefined ? undefined : Number(resumeFrom);
    const wanted = (e: MvmEvent) => (!types || types(e.type)) && (!vm || vmOf(e)?.id === vm) && visible(e, req);

    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, { "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache", connection: "keep-alive", "x-accel-buffering": "no" });
    open.add(res);
    let unread = 0;
    let cut = false;
    let lastSent = since ?? -1;
    const write = (chunk: string): void => {
      if (cut || res.destroyed || res.writableEnded) return;
      if (!res.write(chunk)) unread++;
      if (res.writableLength > maxBytes || unread > maxEvents) cutOff();
    };
    const send = (p: Published): void => {
      if (p.id <= lastSent) return;
      lastSent = p.id;
      if (wanted(p.event)) write(sseMessage(p));
    };
    const cutOff = (): void => {
      cut = true;
      stop();
      // Said once (bounded: one more message), then the end; a client that never reads is dropped after 5 s.
      res.end(`event: overflow\ndata: ${JSON.stringify({ type: "overflow", reason: `this client fell behind by more than ${maxEvents} events or ${maxBytes} bytes and was disconnected; reconnect with Last-Event-ID to resume` })}\n\n`);
      // The connection goes with the stream (not kept alive for another request).
      const socket = res.socket;
      res.once("finish", () => socket?.destroy());
      setTimeout(() => socket?.destroy(), 5000).unref();
    };
    res.on("drain", () => (unread = 0));

    const bus = o.bus();
    let off = (): void => undefined;
    const keepAlive = setInterval(() => write(": keep-alive\n\n"), keepAliveMs);
    keepAlive.unref();
    const stop = () => {
      off();
      clearInterval(keepAlive);
      open.delete(res);
    };
    res.on("close", stop);
    // Subscribed before the replay, so nothing published meanwhile is missed; lastSent drops duplicates.
    off = bus.subscribe(send);

    write(`retry: 1000\n: mvm events from ${bus.lastId + 1}\n\n`);
    if (since !== undefined) {
      const replay = bus.since(since);
      if (replay.gap) {
        const why = `events after id ${since} are not all kept: the daemon keeps its last ${bus.keep}, and a restarted daemon has none of the last one's`;
        write(`event: reset\ndata: ${JSON.stringify({ type: "reset", requested: since, oldest: replay.gap.oldest, reason: why })}\n\n`);
        lastSent = -1;
      }
      for (const p of replay.events) send(p);
    } else {
      lastSent = bus.lastId;
    }
  });
}
