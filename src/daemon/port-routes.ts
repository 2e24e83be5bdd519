// Guest ports and directory watches over the API (docs/api.md):
//   GET /v1/vms/:ref/ports/:port (Upgrade: mvm-port): one TCP connection to the guest port, raw bytes
//     both ways (upgrades.ts routes it here). Refused before the upgrade with the usual JSON error: 400 for
//     a bad port, 404, 409 (not running, or AGENT_CAPABILITY: an older guest), 502 GUEST_PORT (refused).
//   GET /v1/vms/:ref/ports/:port/ws: the same over WebSocket, bytes in binary messages (websocket.ts).
//   GET /v1/vms/:ref/files/watch?path=&recursive=: NDJSON, {type:"started"} then one line per event.
// Backpressure is the agent's windows end to end: a client that reads slowly stops the guest side.

import type { Duplex } from "node:stream";
import type { FastifyInstance } from "fastify";
import { WebSocket, type RawData } from "ws";
import { WatchEventSchema, WatchQuery } from "../api/port-schemas.js";
import { route } from "../api/routes.js";
import { errorResponse } from "./http-errors.js";
import { line, ndjson } from "./ndjson.js";
import { openGuestPort, watchGuestPath } from "./guest-ports.js";
import type { VmManager } from "./vm-manager.js";

/** Plain pipes both ways; either side failing or closing tears the other down. */
function splice(client: Duplex, guest: Duplex): void {
  client.pipe(guest);
  guest.pipe(client);
  const down = () => {
    client.destroy();
    guest.destroy();
  };
  guest.on("error", down);
  client.on("error", down);
  client.on("close", () => guest.destroy());
  guest.on("close", () => client.writableEnded || client.end());
}

/** The raw upgrade: the guest connection is opened first, so a refusal is an HTTP error, not a 101. */
export async function servePortUpgrade(manager: VmManager, ref: string, port: string, address: string | undefined, socket: Duplex, refuse: (status: number, body: Record<string, unknown>) => void): Promise<void> {
  socket.pause();
  let guest: Duplex;
  try {
    guest = await openGuestPort(manager, ref, port, { address });
  } catch (e) {
    const { status, body } = errorResponse(e);
    return refuse(status, body);
  }
  if (socket.destroyed) return void guest.destroy();
  socket.write("HTTP/1.1 101 Switching Protocols\r\nUpgrade: mvm-port\r\nConnection: Upgrade\r\n\r\n");
  splice(socket, guest);
  socket.resume();
}

/** The WebSocket variant: binary messages both ways; the guest side ending closes with 1000. */
export async function servePortWebSocket(ws: WebSocket, manager: VmManager, ref: string, port: string, address: string | undefined, closeWithError: (ws: WebSocket, e: unknown) => void): Promise<void> {
  const early: Buffer[] = [];
  const hold = (d: RawData) => early.push(toBuffer(d));
  ws.on("message", hold);
  let guest: Duplex;
  try {
    guest = await openGuestPort(manager, ref, port, { address });
  } catch (e) {
    return closeWithError(ws, e);
  }
  if (ws.readyState !== WebSocket.OPEN) return void guest.destroy();
  ws.off("message", hold);
  const toGuest = (b: Buffer) => {
    if (!guest.write(b)) {
      ws.pause();
      guest.once("drain", () => ws.resume());
    }
  };
  early.forEach(toGuest);
  ws.on("message", (d: RawData) => toGuest(toBuffer(d)));
  guest.on("data", (b: Buffer) => {
    ws.send(b, { binary: true });
    // The guest side waits while a slow browser has more than 1 MiB to take.
    if (ws.bufferedAmount > 1024 * 1024) {
      guest.pause();
      const timer = setInterval(() => {
        if (ws.bufferedAmount < 512 * 1024 || ws.readyState !== WebSocket.OPEN) {
          clearInterval(timer);
          guest.resume();
        }
      }, 20);
    }
  });
  guest.on("end", () => ws.readyState === WebSocket.OPEN && ws.close(1000, "the guest closed the connection"));
  guest.on("error", (e) => closeWithError(ws, e));
  ws.once("close", () => guest.destroy());
}

const toBuffer = (d: RawData): Buffer => (Buffer.isBuffer(d) ? d : Array.isArray(d) ? Buffer.concat(d) : Buffer.from(d));

export function registerWatchRoute(app: FastifyInstance, manager: VmManager): void {
  const doc = route({ summary: "watch a guest directory: NDJSON, started, then create/write/remove/rename/chmod events (names relative to path), overflow, limit, error", answer: "ndjson", query: WatchQuery, events: WatchEventSchema });
  app.get<{ Params: { ref: string }; Querystring: { path: string; recursive?: string } }>("/v1/vms/:ref/files/watch", doc, async (req, reply) => {
    // Started before the answer: a path that is not a directory is a plain 4xx.
    const watch = await watchGuestPath(manager, req.params.ref, req.query.path, { recursive: req.query.recursive === "true" });
    const out = ndjson(reply);
    out.on("close", () => watch.close());
    line(out, { type: "started", path: req.query.path });
    try {
      for await (const event of watch) {
        // The client's slowness holds the iterator, which holds the guest's credit: nothing piles up here.
        if (!line(out, event) && out.writable) await new Promise((r) => { out.once("drain", r); out.once("close", r); });
        if (!out.writable) break;
      }
    } catch (e) {
      line(out, { type: "error", ...errorResponse(e).body });
    }
    out.end();
  });
}
