// mvm's E2B backend on the TCP listener (docs/e2b.md): takes the requests routing.ts says are E2B's and
// answers them — the control plane (sandboxes.ts) and each sandbox's envd: Connect services for processes
// and files, /files, /health. Everything else is left to mvm's own API.

import type { IncomingMessage, ServerResponse } from "node:http";
import type { TokenAccess } from "../daemon/access.js";
import type { VmManager } from "../daemon/vm-manager.js";
import type { VmRecord } from "../store/vm-store.js";
import { AccessTokens, signatureValid } from "./access-token.js";
import { ConnectStream } from "./connect-stream.js";
import { decodeSingleEnvelope, MAX_ENVELOPE_BYTES, parseMessage } from "./envelope.js";
import { connectError, E2bError, sandboxNotFound } from "./errors.js";
import { serveFiles } from "./files-http.js";
import { FilesystemService } from "./filesystem-service.js";
import { readBody, sendJson } from "./http-io.js";
import { ProcessService, type SandboxRef } from "./process-service.js";
import { ENVD_PORT, routeOf } from "./routing.js";
import { isSandbox, serveControl, type ControlContext } from "./sandboxes.js";
import { proxyToGuestPort } from "./port-proxy.js";
import { watchDir } from "./watch-service.js";

const STREAMING = new Set(["process.Process/Start", "process.Process/Connect", "filesystem.Filesystem/WatchDir"]);
const USER_PATTERN = /^[a-z_][a-z0-9_-]{0,31}$/;

/** The user of an envd request: Basic auth's (RPC) or ?username= (/files); the default is root. */
function userOf(req: IncomingMessage, url: URL): string {
  const auth = req.headers.authorization;
  let user = url.searchParams.get("username") ?? "";
  if (auth?.startsWith("Basic ")) user = Buffer.from(auth.slice(6), "base64").toString("utf8").split(":")[0] ?? "";
  if (!user) return "root";
  if (!USER_PATTERN.test(user)) throw new E2bError(`invalid user name ${JSON.stringify(user)}`, "invalid_argument");
  return user;
}

export class E2bBackend {
  private readonly access: AccessTokens;
  private readonly processes: ProcessService;
  private readonly files: FilesystemService;
  private readonly control: ControlContext;

  constructor(private readonly manager: VmManager, tokens: TokenAccess, home: string) {
    this.access = new AccessTokens(home);
    this.processes = new ProcessService(manager);
    this.files = new FilesystemService(manager);
    this.control = { manager, tokens, access: this.access };
    // A sandbox removed (killed, or at its end time) takes its process table with it.
    manager.events.subscribe((p) => {
      const e = p.event as { type: string; vm?: { id: string } };
      if (e.type === "vm.removed" && e.vm) this.processes.forget(e.vm.id);
    });
  }

  /** Serves the request if it is E2B's (false: it is not); `taken` is told first, before any answer. */
  handle(req: IncomingMessage, res: ServerResponse, taken?: () => void): boolean {
    const route = routeOf(req.url, req.headers);
    if (!route) return false;
    taken?.();
    const done = route.plane === "control" ? serveControl(this.control, req, res) : route.plane === "signed" ? this.serveSigned(req, res) : this.serveEnvd(route.sandboxId, route.port, req, res);
    done.catch((e: unknown) => {
      const { status, code, message } = connectError(e);
      if (!res.headersSent) sendJson(res, status, { code, message });
      else res.destroy();
    });
    return true;
  }

  private sandbox(id: string): VmRecord | undefined {
    return this.manager.list().find((r) => r.name === id && isSandbox(r) && r.state === "running" && this.manager.connected(r.id));
  }

