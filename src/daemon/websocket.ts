// The serial console and interactive exec over WebSocket, for browsers (which cannot send the custom
// Upgrade protocols of upgrades.ts), with the same messages:
//   GET /v1/vms/:ref/console/ws: console bytes in binary messages both ways (a client's text message is
//     sent as its UTF-8 bytes); a text message from the daemon is JSON: {type:"dropped",bytes} (console
//     output this client was too slow for) or {type:"error",...} just before it closes.
//   GET /v1/vms/:ref/exec/ws: one JSON object per text message, each what one NDJSON line of Upgrade:
//     mvm-exec carries: the client's first is the exec request, then stdin/eof/signal/resize; the daemon
//     sends session, started, stdout, stderr, then exit (or error).
// An `Upgrade: websocket` request is run through Fastify's routing like any request (new ServerResponse
// on its socket), so every hook applies to it (the caller of request-caller.ts, and whatever checks it):
// one refused there gets a plain HTTP answer and its socket closed. Past the handshake an mvm error is a
// {type:"error"} message and the close code 4000 + its HTTP status (4404 NOT_FOUND, 4409 WRONG_STATE...),
// the reason its code and message, so a browser, which never sees a refused handshake's status, knows why.
// Each socket is bounded: messages up to maxPayload (1009 beyond, by ws), console input read only as fast
// as QEMU takes it, output paused (exec) or dropped and counted (console) while over HIGH_WATER bytes wait
// to be sent, a ping every pingMs and the socket ended when no pong came by the next one. A client that
// goes away takes its command with it.

import { ServerResponse, type IncomingMessage } from "node:http";
import type { Socket } from "node:net";
import type { Duplex } from "node:stream";
import type { FastifyInstance } from "fastify";
import { WebSocketServer, WebSocket, type RawData } from "ws";
import { requireJsonObject } from "../api/check.js";
import { requireMayCreate, type Caller } from "../auth/caller.js";
import { route } from "../api/routes.js";
import { ExecBodySchema, ExecEventSchema } from "../api/command-schemas.js";
import { BadRequestError, errorFromBody } from "../errors.js";
import { applyExecMessage, startStreamExec } from "./exec-stream.js";
import { PortParams, PortQuery } from "../api/port-schemas.js";
import { servePortWebSocket } from "./port-routes.js";
import { errorResponse } from "./http-errors.js";
import type { SessionEvent, TrackedSession } from "./session-registry.js";
import type { VmManager } from "./vm-manager.js";

export interface WebSocketOptions {
  /** The largest message a client may send, bytes (default 1 MiB); a larger one closes the socket with 1009. */
  wsMaxPayload?: number;
  /** How often the daemon pings each socket, ms (default 30 s); one that has not answered by the next ping is ended. */
  wsPingMs?: number;
}

export const WS_MAX_PAYLOAD = 1024 * 1024;
/** Bytes waiting to go to a client beyond which its source is paused (exec) or skipped (console). */
export const HIGH_WATER = 1024 * 1024;

/** Close codes: 1000 the command ended, 1003 a binary message to exec, 1009 a message over maxPayload, 4000 + status an mvm error. */
export const closeCodeOf = (status: number): number => 4000 + status;

const UPGRADE = Symbol("mvm.websocket");
type Pending = { socket: Duplex; head: Buffer };
const pendingOf = (req: IncomingMessage): Pending | undefined => (req as IncomingMessage & { [UPGRADE]?: Pending })[UPGRADE];

/**
 * Takes an `Upgrade: websocket` request from the server's upgrade event and routes it as Fastify routes any
 * request, with a response written to its socket: hooks run, refusals are HTTP answers. Only GET.
 */
export function dispatchWebSocket(app: FastifyInstance, req: IncomingMessage, socket: Duplex, head: Buffer): void {
  (req as IncomingMessage & { [UPGRADE]?: Pending })[UPGRADE] = { socket, head };
  socket.on("error", () => undefined);
  const res = new ServerResponse(req);
  res.shouldKeepAlive = false;
  res.assignSocket(socket as Socket);
  // Answered over HTTP (refused, or a route that is no WebSocket): the socket serves nothing else.
  res.once("finish", () => {
    socket.end();
    setTimeout(() => socket.destroy(), 1000).unref();
  });
  app.routing(req, res);
}

/** A close reason: at most 123 bytes of UTF-8, cut on a character. */
function reasonOf(text: string): string {
  let r = text;
  while (Buffer.byteLength(r) > 123) r = r.slice(0, -1);
  return r;
}

const sendJson = (ws: WebSocket, v: unknown, cb?: (e?: Error) => void): void => {
  if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(v), cb);
};

/** Sends the error as a message, then closes with 4000 + its status. */
function closeWithError(ws: WebSocket, e: unknown): void {
  const { status, body } = errorResponse(e);
  sendJson(ws, { type: "error", ...body });
  if (ws.readyState === WebSocket.OPEN) ws.close(closeCodeOf(status), reasonOf(`${String(body.error)}: ${String(body.message)}`));
}

/** Pings every `ms`; a socket with no pong since the last ping is ended (no close handshake: it is not answering). */
function keepAlive(ws: WebSocket, ms: number): void {
  let answered = true;
  ws.on("pong", () => (answered = true));
  const timer = setInterval(() => {
    if (!answered) return ws.terminate();
    answered = false;
    ws.ping();
  }, ms);
  ws.once("close", () => clearInterval(timer));
}

