// The daemon's HTTP+JSON API on a Unix socket. Routes turn requests into VmManager calls and results into
// responses; the manager never sees HTTP. Streams (command output, exec, logs) are NDJSON.

import { createReadStream, statSync, watch } from "node:fs";
import type { ServerResponse } from "node:http";
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyServerFactory } from "fastify";
import type { Static } from "@sinclair/typebox";
import { vmDir, vmFiles } from "../vm/layout.js";
import { chooseAccel, readHostFacts } from "../host/accel.js";
import { errorOptions, errorResponse, handleErrors } from "./http-errors.js";
import { registerExecRoutes } from "./exec-routes.js";
import { registerFileRoutes } from "./file-routes.js";
import { registerWatchRoute } from "./port-routes.js";
import { openApiDocument } from "../api/openapi.js";
import { NO_BODY_LIMIT, route, type RegisteredRoute } from "../api/routes.js";
import { TtlBodySchema, type TtlBody } from "../api/vm-schemas.js";
import { DaemonInfoSchema, LogsQuery, RemoveQuery, StartQuery, VmSpecSchema, VmViewSchema, AttachEventSchema, ExitEventSchema, StartAttachEventSchema } from "../api/vm-schemas.js";
import { BuildEventSchema, ImageBuildBodySchema, ImageImportBodySchema, ImageViewSchema, NetworkCreateBodySchema, NetworkViewSchema } from "../api/resource-schemas.js";
import { SnapshotCreateBodySchema, SnapshotViewSchema } from "../api/snapshot-schemas.js";
import { LimitsPatchSchema, type LimitsPatchBody } from "../api/limit-schemas.js";
import { checkBody } from "../api/check.js";
import { Type } from "@sinclair/typebox";
import { line, ndjson } from "./ndjson.js";
import { serveUpgrades } from "./upgrades.js";
import type { AttachEvent, VmManager } from "./vm-manager.js";
import { snapshotView, vmListJson, vmView } from "./views.js";
import { mayUseVm } from "../auth/ownership.js";
import { requireState } from "../vm/state.js";
import { observeJail } from "../jail/jail.js";
import { BadRequestError } from "../errors.js";
import { registerBodyParsers, type BodyOptions } from "./request-body.js";
import { registerCaller, type CallerOf } from "./request-caller.js";
import { registerVolumeRoutes } from "./volume-routes.js";
import { registerObserveRoutes, type EventVisibility } from "./observe-routes.js";
import { registerAccess, upgradeGuard, visibleToCaller, type TokenAccess } from "./access.js";
import { registerRequestId, requestLogOptions, type Listener, type RequestLog } from "./request-log.js";
import { dispatchWebSocket, registerWebSocketRoutes, type WebSocketOptions } from "./websocket.js";

type Ref = { Params: { ref: string } };

const registered = new WeakMap<FastifyInstance, RegisteredRoute[]>();

/** The routes a server registered (HEAD twins left out), with their docs: what the OpenAPI document is made of. */
export const registeredRoutes = (app: FastifyInstance): RegisteredRoute[] => registered.get(app) ?? [];

/**
 * callerOf: who each request is (default: the host's root, as every request on the Unix socket is); tokens:
 * the daemon's tokens, served at /v1/tokens; serverFactory: the network listener's server (listen.ts);
 * requestLog, listener: where each request's line goes, and which listener it names.
 */
