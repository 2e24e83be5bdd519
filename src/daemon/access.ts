// Tokens, roles and ownership applied to the HTTP API (issue 13), in one place for every route: the hooks
// below run before any route handler, so no route checks anything itself.
//   - onRequest: a read token's non-GET is FORBIDDEN; networks (create, remove), image builds and removals
//     are for the host's root and admins; tokens are the host's root's alone.
//   - preHandler: a route with :ref, for a user token, is resolved among that token's own VMs and the
//     route gets the VM's id (another's VM, or an id prefix only another's matches, is NOT_FOUND, word for
//     word as a VM that does not exist); so is a snapshot by name, and a VM made from one. A user's prune
//     removes its own ended VMs only.
//   - preSerialization: lists a user token reads (VMs, snapshots; the VMs named in networks and volumes)
//     leave out what is not its own.
//   - the upgrades (exec and console streams) go through upgradeGuard: the same caller, the same rules.
// Connections are tracked per token, so that removing a token ends its open streams at once.

import type { IncomingHttpHeaders, IncomingMessage } from "node:http";
import type { Socket } from "node:net";
import type { Duplex } from "node:stream";
import type { FastifyInstance, FastifyRequest } from "fastify";
import { Type, type Static } from "@sinclair/typebox";
import { HOST_ROOT, type Caller, type Quota } from "../auth/caller.js";
import { mayUseVm, requireAdmin, requireHostRoot, requireMethodAllowed, vmNotFound } from "../auth/ownership.js";
import { bearerToken, checkRole, TOKEN_NAME_PATTERN } from "../auth/tokens.js";
import { route } from "../api/routes.js";
import { NotFoundError, UnauthorizedError, ForbiddenError } from "../errors.js";
import type { TokenRecord, TokenStore } from "../store/token-store.js";
import type { VmRecord } from "../store/vm-store.js";
import { parseMemoryMiB } from "../vmspec/size.js";
import { errorResponse } from "./http-errors.js";
import type { VmManager } from "./vm-manager.js";
import type { MvmEvent } from "../api/event-schemas.js";
import { vmOf } from "./events.js";

/** The token offered as a WebSocket subprotocol `mvm.token.TOKEN`, or undefined. */
export function subprotocolToken(header: string | undefined): string | undefined {
  for (const p of (header ?? "").split(",")) {
    const m = /^mvm\.token\.([A-Za-z0-9_-]+)$/.exec(p.trim());
    if (m) return m[1];
  }
  return undefined;
}

/** What a caller is told of a request: its headers, and the connection it came on. */
export interface CallerRequest {
  headers: IncomingHttpHeaders;
  socket: Socket;
}

/** The tokens of a daemon, and the connections each has open. */
export class TokenAccess {
  private readonly open = new Map<string, Set<Socket>>();
  /** The token each connection last carried: a keep-alive connection may serve another token's request next. */
  private readonly lastToken = new WeakMap<Socket, string>();

  constructor(readonly tokens: TokenStore) {}

  /** The caller of a request on the network listener: the bearer token's, or UNAUTHORIZED. */
  readonly callerOf = (req: CallerRequest): Caller => {
    // A browser cannot set a WebSocket's headers: the dashboard offers its token as the subprotocol
    // `mvm.token.TOKEN` beside `mvm` (the one the daemon picks, so the token is never echoed back).
    const token = bearerToken(req.headers.authorization) ?? (req.headers.authorization === undefined ? subprotocolToken(req.headers["sec-websocket-protocol"]) : undefined);
    if (token === undefined) {
      throw new UnauthorizedError(req.headers.authorization === undefined ? "this listener needs a token: send Authorization: Bearer TOKEN" : "the Authorization header is not Bearer TOKEN");
    }
    const t = this.tokens.verify(token);
    if (!t) throw new UnauthorizedError("the token is not valid (never made here, or removed)");
    this.track(t.name, req.socket);
    return { kind: "token", name: t.name, role: t.role, quota: t.quota };
  };