function serveConsole(ws: WebSocket, ref: string, manager: VmManager): void {
  let dropped = 0;
  let con: ReturnType<VmManager["openConsole"]>;
  try {
    con = manager.openConsole(ref, (b) => {
      if (ws.readyState !== WebSocket.OPEN) return;
      // The console is the VM's, shared with its log and other viewers: a slow client misses output (and is
      // told how much) instead of holding up the guest's serial port.
      if (ws.bufferedAmount > HIGH_WATER) {
        dropped += b.length;
        return;
      }
      if (dropped) sendJson(ws, { type: "dropped", bytes: dropped });
      dropped = 0;
      ws.send(b, { binary: true });
    });
  } catch (e) {
    return closeWithError(ws, e);
  }
  // Keystrokes as fast as QEMU takes them: the socket is paused while its console channel is full.
  ws.on("message", (data: RawData) => {
    if (!con.write(toBuffer(data), () => ws.resume())) ws.pause();
  });
  ws.once("close", () => con.close());
}

function serveExec(ws: WebSocket, ref: string, manager: VmManager): void {
  let t: TrackedSession | undefined;
  let off = () => undefined as void;
  ws.once("close", () => {
    off();
    if (t && !t.result) t.session.kill(9);
  });
  ws.on("message", (data: RawData, isBinary: boolean) => {
    if (isBinary) return ws.close(1003, "exec messages are JSON text, one object each");
    let msg: Record<string, unknown>;
    try {
      msg = requireJsonObject(parse(toBuffer(data).toString("utf8")), "a message of the exec stream");
    } catch (e) {
      return closeWithError(ws, e);
    }
    if (t) return applyExecMessage(t, msg, ws);
    try {
      t = startStreamExec(manager, ref, msg);
    } catch (e) {
      return closeWithError(ws, e);
    }
    sendJson(ws, { type: "session", id: t.id });
    off = follow(ws, t);
  });
}

/** Sends the command's events, pausing it while more than HIGH_WATER bytes wait to go to the client. */
function follow(ws: WebSocket, t: TrackedSession): () => void {
  let paused = false;
  const sent = () => {
    if (paused && ws.bufferedAmount < HIGH_WATER / 2) {
      paused = false;
      t.resume();
    }
  };
  return t.subscribe((e: SessionEvent) => {
    if (ws.readyState !== WebSocket.OPEN) return;
    if (e.type === "exit") {
      sendJson(ws, e);
      ws.close(1000, "exit");
      return;
    }
    if (e.type === "error") {
      const { error, message } = e;
      sendJson(ws, e);
      ws.close(closeCodeOf(errorResponse(errorFromBody(undefined, e)).status), reasonOf(`${error}: ${message}`));
      return;
    }
    sendJson(ws, e, sent);
    if (ws.bufferedAmount > HIGH_WATER) {
      paused = true;
      return false;
    }
  }, false);
}

function parse(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    throw new BadRequestError("each message of the exec stream is one JSON object (a text message)", { hint: 'first {"argv":["sh"]}, then {"type":"stdin","data":BASE64}...' });
  }
}

const toBuffer = (d: RawData): Buffer => (Buffer.isBuffer(d) ? d : Array.isArray(d) ? Buffer.concat(d) : Buffer.from(d));

type Ref = { Params: { ref: string } };

/** The two WebSocket routes; each upgrades only a request dispatchWebSocket brought (others: BAD_REQUEST). */
export function registerWebSocketRoutes(app: FastifyInstance, manager: VmManager, o: WebSocketOptions = {}): void {
  const wss = new WebSocketServer({ noServer: true, maxPayload: o.wsMaxPayload ?? WS_MAX_PAYLOAD, perMessageDeflate: false, clientTracking: false });
  const upgrade = (serve: (ws: WebSocket, ref: string, manager: VmManager) => void) => (req: { raw: IncomingMessage; params: { ref: string }; caller: Caller }, reply: { hijack: () => void }) => {
    const pending = pendingOf(req.raw);
    if (!pending) throw new BadRequestError("this route is a WebSocket: send GET with Upgrade: websocket", { hint: "new WebSocket('ws://HOST/v1/vms/NAME/console/ws') in a browser; docs/api.md describes the messages" });
    // A stream runs commands (the console is a root shell), though its method is GET: not for a read token.
    requireMayCreate(req.caller, "open a VM's exec or console stream");
    reply.hijack();
    wss.handleUpgrade(req.raw, pending.socket, pending.head, (ws) => {
      ws.on("error", () => undefined);
      keepAlive(ws, o.wsPingMs ?? 30_000);
      serve(ws, req.params.ref, manager);
    });
  };
  const consoleDoc = route({ summary: "the serial console over WebSocket (Upgrade: websocket): bytes in binary messages both ways", answer: "upgrade", status: 101 });
  app.get<Ref>("/v1/vms/:ref/console/ws", consoleDoc, upgrade(serveConsole));
  const execDoc = route({ summary: "an interactive command over WebSocket (Upgrade: websocket): one JSON object per text message both ways, as the lines of Upgrade: mvm-exec", answer: "upgrade", status: 101, body: ExecBodySchema, validateBody: false, events: ExecEventSchema });
  app.get<Ref>("/v1/vms/:ref/exec/ws", execDoc, upgrade(serveExec));
  // A forwarded guest port (port-routes.ts): bytes in binary messages both ways.
  const portDoc = route({ summary: "one TCP connection to a guest port over WebSocket (Upgrade: websocket): bytes in binary messages both ways", answer: "upgrade", status: 101, params: PortParams, query: PortQuery });
  app.get<{ Params: { ref: string; port: string }; Querystring: { address?: string } }>("/v1/vms/:ref/ports/:port/ws", portDoc, (req, reply) =>
    upgrade((ws, ref, m) => void servePortWebSocket(ws, m, ref, req.params.port, req.query.address, closeWithError))(req, reply),
  );
}
