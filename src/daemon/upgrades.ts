// Connections that become raw two-way streams after an HTTP Upgrade:
//   GET /v1/vms/:ref/console  (Upgrade: mvm-console): the serial console, bytes both ways.
//   GET /v1/vms/:ref/exec     (Upgrade: mvm-exec): an interactive command. NDJSON both ways: the client
//     sends the request ({argv, env, cwd, user, timeoutMs, tty: {rows, cols}}) first, then
//     {type:"stdin",data}, {type:"eof"}, {type:"signal",signal}, {type:"resize",rows,cols}; the daemon
//     sends session, started, stdout, stderr, then exit (or error). With tty, all output is stdout.
//   Upgrade: websocket (browsers): GET /v1/vms/:ref/console/ws and /exec/ws, the same messages (websocket.ts).
// A client that goes away takes its command with it.

import type { IncomingMessage, Server } from "node:http";
import { createInterface } from "node:readline";
import type { Duplex } from "node:stream";
import { errorResponse } from "./http-errors.js";
import { applyExecMessage, startStreamExec } from "./exec-stream.js";
import { followSession } from "./ndjson.js";
import { servePortUpgrade } from "./port-routes.js";
import type { TrackedSession } from "./session-registry.js";
import type { VmManager } from "./vm-manager.js";
import type { Listener, RequestLog } from "./request-log.js";
import { requireJsonObject } from "../api/check.js";
import { EXEC_BODY_LIMIT } from "../api/routes.js";
import { BadRequestError, BodyTooLargeError, RouteNotFoundError } from "../errors.js";

function refuse(socket: Duplex, status: number, body: Record<string, unknown>): void {
  socket.end(`HTTP/1.1 ${status} Error\r\ncontent-type: application/json\r\nconnection: close\r\n\r\n${JSON.stringify(body)}`);
}

