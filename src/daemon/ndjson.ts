// NDJSON responses: one JSON value per line, for streams of events (command output, progress).

import type { ServerResponse } from "node:http";
import type { Duplex } from "node:stream";
import type { FastifyReply } from "fastify";
import type { SessionEvent, TrackedSession } from "./session-registry.js";

export function ndjson(reply: FastifyReply): ServerResponse {
  reply.hijack();
  const raw = reply.raw;
  raw.writeHead(200, { "content-type": "application/x-ndjson" });
  return raw;
}

/** Writes one line; false when the peer's buffer is full (wait for "drain"). */
export const line = (out: ServerResponse | Duplex, value: unknown): boolean => out.writable && out.write(`${JSON.stringify(value)}\n`);

/**
 * Streams a command's events to a client until it ends, pausing the command while the client reads
 * slowly (so many MB of output never pile up in the daemon). With history, kept output comes first.
 */
export function followSession(t: TrackedSession, out: ServerResponse | Duplex, history: boolean): void {
  const off = t.subscribe((e: SessionEvent) => {
    const ok = line(out, e);
    if (e.type === "exit" || e.type === "error") {
      out.end();
      return;
    }
    if (!ok && out.writable) {
      out.once("drain", () => t.resume());
      return false;
    }
  }, history);
  out.on("close", off);
}