  private track(name: string, socket: Socket | undefined): void {
    if (!socket || typeof socket.once !== "function") return; // inject()'s stand-in
    const before = this.lastToken.get(socket);
    if (before === name) return;
    if (before !== undefined) this.untrack(before, socket);
    else socket.once("close", () => this.untrack(this.lastToken.get(socket), socket));
    this.lastToken.set(socket, name);
    let set = this.open.get(name);
    if (!set) this.open.set(name, (set = new Set()));
    set.add(socket);
  }

  private untrack(name: string | undefined, socket: Socket): void {
    const set = name === undefined ? undefined : this.open.get(name);
    if (!set) return;
    set.delete(socket);
    if (!set.size) this.open.delete(name!);
  }

  /** Connections open with this token's requests (streams, upgraded sockets, idle keep-alives). */
  connections(name: string): number {
    return this.open.get(name)?.size ?? 0;
  }

  create(name: string, role: string, quota: Quota): { token: string; record: TokenRecord } {
    return this.tokens.create(name, checkRole(role), quota);
  }

  /** Removes the token and ends every connection that showed it: its streams end now, not at their next request. */
  remove(name: string): void {
    this.tokens.remove(name);
    for (const s of this.open.get(name) ?? []) s.destroy();
    this.open.delete(name);
  }
}

/** A user token (undefined: a request refused before its caller was known, answered with its error). */
const isUser = (c: Caller | undefined): c is Extract<Caller, { kind: "token" }> => c?.kind === "token" && c.role === "user";

/** The VM `ref` names among those `caller` may see (name, id, or an id prefix unique among them). */
export function resolveVm(manager: VmManager, caller: Caller, ref: string): VmRecord {
  if (!isUser(caller)) return manager.get(ref);
  const mine = manager.list().filter((r) => mayUseVm(caller, r.owner));
  const hit = mine.find((r) => r.name === ref || r.id === ref) ?? (() => {
    if (!/^[0-9a-f]{3,}$/.test(ref)) return undefined;
    const m = mine.filter((r) => r.id.startsWith(ref));
    return m.length === 1 ? m[0] : undefined;
  })();
  if (!hit) throw vmNotFound(ref);
  return hit;
}

/**
 * For GET /v1/events (buildServer's visibleEvent): a user token sees the events of its own VMs (and of none
 * other), and those about no VM (images). A removed VM's owner is remembered from its earlier events.
 */
export function visibleToCaller(manager: VmManager): (e: MvmEvent, req: FastifyRequest) => boolean {
  // Every VM's owner, from the records now and from each event as it is published (the record is there at
  // vm.created and at every state change): so a replayed event of a VM removed since is judged too.
  const owners = new Map<string, string | undefined>();
  const note = (id: string) => {
    const r = manager.list().find((v) => v.id === id);
    if (r) owners.set(id, r.owner);
    if (owners.size > 100_000) owners.delete(owners.keys().next().value!);
  };
  const bus = (manager as Partial<VmManager>).events;
  if (bus) {
    for (const r of manager.list()) owners.set(r.id, r.owner);
    bus.subscribe((p) => {
      const vm = vmOf(p.event);
      if (vm && !owners.has(vm.id)) note(vm.id);
    });
  }
  return (e, req) => {
    const caller = req.caller;
    if (!isUser(caller)) return true;
    const vm = vmOf(e);
    if (!vm) return true;
    if (!owners.has(vm.id)) note(vm.id);
    return owners.has(vm.id) && mayUseVm(caller, owners.get(vm.id));
  };
}

/** Routes only the host's root or an admin token may call, by method and route. */
const ADMIN_ONLY: Record<string, string> = {
  "POST /v1/networks": "create networks",
  "DELETE /v1/networks/:name": "remove networks",
  "POST /v1/images/build": "build images",
  "DELETE /v1/images/:name": "remove images",
};