const accept = (socket: Duplex, protocol: string) => socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: ${protocol}\r\nConnection: Upgrade\r\n\r\n`);

function serveConsole(ref: string, socket: Duplex, manager: VmManager): void {
  let con: ReturnType<VmManager["openConsole"]>;
  try {
    con = manager.openConsole(ref, (b) => socket.write(b));
  } catch (e) {
    const { status, body } = errorResponse(e);
    return refuse(socket, status, body);
  }
  accept(socket, "mvm-console");
  socket.on("data", (b: Buffer) => con.write(b));
  socket.on("end", () => socket.end()); // the client is done: so is the console (no half-open socket left)
  socket.on("close", () => con.close());
  socket.on("error", () => con.close());
}

function serveExec(ref: string, socket: Duplex, manager: VmManager): void {
  try {
    manager.get(ref); // a missing VM is a plain 404, before the upgrade
  } catch (e) {
    const { status, body } = errorResponse(e);
    return refuse(socket, status, body);
  }
  accept(socket, "mvm-exec");
  const send = (v: unknown) => socket.writable && socket.write(`${JSON.stringify(v)}\n`);
  const fail = (e: unknown) => {
    send({ type: "error", ...errorResponse(e).body });
    socket.end();
  };
  const lines = createInterface({ input: socket });
  let t: TrackedSession | undefined;
  socket.on("error", () => undefined);
  socket.on("close", () => t?.result || t?.session.kill(9));
  // A line is held whole until its newline: one that never ends is cut off at the exec body's limit.
  let partial = 0;
  socket.on("data", (b: Buffer) => {
    const nl = b.lastIndexOf(10);
    partial = nl < 0 ? partial + b.length : b.length - nl - 1;
    if (partial > EXEC_BODY_LIMIT) {
      lines.close();
      fail(new BodyTooLargeError(`a line of the exec stream is over ${EXEC_BODY_LIMIT} bytes`, { hint: "send stdin in chunks, one {type:\"stdin\",data} line each" }));
    }
  });
  // A client that ends its side before it asked for anything gets the connection closed (not held open).
  lines.on("close", () => t || socket.end());
  lines.on("line", (line) => {
    let msg: Record<string, unknown>;
    try {
      msg = requireJsonObject(JSON.parse(line), "a line of the exec stream");
    } catch (e) {
      return fail(e instanceof SyntaxError ? new BadRequestError("the exec stream carries one JSON object per line") : e);
    }
    if (!t) {
      try {
        t = startStreamExec(manager, ref, msg);
      } catch (e) {
        return fail(e);
      }
      send({ type: "session", id: t.id });
      followSession(t, socket, false);
      return;
    }
    // Hold further input while the guest takes a chunk of stdin: the agent's window is the backpressure.
    applyExecMessage(t, msg, lines);
  });
}

/** Upgrade: mvm-port (port-routes.ts): one TCP connection to a guest port. */
function upgradePort(req: IncomingMessage, socket: Duplex, m: RegExpExecArray, manager: VmManager, guard?: UpgradeGuard): void {
  let ref: string;
  let port: string;
  try {
    ref = decodeURIComponent(m[1]!);
    port = decodeURIComponent(m[2]!);
  } catch {
    const { status, body } = errorResponse(new BadRequestError(`the VM reference or port in ${JSON.stringify(req.url)} is not valid percent-encoding`));
    return refuse(socket, status, body);
  }
  const address = new URLSearchParams(m[3] ?? "").get("address") ?? undefined;
  if (guard) {
    const id = guard(req, socket, ref);
    if (id === undefined) return;
    ref = id;
  }
  void servePortUpgrade(manager, ref, port, address, socket, (status, body) => refuse(socket, status, body));
}

/** Who may open a stream and on which VM (src/daemon/access.ts): the VM's id, or undefined once it refused. */
export type UpgradeGuard = (req: IncomingMessage, socket: Duplex, ref: string) => string | undefined;

/** onWebSocket: what takes `Upgrade: websocket` requests (websocket.ts: through Fastify's routing, its hooks included). */
export function serveUpgrades(server: Server, manager: VmManager, onWebSocket?: (req: IncomingMessage, socket: Duplex, head: Buffer) => void, guard?: UpgradeGuard, log?: { to: RequestLog; listener: Listener }): void {
  server.on("upgrade", (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    log?.to.followUpgrade(req, socket, log.listener);
    if (onWebSocket && req.headers.upgrade?.toLowerCase() === "websocket") return onWebSocket(req, socket, head);
    // What the client sent right behind its request (the exec request, console input) came with it: it
    // is the stream's first bytes, put back in front of the rest.
    if (head.length) socket.unshift(head);
    const pm = /^\/v1\/vms\/([^/?]+)\/ports\/([^/?]+)(?:\?(.*))?$/.exec(req.url ?? "");
    if (pm && req.headers.upgrade === "mvm-port") return upgradePort(req, socket, pm, manager, guard);
    const m = /^\/v1\/vms\/([^/?]+)\/(console|exec)$/.exec(req.url ?? "");
    const kind = m?.[2];
    if (!m || req.headers.upgrade !== `mvm-${kind}`) {
      const { status, body } = errorResponse(new RouteNotFoundError("no such upgrade", { hint: "GET /v1/vms/NAME/console (Upgrade: mvm-console) or /v1/vms/NAME/exec (Upgrade: mvm-exec)" }));
      return refuse(socket, status, body);
    }
    let ref: string;
    try {
      ref = decodeURIComponent(m[1]!);
    } catch {
      const { status, body } = errorResponse(new BadRequestError(`the VM reference in ${JSON.stringify(req.url)} is not valid percent-encoding`, { hint: "encode it with encodeURIComponent" }));
      return refuse(socket, status, body);
    }
    if (guard) {
      const id = guard(req, socket, ref);
      if (id === undefined) return;
      ref = id;
    }
    if (kind === "console") serveConsole(ref, socket, manager);
    else serveExec(ref, socket, manager);
  });
}