export function buildServer(manager: VmManager, info: { version: string; home: string }, options: BodyOptions & WebSocketOptions & { callerOf?: CallerOf; tokens?: TokenAccess; serverFactory?: FastifyServerFactory; visibleEvent?: EventVisibility; requestLog?: RequestLog; listener?: Listener } = {}): FastifyInstance {
  const app = Fastify({
    // The network listener's node server (src/daemon/listen.ts: TLS, timeouts); the Unix socket's is Fastify's own.
    ...(options.serverFactory ? { serverFactory: options.serverFactory } : {}),
    // Request ids always (x-request-id); a line per request where the daemon keeps a log (request-log.ts).
    ...requestLogOptions(options.listener ?? "unix"),
    ...(options.requestLog ? { loggerInstance: options.requestLog.logger } : { logger: false }),
    // Requests refused before any route runs (router, Node's parser) answer in mvm's body shape too.
    ...errorOptions,
    // Each route has its own (src/api/routes.ts); this one is for requests no route takes.
    bodyLimit: NO_BODY_LIMIT,
    // Unknown keys are refused, not silently dropped; nothing is coerced or defaulted behind the caller's back.
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false, useDefaults: false } },
    schemaErrorFormatter: (errors, dataVar) => {
      const problems = errors.slice(0, 5).map((e) => `${dataVar}${e.instancePath || ""}: ${e.message ?? "invalid"}${e.params && "additionalProperty" in e.params ? ` (${String(e.params.additionalProperty)})` : ""}`);
      return new BadRequestError(`invalid request: ${problems.join("; ")}`, { hint: "GET /v1/openapi.json describes every request", details: { problems } });
    },
  });
  const routes: RegisteredRoute[] = [];
  registered.set(app, routes);
  app.addHook("onRoute", (r) => {
    for (const m of [r.method].flat()) if (m !== "HEAD") routes.push({ method: m.toLowerCase(), url: r.url, doc: r.config?.doc });
  });

  registerRequestId(app);
  // JSON bodies: objects, within the route's limit and a deadline; raw bytes streamed; nothing else.
  registerBodyParsers(app, options);
  registerCaller(app, options.callerOf);
  // Roles and ownership (which VMs a token sees), before any route runs.
  registerAccess(app, manager, options.tokens);

  handleErrors(app);
  // Events, metrics (its request counter hooks every route, so it comes first) and per-VM stats.
  registerObserveRoutes(app, manager, { visibleEvent: options.visibleEvent ?? visibleToCaller(manager) });

  app.get("/v1/openapi.json", route({ summary: "this document", answer: "json" }), () => openApiDocument(info.version, routes));

  app.get("/v1/info", route({ summary: "daemon version, pid, home and accelerator choice", answer: "json", response: DaemonInfoSchema }), () => ({ ...info, pid: process.pid, accel: chooseAccel("auto", readHostFacts()) }));

  // Sent as a string (vmListJson): Fastify's preSerialization hooks do not see it, so the caller's view of
  // the VMs (a user token: its own) is applied here.
  app.get("/v1/vms", route({ summary: "all VMs", answer: "json", response: Type.Array(VmViewSchema) }), (req, reply) => {
    const mine = manager.list().filter((r) => mayUseVm(req.caller, r.owner));
    return reply.type("application/json; charset=utf-8").send(vmListJson(mine, reply.compileSerializationSchema(VmViewSchema) as (v: unknown) => string));
  });

  app.post("/v1/vms", route({ summary: "create a VM from a spec (unknown keys refused)", answer: "json", status: 201, body: VmSpecSchema, validateBody: false, response: VmViewSchema }), async (req, reply) => {
    const rec = await manager.create(req.body, { caller: req.caller });
    return reply.status(201).send(vmView(rec));
  });

  app.get<Ref>("/v1/vms/:ref", route({ summary: "one VM: state, pid, accel and binary with reasons, argv, timings, last exits", answer: "json", response: VmViewSchema }), (req) => {
    const rec = manager.get(req.params.ref);
    return { ...vmView(rec), jail: observeJail(manager.jail, rec.state === "running" || rec.state === "paused" ? rec.pid : undefined, vmDir(info.home, rec.id)) };
  });

  const startDoc = route({ summary: "boot; with attach=true, follow the VM's command as NDJSON (started, output..., exit)", answer: "json", query: StartQuery, response: VmViewSchema, also: [{ when: "attach=true: the VM's command followed, NDJSON", answer: "ndjson", events: StartAttachEventSchema }] });
  app.post<Ref & { Querystring: { attach?: string } }>("/v1/vms/:ref/start", startDoc, async (req, reply) => {
    if (req.query.attach !== "true") return vmView(await manager.start(req.params.ref));
    // Attach before starting, so not a byte of the command's output is missed. A VM that cannot start in
    // its state is refused with the 409 itself, not with a 200 stream carrying the error.
    const rec = manager.get(req.params.ref);
    requireState(rec.name, "start", rec.state);
    const raw = ndjson(reply);
    const off = manager.attach(rec.id, (e: AttachEvent) => {
      line(raw, e);
      if (e.type === "exit") raw.end();
    });
    raw.on("close", off);
    try {
      line(raw, { type: "started", vm: vmView(await manager.start(rec.id)) });
    } catch (e) {
      off();
      line(raw, { type: "error", ...errorResponse(e).body });
      raw.end();
    }
  });

  app.post<Ref>("/v1/vms/:ref/attach", route({ summary: "the VM's command: kept output, then live, then its exit", answer: "ndjson", events: AttachEventSchema }), (req, reply) => {
    const rec = manager.get(req.params.ref);
    const raw = ndjson(reply);
    const off = manager.attach(
      rec.id,
      (e) => {
        line(raw, e);
        if (e.type === "exit") raw.end();
      },
      { history: true },
    );
    raw.on("close", off);
  });

  const ops = {
    stop: "power off (guest, then QMP quit, SIGTERM, SIGKILL); a suspended VM's saved state is discarded",
    kill: "SIGKILL QEMU",
    pause: "freeze the vCPUs",
    resume: "unfreeze a paused VM's vCPUs, or load a suspended VM's state into a new QEMU (paused again if it was)",
    suspend: "save the whole state (RAM included) to disk and end QEMU; resume brings the VM back",
  } as const;
  for (const op of ["stop", "kill", "pause", "resume", "suspend"] as const) {
    app.post<Ref>(`/v1/vms/:ref/${op}`, route({ summary: ops[op], answer: "json", response: VmViewSchema }), async (req) => vmView(await manager[op](req.params.ref)));
  }

  const limitsDoc = route({ summary: "change the VM's disk and network limits (null removes one): live on a running or paused VM, kept for its next starts", answer: "json", body: LimitsPatchSchema, response: VmViewSchema });
  app.patch<Ref & { Body: LimitsPatchBody }>("/v1/vms/:ref/limits", limitsDoc, async (req) => vmView(await manager.setLimits(req.params.ref, req.body)));

  const ttlDoc = route({ summary: "a new time to live from now (the VM is killed and removed at its end, expiresAt); null: none", answer: "json", body: TtlBodySchema, response: VmViewSchema });
  app.put<Ref & { Body: TtlBody }>("/v1/vms/:ref/ttl", ttlDoc, (req) => vmView(manager.setTtl(req.params.ref, req.body.ttl)));

  // The body is optional (a name is made up without one), so it is checked here rather than by Fastify.
  const snapshotDoc = route({ summary: "snapshot a running or paused VM (memory, devices, root disk at one moment); the VM goes on as it was", answer: "json", status: 201, body: SnapshotCreateBodySchema, bodyOptional: true, validateBody: false, response: SnapshotViewSchema });
  app.post<Ref>("/v1/vms/:ref/snapshots", snapshotDoc, async (req, reply) => {
    const b = checkBody(SnapshotCreateBodySchema, req.body ?? {}, "snapshot request");
    return reply.status(201).send(snapshotView(await manager.snapshot(req.params.ref, b.name)));
  });

  app.get("/v1/snapshots", route({ summary: "all snapshots, oldest first", answer: "json", response: Type.Array(SnapshotViewSchema) }), async () => (await manager.snapshots.list()).map(snapshotView));

  app.get<{ Params: { name: string } }>("/v1/snapshots/:name", route({ summary: "one snapshot", answer: "json", response: SnapshotViewSchema }), async (req) => snapshotView(await manager.snapshots.get(req.params.name)));

  app.delete<{ Params: { name: string } }>("/v1/snapshots/:name", route({ summary: "remove a snapshot (VMs made from it that have started keep their own disk)", answer: "none", status: 204 }), async (req, reply) => {
    await manager.removeSnapshot(req.params.name);
    return reply.status(204).send();
  });

  app.delete<Ref & { Querystring: { force?: string } }>("/v1/vms/:ref", route({ summary: "remove a stopped/crashed VM (force=true kills it first)", answer: "none", status: 204, query: RemoveQuery }), async (req, reply) => {
    await manager.remove(req.params.ref, req.query.force === "true");
    return reply.status(204).send();
  });

  app.get("/v1/networks", route({ summary: "bridged networks and their VMs", answer: "json", response: Type.Array(NetworkViewSchema) }), () => manager.networks.list());

  const networkDoc = route({ summary: "create a network (needs CAP_NET_ADMIN)", answer: "json", status: 201, body: NetworkCreateBodySchema, response: NetworkViewSchema });
  app.post<{ Body: Static<typeof NetworkCreateBodySchema> }>("/v1/networks", networkDoc, async (req, reply) => {
    const b = req.body;
    return reply.status(201).send(await manager.networks.create(b.name, { subnet: b.subnet, nat: b.nat }));
  });

  app.delete<{ Params: { name: string } }>("/v1/networks/:name", route({ summary: "remove a network no VM uses", answer: "none", status: 204 }), async (req, reply) => {
    await manager.networks.remove(req.params.name);
    return reply.status(204).send();
  });

  app.get("/v1/images", route({ summary: "registered images", answer: "json", response: Type.Array(ImageViewSchema) }), () => manager.images.list());

  app.delete<{ Params: { name: string } }>("/v1/images/:name", route({ summary: "remove an image no VM uses", answer: "none", status: 204 }), async (req, reply) => {
    await manager.images.remove(req.params.name);
    return reply.status(204).send();
  });

  // Long builds stream their progress: {type:"progress",line}..., then {type:"done",image} or {type:"error"}.
  // What build checks before it returns (the name, the file, the packages) is thrown from here: a request
  // refused is a 4xx, not a 200 stream whose one line is the error.
  const streamBuild = (reply: FastifyReply, build: (onLine: (l: string) => void) => Promise<unknown>) => {
    const early: string[] = [];
    let progress = (l: string) => void early.push(l);
    const running = build((l) => progress(l));
    const out = ndjson(reply);
    progress = (l) => void line(out, { type: "progress", line: l });
    early.forEach(progress);
    running.then(
      (image) => {
        line(out, { type: "done", image });
        out.end();
      },
      (e: unknown) => {
        line(out, { type: "error", ...errorResponse(e).body });
        out.end();
      },
    );
  };

  const importDoc = route({ summary: "register an image file: progress, then done or error", answer: "ndjson", body: ImageImportBodySchema, events: BuildEventSchema });
  app.post<{ Body: Static<typeof ImageImportBodySchema> }>("/v1/images/import", importDoc, (req, reply) => {
    const { file, name } = req.body;
    streamBuild(reply, (onLine) => manager.images.import(file, name, onLine, req.caller));
  });

  const buildDoc = route({ summary: "build a Debian image: progress, then done or error", answer: "ndjson", body: ImageBuildBodySchema, events: BuildEventSchema });
  app.post<{ Body: Static<typeof ImageBuildBodySchema> }>("/v1/images/build", buildDoc, (req, reply) => {
    const b = req.body;
    streamBuild(reply, (onLine) => manager.images.build(b.name ?? "debian", { suite: b.suite ?? "bookworm", packages: b.packages ?? [] }, onLine));
  });

  app.post("/v1/prune", route({ summary: "remove every stopped or crashed VM", answer: "json", response: Type.Object({ removed: Type.Array(Type.String()) }) }), async () => ({ removed: await manager.prune() }));

  app.post<Ref>("/v1/vms/:ref/wait", route({ summary: "wait until the VM stops; its command's exit", answer: "json", response: ExitEventSchema }), async (req) => manager.wait(req.params.ref));

  registerVolumeRoutes(app, manager);
  registerExecRoutes(app, manager);
  registerFileRoutes(app, manager);
  registerWatchRoute(app, manager);

  const logsDoc = route({ summary: "the command's log (NDJSON), or with console=true the serial console (text)", answer: "ndjson", query: LogsQuery, events: AttachEventSchema, also: [{ when: "console=true: the serial console", answer: "text" }] });
  app.get<Ref & { Querystring: { console?: string; follow?: string } }>("/v1/vms/:ref/logs", logsDoc, (req, reply) => {
    const rec = manager.get(req.params.ref);
    const dir = vmDir(info.home, rec.id);
    const follow = req.query.follow === "true";
    if (req.query.console === "true") {
      reply.hijack();
      reply.raw.writeHead(200, { "content-type": "text/plain; charset=utf-8" });
      streamFile(vmFiles(dir).consoleLog, reply.raw, follow);
      return;
    }
    const raw = ndjson(reply);
    if (!follow) {
      for (const e of manager.jobLog(rec.id).history()) line(raw, e);
      raw.end();
      return;
    }
    const off = manager.attach(rec.id, (e) => {
      line(raw, e);
      if (e.type === "exit") raw.end();
    }, { history: true });
    raw.on("close", off);
  });

  registerWebSocketRoutes(app, manager, options);
  const upgradeLog = options.requestLog ? { to: options.requestLog, listener: options.listener ?? "unix" } : undefined;
  serveUpgrades(app.server, manager, (req, socket, head) => dispatchWebSocket(app, req, socket, head), upgradeGuard(manager, options.callerOf), upgradeLog);
  return app;
}

/** Sends a file, and with follow keeps sending what is appended until the client goes away. */
function streamFile(path: string, out: ServerResponse, follow: boolean): void {
  if (!follow) {
    createReadStream(path).on("error", () => out.end()).pipe(out);
    return;
  }
  let offset = 0;
  const sendFrom = () => {
    let size = 0;
    try {
      size = statSync(path).size;
    } catch {
      return;
    }
    if (size <= offset) return;
    const from = offset;
    offset = size;
    createReadStream(path, { start: from, end: size - 1 }).pipe(out, { end: false });
  };
  sendFrom();
  let watcher: ReturnType<typeof watch> | undefined;
  try {
    watcher = watch(path, sendFrom);
  } catch {
    /* file not there yet */
  }
  const timer = setInterval(sendFrom, 500);
  out.on("close", () => {
    watcher?.close();
    clearInterval(timer);
  });
}