/** Routes a user token may not read at all: they are about every VM (GET /v1/events is filtered instead). */
const NOT_FOR_USERS: Record<string, string> = { "GET /metrics": "read the daemon's metrics (every VM's)" };

const snapshotNotFound = (name: string) => new NotFoundError(`no snapshot named ${name}`, { hint: "list them with mvm snapshot ls" });

export function registerAccess(app: FastifyInstance, manager: VmManager, tokens?: TokenAccess): void {
  app.addHook("onRequest", (req, _reply, done) => {
    try {
      requireMethodAllowed(req.caller, req.method);
      const what = ADMIN_ONLY[`${req.method} ${req.routeOptions.url ?? ""}`];
      if (what) requireAdmin(req.caller, what);
      const all = NOT_FOR_USERS[`${req.method} ${req.routeOptions.url ?? ""}`];
      if (all && isUser(req.caller)) requireAdmin(req.caller, all);
      if (req.routeOptions.url?.startsWith("/v1/tokens")) requireHostRoot(req.caller, "manage tokens");
    } catch (e) {
      return done(e as Error);
    }
    done();
  });

  app.addHook("preHandler", async (req, reply) => {
    const caller = req.caller;
    if (!isUser(caller)) return;
    const params = req.params as Record<string, string> | undefined;
    if (params?.ref !== undefined) params.ref = resolveVm(manager, caller, params.ref).id;
    const url = req.routeOptions.url ?? "";
    if (url === "/v1/snapshots/:name" && params?.name !== undefined) {
      const s = await manager.snapshots.get(params.name);
      if (!mayUseVm(caller, s.owner)) throw snapshotNotFound(params.name);
    }
    const body = req.body as { snapshot?: unknown } | undefined;
    if (req.method === "POST" && url === "/v1/vms" && typeof body?.snapshot === "string") {
      const s = await manager.snapshots.get(body.snapshot).catch(() => undefined);
      if (s && !mayUseVm(caller, s.owner)) throw snapshotNotFound(body.snapshot);
    }
    if (req.method === "POST" && url === "/v1/prune") {
      const removed: string[] = [];
      for (const r of manager.list().filter((v) => v.owner === caller.name && (v.state === "stopped" || v.state === "crashed"))) {
        await manager.remove(r.id);
        removed.push(r.name);
      }
      return reply.send({ removed });
    }
  });

  app.addHook("preSerialization", async (req: FastifyRequest, _reply, payload: unknown) => {
    const caller = req.caller;
    if (!isUser(caller) || req.method !== "GET" || !Array.isArray(payload)) return payload;
    const url = req.routeOptions.url;
    const mine = new Set(manager.list().filter((r) => mayUseVm(caller, r.owner)).map((r) => r.name));
    if (url === "/v1/vms") return (payload as Array<{ owner?: string }>).filter((v) => mayUseVm(caller, v.owner));
    if (url === "/v1/networks" || url === "/v1/volumes") return (payload as Array<{ vms?: string[] }>).map((x) => (x.vms ? { ...x, vms: x.vms.filter((n) => mine.has(n)) } : x));
    if (url === "/v1/snapshots") {
      const owners = new Map((await manager.snapshots.list()).map((s) => [s.name, s.owner]));
      return (payload as Array<{ name: string }>).filter((s) => mayUseVm(caller, owners.get(s.name)));
    }
    return payload as unknown;
  });

  // A 401 says how to authenticate (RFC 6750).
  app.addHook("onSend", (_req, reply, payload, done) => {
    if (reply.statusCode === 401) void reply.header("www-authenticate", 'Bearer realm="mvm"');
    done(null, payload);
  });

  if (tokens) registerTokenRoutes(app, tokens);
}

