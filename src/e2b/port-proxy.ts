// sandbox.getHost(port): HTTP to `<port>-<sandboxId>.<domain>` (or with E2b-Sandbox-Port) reaches the
// guest's port over the agent's TCP forward, with no guest network device. Each request gets its own
// forwarded connection (Connection: close to the guest); the answer is relayed with its status and headers.
// Like E2B's default public traffic, it needs no token: the sandbox id (80 random bits) is the secret.

import { request, type IncomingMessage, type ServerResponse } from "node:http";
import type { VmManager } from "../daemon/vm-manager.js";
import { connectError } from "./errors.js";
import { sendJson } from "./http-io.js";

const HOP_BY_HOP = new Set(["connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "te", "trailer"]);

export async function proxyToGuestPort(manager: VmManager, vmId: string, sandboxId: string, port: number, req: IncomingMessage, res: ServerResponse): Promise<void> {
  if (!Number.isInteger(port) || port < 1 || port > 65535) return sendJson(res, 400, { sandboxId, message: `port ${port} is not a TCP port`, code: 400 });
  let socket;
  try {
    const { agent } = manager.agentFor(vmId, "exec");
    socket = (await agent.forward(port)).stream;
  } catch (e) {
    // Nothing listening (or an older guest agent): E2B's answer for a port that is not open is a 502.
    return sendJson(res, 502, { sandboxId, message: `The sandbox is running but port is not open: ${connectError(e).message}`, port, code: 502 });
  }
  const headers = Object.fromEntries(Object.entries(req.headers).filter(([k]) => !HOP_BY_HOP.has(k) && !k.startsWith("e2b-sandbox-")));
  const out = request({ method: req.method, path: req.url, headers: { ...headers, connection: "close" }, createConnection: () => socket }, (answer) => {
    const back = Object.fromEntries(Object.entries(answer.headers).filter(([k]) => !HOP_BY_HOP.has(k)));
    res.writeHead(answer.statusCode ?? 502, back as Record<string, string | string[]>);
    answer.pipe(res);
  });
  out.on("error", (e) => {
    if (!res.headersSent) sendJson(res, 502, { sandboxId, message: `the guest's port ${port} answered no HTTP: ${e.message}`, port, code: 502 });
    else res.destroy();
  });
  res.on("close", () => socket.destroy());
  req.pipe(out);
}
