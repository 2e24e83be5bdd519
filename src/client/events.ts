// The daemon's event stream (GET /v1/events, server-sent events) as an async iterator of parsed events.
// Each event carries its id; give the last one seen as `since` to resume after it (the daemon replays
// what it still keeps, or says `reset` when some of it is gone).

import type { IncomingMessage } from "node:http";
import type { EventType, MvmEvent } from "../api/event-schemas.js";

export type { EventType, MvmEvent };

/** What the stream yields: events with their id, and the stream's own notes (reset, overflow) without one. */
export type StreamedEvent =
  | (MvmEvent & { id: number })
  | { type: "reset"; requested: number; oldest: number | null; reason: string; id?: undefined }
  | { type: "overflow"; reason: string; id?: undefined };

export interface EventsOptions {
  /** Resume after this event id. Without it, only events from now on. */
  since?: number;
  /** Only events about this VM. */
  vm?: string;
  /** Only these types (or prefixes ending in '.', such as "vm."). */
  types?: string[];
  signal?: AbortSignal;
}

export function eventsPath(o: EventsOptions): string {
  const q = new URLSearchParams();
  if (o.since !== undefined) q.set("since", String(o.since));
  if (o.vm !== undefined) q.set("vm", o.vm);
  if (o.types?.length) q.set("types", o.types.join(","));
  const s = q.toString();
  return `/v1/events${s ? `?${s}` : ""}`;
}

/** One SSE message: its fields as the stream gave them. */
export interface SseMessage {
  id?: string;
  event?: string;
  data: string;
}

/** Splits an SSE byte stream into messages (comments and retry left out), as the EventSource spec reads it. */
export async function* parseSse(chunks: AsyncIterable<Buffer | string>): AsyncGenerator<SseMessage> {
  let buf = "";
  let msg: { id?: string; event?: string; data: string[] } = { data: [] };
  for await (const chunk of chunks) {
    buf += chunk.toString();
    let nl: number;
    while ((nl = buf.search(/\r\n|\n|\r/)) >= 0) {
      // A CR that ends the chunk may be half of a CRLF: wait for the next byte.
      if (buf[nl] === "\r" && nl === buf.length - 1) break;
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + (buf.startsWith("\r\n", nl) ? 2 : 1));
      if (line === "") {
        if (msg.data.length || msg.event !== undefined) yield { id: msg.id, event: msg.event, data: msg.data.join("\n") };
        msg = { data: [] };
        continue;
      }
      if (line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
      if (field === "data") msg.data.push(value);
      else if (field === "id") msg.id = value;
      else if (field === "event") msg.event = value;
    }
  }
}

/** The parsed events of a response from GET /v1/events. */
export async function* readEvents(res: IncomingMessage, signal?: AbortSignal): AsyncGenerator<StreamedEvent> {
  try {
    for await (const m of parseSse(res)) {
      const value = JSON.parse(m.data) as StreamedEvent;
      yield m.id !== undefined && /^\d+$/.test(m.id) ? ({ ...value, id: Number(m.id) } as StreamedEvent) : value;
    }
  } catch (e) {
    // An abort ends the iteration quietly: that is how a caller stops following.
    if (!signal?.aborted && (e as { name?: string }).name !== "AbortError") throw e;
  } finally {
    res.destroy();
  }
}