const TokenViewSchema = Type.Object({
  name: Type.String(),
  role: Type.Union([Type.Literal("admin"), Type.Literal("user"), Type.Literal("read")]),
  quota: Type.Object({ maxVms: Type.Optional(Type.Integer()), maxCpus: Type.Optional(Type.Integer()), maxMemoryMiB: Type.Optional(Type.Integer()) }),
  createdAt: Type.String(),
  lastUsedAt: Type.Optional(Type.String()),
  connections: Type.Optional(Type.Integer({ description: "connections open with it now" })),
});

const TokenCreateBodySchema = Type.Object(
  {
    name: Type.String({ pattern: TOKEN_NAME_PATTERN }),
    role: Type.Optional(Type.Union([Type.Literal("admin"), Type.Literal("user"), Type.Literal("read")], { description: "default user" })),
    maxVms: Type.Optional(Type.Integer({ minimum: 0, maximum: 100000 })),
    maxCpus: Type.Optional(Type.Integer({ minimum: 0, maximum: 1000000 })),
    maxMemory: Type.Optional(Type.Union([Type.String(), Type.Integer({ minimum: 0 })], { description: "MiB, or with a unit: 4G" })),
  },
  { additionalProperties: false },
);

/** /v1/tokens: the host's root's only (the onRequest hook above refuses everyone else). */
function registerTokenRoutes(app: FastifyInstance, access: TokenAccess): void {
  const view = (t: TokenRecord) => ({ ...t, connections: access.connections(t.name) });
  app.get("/v1/tokens", route({ summary: "API tokens (never the tokens themselves): role, quota, made, last used; the host's root only", answer: "json", response: Type.Array(TokenViewSchema) }), () => access.tokens.list().map(view));

  const createDoc = route({ summary: "make a token; the answer holds it, once (only its hash is kept); the host's root only", answer: "json", status: 201, body: TokenCreateBodySchema, response: Type.Intersect([TokenViewSchema, Type.Object({ token: Type.String() })]) });
  app.post<{ Body: Static<typeof TokenCreateBodySchema> }>("/v1/tokens", createDoc, (req, reply) => {
    const b = req.body;
    const quota: Quota = {};
    if (b.maxVms !== undefined) quota.maxVms = b.maxVms;
    if (b.maxCpus !== undefined) quota.maxCpus = b.maxCpus;
    if (b.maxMemory !== undefined) quota.maxMemoryMiB = parseMemoryMiB(b.maxMemory, { min: 0, max: 1024 * 1024 * 1024 });
    const { token, record } = access.create(b.name, b.role ?? "user", quota);
    return reply.status(201).send({ ...view(record), token });
  });

  app.delete<{ Params: { name: string } }>("/v1/tokens/:name", route({ summary: "remove a token: its requests are refused from now on and its open streams end; the host's root only", answer: "none", status: 204 }), (req, reply) => {
    access.remove(req.params.name);
    return reply.status(204).send();
  });
}

/**
 * For serveUpgrades: who asks (callerOf, as for every other request), whether it may (not a read token;
 * a user token's own VM), and which VM it is (its id). undefined when the request was refused on the socket.
 */
export function upgradeGuard(manager: VmManager, callerOf?: (req: CallerRequest) => Caller) {
  return (req: IncomingMessage, socket: Duplex, ref: string): string | undefined => {
    try {
      const caller = callerOf ? callerOf({ headers: req.headers, socket: req.socket }) : HOST_ROOT;
      if (caller.kind === "token" && caller.role === "read") throw new ForbiddenError(`token ${caller.name} (role read) cannot open a VM's exec or console stream: a read token only sees`, { hint: "use a user or admin token", details: { caller: caller.name, role: caller.role } });
      return resolveVm(manager, caller, ref).id;
    } catch (e) {
      const { status, body } = errorResponse(e);
      const auth = status === 401 ? 'www-authenticate: Bearer realm="mvm"\r\n' : "";
      const text = JSON.stringify(body);
      socket.end(`HTTP/1.1 ${status} Error\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(text)}\r\n${auth}connection: close\r\n\r\n${text}`);
      return undefined;
    }
  };
}
