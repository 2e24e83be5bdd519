// The network listener (issue 13): the same API as on the Unix socket, on HOST:PORT, beside it. Every
// request needs a token (src/daemon/access.ts); the rules are the Unix socket's with the token's caller.
//   - Loopback unless told otherwise: a non-loopback address without TLS (tlsCert + tlsKey) is refused at
//     start unless insecureListen says so; the tokens would cross the network in clear text.
//   - TLS through node:https (the certificate and key files read once, at start).
//   - Against slow clients: the request's headers must be in within 10 s (headersTimeout, checked every
//     second; a connection that sends nothing has as long for its first request), a TLS handshake within 10 s, an idle keep-alive connection closes after 30 s; a JSON body has
//     its own 30 s (request-body.ts). Streamed bodies (file contents, stdin) and streams take as long as they take.
//   - close(): stop taking connections, let requests under way finish for a few seconds, then end the rest.

import { readFileSync } from "node:fs";
import { createServer as createHttpServer, type IncomingMessage, type RequestListener, type Server, type ServerOptions } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { Socket } from "node:net";
import type { FastifyInstance, FastifyServerFactory } from "fastify";
import { InvalidArgumentError } from "../errors.js";
import type { TokenAccess } from "./access.js";
import { isLoopback, parseListen, type DaemonConfig, type ListenAddress } from "./daemon-config.js";
import type { BodyOptions } from "./request-body.js";
import { buildServer } from "./server.js";
import type { RequestLog } from "./request-log.js";
import { dashboard } from "./dashboard.js";
import { E2bBackend } from "../e2b/backend.js";
import type { VmManager } from "./vm-manager.js";

export interface ListenPlan {
  address: ListenAddress;
  tls?: { cert: Buffer; key: Buffer };
  /** Why a non-loopback address without TLS is served anyway (insecureListen), for the log. */
  insecure: boolean;
}

export interface Timeouts {
  headersMs: number;
  handshakeMs: number;
  keepAliveMs: number;
}

export const DEFAULT_TIMEOUTS: Timeouts = { headersMs: 10_000, handshakeMs: 10_000, keepAliveMs: 30_000 };

/** What to listen on, from the settings in effect; InvalidArgumentError for what must not be served. */
export function planListen(c: DaemonConfig): ListenPlan | undefined {
  if (!c.listen) return undefined;
  const address = parseListen(c.listen);
  if (!!c.tlsCert !== !!c.tlsKey) throw new InvalidArgumentError(`TLS needs both a certificate and a key; only the ${c.tlsCert ? "certificate" : "key"} is set`, { hint: "give --tls-cert FILE and --tls-key FILE (or mvm config set tlsCert|tlsKey PATH)" });
  const read = (what: string, path: string) => {
    try {
      return readFileSync(path);
    } catch (e) {
      throw new InvalidArgumentError(`cannot read the TLS ${what} ${path}: ${(e as Error).message}`, { hint: "give a PEM file the daemon can read" });
    }
  };
  const tls = c.tlsCert && c.tlsKey ? { cert: read("certificate", c.tlsCert), key: read("key", c.tlsKey) } : undefined;
  if (!tls && !isLoopback(address.host) && !c.insecureListen) {
    throw new InvalidArgumentError(`refusing to listen on ${c.listen} without TLS: ${address.host} is not a loopback address, and tokens would cross the network in clear text`, {
      hint: "give --tls-cert FILE --tls-key FILE, listen on 127.0.0.1, or say --insecure-listen (mvm config set insecureListen true) if something else encrypts the traffic",
      details: { listen: c.listen },
    });
  }
  return { address, tls, insecure: !tls && !isLoopback(address.host) };
}

/** Fastify's server: http or https, with the timeouts above. */
function serverFactory(plan: ListenPlan, t: Timeouts, sockets: Set<Socket>, e2b?: E2bBackend, requestLog?: RequestLog): FastifyServerFactory {
  const dash = dashboard();
  return (fastify: RequestListener) => {
    // E2B's requests (its control plane's paths, envd's sandbox headers: src/e2b/routing.ts) go to the E2B backend,
    // the web dashboard's files (/, /dashboard/: src/daemon/dashboard.ts) are served as they are, the rest go to mvm's API.
    const handler: RequestListener = (req, res) => {
      if (e2b?.handle(req, res, () => requestLog?.follow(req, res, "tcp", "e2b"))) return;
      return void (dash.handle(req, res) || fastify(req, res));
    };
    const http: ServerOptions = { headersTimeout: t.headersMs, requestTimeout: 0, keepAliveTimeout: t.keepAliveMs, connectionsCheckingInterval: Math.min(1000, t.headersMs) };
    const server: Server = plan.tls ? (createHttpsServer({ ...http, cert: plan.tls.cert, key: plan.tls.key, handshakeTimeout: t.handshakeMs }, handler)) : createHttpServer(http, handler);
    server.on("connection", (s: Socket) => {
      sockets.add(s);
      s.once("close", () => sockets.delete(s));
    });
    // Node's headersTimeout starts with a request's first byte: a connection that never sends one would stay
    // for ever. Until its first request (or upgrade) comes, a connection (for TLS: once its handshake is done)
    // has headersMs.
    const untilFirstRequest = (s: Socket) => s.setTimeout(t.headersMs, () => s.destroy());
    server.on(plan.tls ? "secureConnection" : "connection", untilFirstRequest);
    server.on("request", (req: IncomingMessage) => req.socket.setTimeout(0));
    server.on("upgrade", (req: IncomingMessage) => req.socket.setTimeout(0));
    return server;
  };
}

export interface NetworkListener {
  app: FastifyInstance;
  /** Where it listens: http(s)://host:port, the port as bound. */
  url: string;
  close(graceMs?: number): Promise<void>;
}

/** Serves the API for tokens on the plan's address. */
export async function listenNetwork(manager: VmManager, tokens: TokenAccess, plan: ListenPlan, info: { version: string; home: string }, o: { body?: BodyOptions; timeouts?: Partial<Timeouts>; e2b?: boolean; requestLog?: RequestLog } = {}): Promise<NetworkListener> {
  const sockets = new Set<Socket>();
  const timeouts = { ...DEFAULT_TIMEOUTS, ...o.timeouts };
  // The E2B-compatible backend (docs/e2b.md) is served beside the API unless turned off (MVM_E2B=0).
  const e2b = o.e2b === false ? undefined : new E2bBackend(manager, tokens, info.home);
  const app = buildServer(manager, info, { ...o.body, callerOf: tokens.callerOf, tokens, requestLog: o.requestLog, listener: "tcp", serverFactory: serverFactory(plan, timeouts, sockets, e2b, o.requestLog) });
  await app.listen({ host: plan.address.host, port: plan.address.port });
  const bound = app.server.address();
  const port = bound && typeof bound === "object" ? bound.port : plan.address.port;
  const host = plan.address.host.includes(":") ? `[${plan.address.host}]` : plan.address.host;
  return {
    app,
    url: `${plan.tls ? "https" : "http"}://${host}:${port}`,
    close: async (graceMs = 5000) => {
      let timer: NodeJS.Timeout | undefined;
      const grace = new Promise<void>((r) => (timer = setTimeout(r, graceMs)));
      // Idle connections go at once; requests under way have graceMs; then whatever is left is cut.
      app.server.closeIdleConnections?.();
      await Promise.race([app.close(), grace]);
      clearTimeout(timer);
      for (const s of sockets) s.destroy();
    },
  };
}