  /** A signed /files URL: the live sandbox whose token the signature was made with (none: 401). */
  private async serveSigned(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "http://sandbox");
    const hit = this.manager.list().find((r) => isSandbox(r) && r.state === "running" && this.manager.connected(r.id) && this.signedFor(r.name, req, url));
    if (!hit) return sendJson(res, 401, { code: 401, message: "the URL's signature is not valid for any running sandbox, or has expired" });
    return serveFiles(this.manager, { vmId: hit.id, user: userOf(req, url) }, req, res, url);
  }

  private signedFor(id: string, req: IncomingMessage, url: URL): boolean {
    const q = url.searchParams;
    return signatureValid({ path: q.get("path") ?? "", op: req.method === "GET" ? "read" : "write", user: q.get("username") ?? "", signature: q.get("signature") ?? undefined, expiration: q.get("signature_expiration") ?? undefined }, this.access.tokenOf(id));
  }

  private async serveEnvd(id: string, port: number, req: IncomingMessage, res: ServerResponse): Promise<void> {
    const rec = this.sandbox(id);
    if (!rec) {
      const { status, body } = sandboxNotFound(id);
      return sendJson(res, status, body);
    }
    const url = new URL(req.url ?? "/", "http://sandbox");
    if (port !== ENVD_PORT) return proxyToGuestPort(this.manager, rec.id, id, port, req, res);
    if (url.pathname === "/health") return sendJson(res, 204, undefined);
    const user = userOf(req, url);
    const signed = url.pathname === "/files" && url.searchParams.has("signature");
    const allowed = signed ? this.signedFor(id, req, url) : this.access.verify(id, typeof req.headers["x-access-token"] === "string" ? req.headers["x-access-token"] : undefined);
    if (!allowed) {
      const message = signed ? "the URL's signature is not valid, or has expired" : "send the sandbox's envdAccessToken as X-Access-Token";
      if (url.pathname === "/files") return sendJson(res, 401, { code: 401, message });
      return sendJson(res, 401, { code: "unauthenticated", message });
    }
    const sbx: SandboxRef = { vmId: rec.id, user };
    if (url.pathname === "/files") return serveFiles(this.manager, sbx, req, res, url);
    const method = url.pathname.slice(1);
    if (req.method !== "POST") return sendJson(res, 405, { code: "unimplemented", message: `${req.method} ${url.pathname}: Connect calls are POSTs` });
    if (STREAMING.has(method)) return this.stream(method, sbx, req, res);
    try {
      const msg = parseMessage(await readBody(req, MAX_ENVELOPE_BYTES));
      sendJson(res, 200, await this.unary(method, sbx, msg));
    } catch (e) {
      const { status, code, message } = connectError(e);
      sendJson(res, status, { code, message });
    }
  }

  private async stream(method: string, sbx: SandboxRef, req: IncomingMessage, res: ServerResponse): Promise<void> {
    try {
      if (!/^application\/connect\+json/.test(req.headers["content-type"] ?? "")) throw new E2bError("a streaming call's content type is application/connect+json", "invalid_argument");
      const msg = decodeSingleEnvelope(await readBody(req, MAX_ENVELOPE_BYTES + 5));
      if (method === "process.Process/Start") return this.processes.start(sbx, msg, req, res);
      if (method === "process.Process/Connect") return this.processes.connect(sbx, msg, req, res);
      return await watchDir(this.manager, sbx, msg, req, res);
    } catch (e) {
      // Streams answer 200 and carry their error in the end-stream message, as Connect's streaming protocol has it.
      if (res.headersSent) return void res.destroy();
      new ConnectStream(req, res).end(e);
    }
  }

  private async unary(method: string, sbx: SandboxRef, msg: Record<string, unknown>): Promise<Record<string, unknown>> {
    const [service, name] = method.split("/");
    if (service === "filesystem.Filesystem" && name) return this.files.call(name, sbx, msg);
    if (service !== "process.Process") throw new E2bError(`no service ${service}`, "unimplemented");
    switch (name) {
      case "List":
        return this.processes.list(sbx);
      case "SendInput":
        return this.processes.sendInput(sbx, msg);
      case "CloseStdin":
        return this.processes.closeStdin(sbx, msg);
      case "SendSignal":
        return this.processes.sendSignal(sbx, msg);
      case "Update":
        return this.processes.update(sbx, msg);
      default:
        throw new E2bError(`process.Process/${name} is not implemented by mvm's envd`, "unimplemented");
    }
  }
}
