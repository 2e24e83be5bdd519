// Connections that become raw two-way streams after an HTTP Upgrade:
//   GET /v1/vms/:ref/console  (Upgrade: mvm-console): the serial console, bytes both ways.
//   GET /v1/vms/:ref/exec     (Upgrade: mvm-exec): an interactive command. NDJSON both ways: the client
//     sends the request ({argv, env, cwd, user}) first, then {type:"stdin",data}, {type:"eof"},
//     {type:"signal",signal}; the daemon sends session, started, stdout, stderr, then exit (or error).
// A client that goes away takes its command with it.

import type { IncomingMessage, Server } from "node:http";
import { createInterface } from "node:readline";
import type { Duplex } from "node:stream";
import { errorResponse } from "./http-errors.js";
import type { VmManager } from "./vm-manager.js";

interface ExecStreamRequest {
  argv?: unknown;
  env?: Record<string, string>;
  cwd?: string;
  user?: string;
  timeoutMs?: number;
}

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
  let session: ReturnType<VmManager["exec"]> | undefined;
  socket.on("error", () => undefined);
  socket.on("close", () => session?.kill(9));
  lines.on("line", (line) => {
    let msg: Record<string, unknown>;
    try {
      msg = JSON.parse(line) as Record<string, unknown>;
    } catch {
      return fail(new Error("the exec stream carries one JSON object per line"));
    }
    if (!session) {
      const req = msg as ExecStreamRequest;
      if (!Array.isArray(req.argv) || req.argv.length === 0 || !req.argv.every((a) => typeof a === "string")) {
        return fail(new Error("the first line must be the request: {\"argv\": [...]}"));
      }
      try {
        session = manager.exec(ref, {
          argv: req.argv,
          env: req.env,
          cwd: req.cwd,
          user: req.user,
          timeoutMs: typeof req.timeoutMs === "number" && req.timeoutMs > 0 ? req.timeoutMs : undefined,
          stdin: true,
          onStdout: (b) => send({ type: "stdout", data: b.toString("base64") }),
          onStderr: (b) => send({ type: "stderr", data: b.toString("base64") }),
        });
      } catch (e) {
        return fail(e);
      }
      const s = session;
      send({ type: "session", id: String(s.id) });
      void s.started.then((pid) => pid !== undefined && send({ type: "started", pid }));
      s.result.then(
        (r) => {
          send({ type: "exit", ...r });
          socket.end();
        },
        (e: unknown) => fail(e),
      );
      return;
    }
    const s = session;
    if (msg.type === "stdin" && typeof msg.data === "string") {
      // Hold further input until the guest took this chunk: the agent's window is the backpressure.
      lines.pause();
      void s.write(Buffer.from(msg.data, "base64")).catch(() => undefined).finally(() => lines.resume());
    } else if (msg.type === "eof") {
      void s.end().catch(() => undefined);
    } else if (msg.type === "signal" && typeof msg.signal === "number") {
      s.kill(msg.signal);
    }
  });
}

export function serveUpgrades(server: Server, manager: VmManager): void {
  server.on("upgrade", (req: IncomingMessage, socket: Duplex) => {
    const m = /^\/v1\/vms\/([^/?]+)\/(console|exec)$/.exec(req.url ?? "");
    const kind = m?.[2];
    if (!m || req.headers.upgrade !== `mvm-${kind}`) {
      return refuse(socket, 404, { error: "NOT_FOUND", message: "no such upgrade", hint: "GET /v1/vms/NAME/console (Upgrade: mvm-console) or /v1/vms/NAME/exec (Upgrade: mvm-exec)" });
    }
    const ref = decodeURIComponent(m[1]!);
    if (kind === "console") serveConsole(ref, socket, manager);
    else serveExec(ref, socket, manager);
  });
}
