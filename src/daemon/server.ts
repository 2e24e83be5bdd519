// The daemon's HTTP+JSON API on a Unix socket. Routes turn requests into VmManager calls and results into
// responses; the manager never sees HTTP. Streams (command output, exec, logs) are NDJSON.

import { createReadStream, statSync, watch } from "node:fs";
import type { ServerResponse } from "node:http";
import Fastify, { type FastifyInstance, type FastifyReply } from "fastify";
import { vmDir, vmFiles } from "../vm/layout.js";
import { chooseAccel, readHostFacts } from "../host/accel.js";
import { BadRequestError, errorResponse } from "./http-errors.js";
import { registerExecRoutes } from "./exec-routes.js";
import { registerFileRoutes } from "./file-routes.js";
import { openApiDocument } from "./openapi.js";
import { line, ndjson } from "./ndjson.js";
import { serveUpgrades } from "./upgrades.js";
import type { AttachEvent, VmManager } from "./vm-manager.js";
import { vmView } from "./views.js";

type Ref = { Params: { ref: string } };

const registered = new WeakMap<FastifyInstance, Array<[string, string]>>();

/** The routes a server registered, as [method, path] (HEAD twins left out), for the OpenAPI drift test. */
export const registeredRoutes = (app: FastifyInstance): Array<[string, string]> => registered.get(app) ?? [];

export function buildServer(manager: VmManager, info: { version: string; home: string }): FastifyInstance {
  const app = Fastify({ logger: false, bodyLimit: 64 * 1024 * 1024 });
  const routes: Array<[string, string]> = [];
  registered.set(app, routes);
  app.addHook("onRoute", (r) => {
    for (const m of [r.method].flat()) if (m !== "HEAD") routes.push([m.toLowerCase(), r.url]);
  });

  // File contents and stdin stream through as they arrive, never buffered whole.
  app.addContentTypeParser("application/octet-stream", (_req, payload, done) => done(null, payload));

  app.setErrorHandler((error, _req, reply) => {
    const { status, body } = errorResponse(error);
    void reply.status(status).send(body);
  });

  app.get("/v1/openapi.json", () => openApiDocument(info.version));

  app.get("/v1/info", () => ({ ...info, pid: process.pid, accel: chooseAccel("auto", readHostFacts()) }));

  app.get("/v1/vms", () => manager.list().map(vmView));

  app.post("/v1/vms", async (req, reply) => {
    const rec = await manager.create(req.body ?? {});
    return reply.status(201).send(vmView(rec));
  });

  app.get<Ref>("/v1/vms/:ref", (req) => vmView(manager.get(req.params.ref)));

  app.post<Ref & { Querystring: { attach?: string } }>("/v1/vms/:ref/start", async (req, reply) => {
    if (req.query.attach !== "true") return vmView(await manager.start(req.params.ref));
    // Attach before starting, so not a byte of the command's output is missed.
    const rec = manager.get(req.params.ref);
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

  app.post<Ref>("/v1/vms/:ref/attach", (req, reply) => {
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

  for (const op of ["stop", "kill", "pause", "resume"] as const) {
    app.post<Ref>(`/v1/vms/:ref/${op}`, async (req) => vmView(await manager[op](req.params.ref)));
  }

  app.delete<Ref & { Querystring: { force?: string } }>("/v1/vms/:ref", async (req, reply) => {
    await manager.remove(req.params.ref, req.query.force === "true");
    return reply.status(204).send();
  });

  app.get("/v1/networks", () => manager.networks.list());

  app.post<{ Body: { name?: string; subnet?: string; nat?: boolean } }>("/v1/networks", async (req, reply) => {
    const b = req.body ?? {};
    if (typeof b.name !== "string") throw new BadRequestError("a network needs a name", { hint: "send {\"name\": \"lan\"}" });
    return reply.status(201).send(await manager.networks.create(b.name, { subnet: b.subnet, nat: b.nat }));
  });

  app.delete<{ Params: { name: string } }>("/v1/networks/:name", async (req, reply) => {
    await manager.networks.remove(req.params.name);
    return reply.status(204).send();
  });

  app.get("/v1/images", () => manager.images.list());

  app.delete<{ Params: { name: string } }>("/v1/images/:name", async (req, reply) => {
    await manager.images.remove(req.params.name);
    return reply.status(204).send();
  });

  // Long builds stream their progress: {type:"progress",line}..., then {type:"done",image} or {type:"error"}.
  const streamBuild = (reply: FastifyReply, build: (onLine: (l: string) => void) => Promise<unknown>) => {
    const raw = ndjson(reply);
    build((l) => line(raw, { type: "progress", line: l })).then(
      (image) => {
        line(raw, { type: "done", image });
        raw.end();
      },
      (e: unknown) => {
        line(raw, { type: "error", ...errorResponse(e).body });
        raw.end();
      },
    );
  };

  app.post<{ Body: { file?: string; name?: string } }>("/v1/images/import", (req, reply) => {
    const { file, name } = req.body ?? {};
    if (typeof file !== "string" || typeof name !== "string") throw new BadRequestError("import needs {file, name}", { hint: "give the image file's absolute path and a name" });
    streamBuild(reply, (onLine) => manager.images.import(file, name, onLine));
  });

  app.post<{ Body: { distro?: string; suite?: string; packages?: string[]; name?: string } }>("/v1/images/build", (req, reply) => {
    const b = req.body ?? {};
    if (b.distro !== "debian") throw new BadRequestError(`cannot build ${JSON.stringify(b.distro)} images`, { hint: "mvm image build debian" });
    streamBuild(reply, (onLine) => manager.images.build(b.name ?? "debian", { suite: b.suite ?? "bookworm", packages: b.packages ?? [] }, onLine));
  });

  app.post("/v1/prune", async () => ({ removed: await manager.prune() }));

  app.post<Ref>("/v1/vms/:ref/wait", async (req) => manager.wait(req.params.ref));

  registerExecRoutes(app, manager);
  registerFileRoutes(app, manager);

  app.get<Ref & { Querystring: { console?: string; follow?: string } }>("/v1/vms/:ref/logs", (req, reply) => {
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

  serveUpgrades(app.server, manager);
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
