import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { checkSpec } from "../vmspec/vm-spec.js";
import type { VmRecord } from "../store/vm-store.js";
import { errorFromBody, MvmError, NameTakenError, NotFoundError, WrongStateError } from "../errors.js";
import { buildServer } from "./server.js";
import { RequestLog } from "./request-log.js";
import type { Snapshot } from "./snapshots.js";
import type { VmManager } from "./vm-manager.js";

const record = (name: string): VmRecord => ({ id: "abc123", name, spec: checkSpec({ name }), state: "created", createdAt: "t", updatedAt: "t" });

const signalled: Array<[string, string, number]> = [];

const suspendedRecord = (): VmRecord => ({
  ...record("a"),
  state: "suspended",
  boot: { how: "clone", reason: "a matching memory template", template: "0123456789abcdef01234567", readyMs: 41 },
  suspended: { stateFile: "/home/vms/abc123/suspend/state", qemuBuild: { sha256: "f".repeat(64), version: "7.2.0" }, savedAt: "t", wasPaused: false, stateBytes: 268435456 },
  lastExit: { exitCode: null, signal: "SIGKILL", at: "t", reason: "suspended to disk" },
});

/** A snapshot as the store gives it: with its paths on the daemon's host, which no view shows. */
const snapshotOf = (name: string): Snapshot => ({
  name,
  vm: { id: "abc123", name: "a" },
  spec: checkSpec({ name: "a", memory: "512M", cpus: 2 }),
  qemuBuild: { sha256: "f".repeat(64), version: "7.2.0" },
  createdAt: "2025-01-01T12:00:00.000Z",
  stateBytes: 536870912,
  pausedMs: 812,
  dir: `/home/snapshots/${name}`,
  stateFile: `/home/snapshots/${name}/state`,
});

/** What the snapshot and suspend routes asked the manager, in order. */
const asked: unknown[][] = [];
const snaps = new Map<string, Snapshot>();

/** A stand-in manager: just enough to see how routes turn results and errors into responses. */
function fakeManager(): VmManager {
  const fake = {
    list: () => [record("a")],
    get: (ref: string) => {
      if (ref !== "a") throw new NotFoundError(`no VM named ${ref}`, { hint: "list VMs with mvm ps -a" });
      return record("a");
    },
    create: (body: { name?: string }) => {
      if (body.name === "taken") throw new NameTakenError("a VM named taken already exists", { hint: "pick another" });
      checkSpec(body); // what the real manager does first
      return Promise.resolve(record(body.name ?? "gen"));
    },
    signal: (ref: string, id: string, signo: number) => void signalled.push([ref, id, signo]),
    stop: () => Promise.reject(new WrongStateError("cannot stop VM a: it is created, and stop needs it running or paused", { hint: "h", details: { vm: "a", state: "created", allowed: ["running", "paused"] } })),
    exec: () => {
      throw new Error("must not be reached with a bad body");
    },
    suspend: (ref: string) => {
      asked.push(["suspend", ref]);
      return Promise.resolve(suspendedRecord());
    },
    resume: (ref: string) => {
      asked.push(["resume", ref]);
      return Promise.resolve({ ...record("a"), state: "running", boot: { how: "resume", reason: "the state VM a was suspended in", readyMs: 230 } });
    },
    snapshot: (ref: string, name?: string) => {
      asked.push(["snapshot", ref, name]);
      if (ref !== "a") return Promise.reject(new NotFoundError(`no VM named ${ref}`, { hint: "list VMs with mvm ps -a" }));
      if (name && snaps.has(name)) return Promise.reject(new NameTakenError(`a snapshot named ${name} already exists`, { hint: "pick another --name" }));
      const snap = snapshotOf(name ?? "a-20250101120000");
      snaps.set(snap.name, snap);
      return Promise.resolve(snap);
    },
    removeSnapshot: (name: string) => (snaps.delete(name) ? Promise.resolve() : Promise.reject(new NotFoundError(`no snapshot named ${name}`, { hint: "list them with mvm snapshot ls" }))),
    snapshots: {
      list: () => Promise.resolve([...snaps.values()]),
      get: (name: string) => (snaps.has(name) ? Promise.resolve(snaps.get(name)!) : Promise.reject(new NotFoundError(`no snapshot named ${name}`, { hint: "list them with mvm snapshot ls" }))),
      remove: (name: string) => (snaps.delete(name) ? Promise.resolve() : Promise.reject(new NotFoundError(`no snapshot named ${name}`, { hint: "list them with mvm snapshot ls" }))),
    },
  };
  return fake as unknown as VmManager;
}

const app = buildServer(fakeManager(), { version: "test", home: "/nonexistent" });

test("create answers 201 with the view; a taken name is 409 with the error body", async () => {
  const ok = await app.inject({ method: "POST", url: "/v1/vms", payload: { name: "web" } });
  assert.equal(ok.statusCode, 201);
  assert.equal(ok.json<{ name: string }>().name, "web");
  const dup = await app.inject({ method: "POST", url: "/v1/vms", payload: { name: "taken" } });
  assert.equal(dup.statusCode, 409);
  assert.deepEqual(Object.keys(dup.json<object>()).sort(), ["details", "error", "hint", "message"]);
  assert.equal(dup.json<{ error: string }>().error, "NAME_TAKEN");
});

test("unknown VMs are 404, wrong states 409, each with a hint", async () => {
  const missing = await app.inject({ method: "GET", url: "/v1/vms/zzz" });
  assert.equal(missing.statusCode, 404);
  assert.match(missing.json<{ hint: string }>().hint, /mvm ps/);
  const wrong = await app.inject({ method: "POST", url: "/v1/vms/a/stop" });
  assert.equal(wrong.statusCode, 409);
  assert.equal(wrong.json<{ error: string }>().error, "WRONG_STATE");
});

test("a malformed exec body is a 400, before anything runs", async () => {
  for (const payload of [{}, { argv: [] }, { argv: "ls" }, { argv: [1, 2] }]) {
    const r = await app.inject({ method: "POST", url: "/v1/vms/a/exec", payload });
    assert.equal(r.statusCode, 400, JSON.stringify(payload));
    assert.equal(r.json<{ error: string }>().error, "BAD_REQUEST");
  }
});

test("invalid JSON is a 400 in the same body shape", async () => {
  const r = await app.inject({ method: "POST", url: "/v1/vms", payload: "{not json", headers: { "content-type": "application/json" } });
  assert.equal(r.statusCode, 400);
  assert.equal(r.json<{ error: string }>().error, "BAD_REQUEST");
});

test("the OpenAPI document is made of the routes the server has: each documented, upgrades included", async () => {
  const { UPGRADE_ROUTES } = await import("../api/openapi.js");
  const { registeredRoutes } = await import("./server.js");
  const routes = [...registeredRoutes(app), ...UPGRADE_ROUTES];
  for (const r of routes) assert.ok(r.doc?.summary, `${r.method} ${r.url} has no doc`);
  const doc = (await app.inject({ method: "GET", url: "/v1/openapi.json" })).json<{ openapi: string; paths: Record<string, Record<string, { requestBody?: unknown }>> }>();
  assert.equal(doc.openapi, "3.1.0");
  const key = (m: string, p: string) => `${m.toUpperCase()} ${p}`;
  const documented = Object.entries(doc.paths).flatMap(([p, ops]) => Object.keys(ops).map((m) => key(m, p.replace(/\{(\w+)\}/g, ":$1"))));
  assert.deepEqual(documented.sort(), routes.map((r) => key(r.method, r.url)).sort());
  assert.ok(doc.paths["/v1/vms"]?.post?.requestBody, "the VM spec schema is the create body");
});

test("docs/api.md has a row for every route, and docs/vm-spec.md one for every spec key", async () => {
  const { UPGRADE_ROUTES } = await import("../api/openapi.js");
  const { registeredRoutes } = await import("./server.js");
  const { VmSpecSchema } = await import("../api/vm-schemas.js");
  const api = readFileSync(new URL("../../../docs/api.md", import.meta.url), "utf8");
  for (const r of [...registeredRoutes(app), ...UPGRADE_ROUTES]) {
    const row = new RegExp(`^\\| \`${r.method.toUpperCase()} ${r.url.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}[\`\\[?]`, "m");
    assert.match(api, row, `docs/api.md: no row for ${r.method.toUpperCase()} ${r.url}`);
  }
  const spec = readFileSync(new URL("../../../docs/vm-spec.md", import.meta.url), "utf8");
  const documented = spec.split("\n").filter((l) => l.startsWith("| `")).flatMap((l) => [...l.split("|")[1]!.matchAll(/`(\w+)`/g)].map((m) => m[1]!));
  assert.deepEqual([...new Set(documented)].sort(), Object.keys(VmSpecSchema.properties).sort());
});

test("views and checked specs match the schemas the API documents", async () => {
  const { Value } = await import("@sinclair/typebox/value");
  const { VmViewSchema, CheckedSpecSchema } = await import("../api/vm-schemas.js");
  const { vmView } = await import("./views.js");
  const spec = checkSpec({ name: "full", cpus: 2, memory: "1G", network: "user", ports: ["8080:80/udp"], env: { A: "1" }, command: ["true"], machine: { pit: "off" } });
  assert.ok(Value.Check(CheckedSpecSchema, spec), JSON.stringify([...Value.Errors(CheckedSpecSchema, spec)].slice(0, 3)));
  const running: VmRecord = { ...record("a"), state: "running", pid: 7, pidStart: "9", argv: ["qemu"], accel: { chosen: "tcg", reason: "r" }, timings: { startedAt: new Date().toISOString(), helloMs: 700 }, lastExit: { exitCode: null, signal: "SIGKILL", at: "t", reason: "x" } };
  for (const v of [vmView(record("a")), vmView(running)]) assert.ok(Value.Check(VmViewSchema, JSON.parse(JSON.stringify(v))), JSON.stringify([...Value.Errors(VmViewSchema, v)].slice(0, 3)));
  const list = (await app.inject({ method: "GET", url: "/v1/vms" })).json<unknown[]>();
  for (const v of list) assert.ok(Value.Check(VmViewSchema, v));
});

test("request bodies are checked by their schema: unknown keys and wrong types are a 400 naming the problem", async () => {
  const bad = await app.inject({ method: "POST", url: "/v1/networks", payload: { name: "lan", bogus: 1 } });
  assert.equal(bad.statusCode, 400);
  assert.equal(bad.json<{ error: string }>().error, "BAD_REQUEST");
  assert.match(bad.json<{ message: string }>().message, /bogus/);
  const typed = await app.inject({ method: "POST", url: "/v1/vms/a/sessions/1/signal", payload: { signal: "TERM" } });
  assert.equal(typed.statusCode, 400);
  const bare = await app.inject({ method: "POST", url: "/v1/vms/a/sessions/1/signal" });
  assert.equal(bare.statusCode, 204, "no body means SIGTERM");
  assert.deepEqual(signalled, [["a", "1", 15]]);
  const op = await app.inject({ method: "POST", url: "/v1/vms/a/files/explode", payload: { path: "/x" } });
  assert.equal(op.statusCode, 400);
  const spec = await app.inject({ method: "POST", url: "/v1/vms", payload: { name: "x", cpu: 2 } });
  assert.equal(spec.json<{ error: string }>().error, "INVALID_SPEC", "the spec keeps its own checker's error");
});

// Errors the HTTP layer raises before any route runs answer in the same body shape as the routes' own.
const shape = (r: { json: <T>() => T }) => Object.keys(r.json<object>()).sort();
const codeOf = (r: { json: <T>() => T }) => r.json<{ error: string }>().error;

test("an unknown route is a 404 in mvm's body shape", async () => {
  const r = await app.inject({ method: "GET", url: "/v1/no-such-thing" });
  assert.equal(r.statusCode, 404);
  assert.deepEqual(shape(r), ["details", "error", "hint", "message"]);
  assert.equal(codeOf(r), "UNKNOWN_ROUTE");
  assert.match(r.json<{ message: string }>().message, /GET \/v1\/no-such-thing/);
});

test("Fastify's own refusals keep mvm's body: 413 too large, 415 content type, 400 bad JSON, 414 long parameter", async () => {
  const big = await app.inject({ method: "POST", url: "/v1/vms", payload: Buffer.alloc(64 * 1024 * 1024 + 1, 0x20), headers: { "content-type": "application/json" } });
  assert.deepEqual([big.statusCode, codeOf(big)], [413, "BODY_TOO_LARGE"]);
  assert.deepEqual(shape(big), ["details", "error", "hint", "message"]);
  const xml = await app.inject({ method: "POST", url: "/v1/vms", payload: "<vm/>", headers: { "content-type": "application/xml" } });
  assert.deepEqual([xml.statusCode, codeOf(xml)], [415, "UNSUPPORTED_MEDIA_TYPE"]);
  const json = await app.inject({ method: "POST", url: "/v1/vms", payload: "{\"name\": ", headers: { "content-type": "application/json" } });
  assert.deepEqual([json.statusCode, codeOf(json)], [400, "BAD_REQUEST"]);
  assert.deepEqual(shape(json), ["details", "error", "hint", "message"]);
  const long = await app.inject({ method: "GET", url: `/v1/vms/${"a".repeat(200)}` });
  assert.deepEqual([long.statusCode, codeOf(long)], [414, "URI_TOO_LONG"]);
});

test("what Node's HTTP parser refuses (a URL or headers over its limit) answers in mvm's body too", async () => {
  const dir = mkdtempSync(join(tmpdir(), "mvm-http-"));
  const server = buildServer(fakeManager(), { version: "test", home: dir });
  await server.listen({ path: join(dir, "s.sock") });
  const raw = (request: string) =>
    new Promise<{ status: number; body: { error: string } }>((resolve, reject) => {
      const s = connect(join(dir, "s.sock"));
      let text = "";
      s.on("data", (b: Buffer) => (text += b.toString()));
      s.on("error", reject);
      s.on("close", () => resolve({ status: Number(text.split(" ")[1]), body: JSON.parse(text.slice(text.indexOf("\r\n\r\n") + 4)) as { error: string } }));
      s.end(request);
    });
  try {
    const url = await raw(`GET /v1/vms/${"x".repeat(20000)} HTTP/1.1\r\nhost: mvm\r\n\r\n`);
    assert.deepEqual([url.status, url.body.error], [414, "URI_TOO_LONG"]);
    const headers = await raw(`GET /v1/vms HTTP/1.1\r\nhost: mvm\r\nx-big: ${"y".repeat(20000)}\r\n\r\n`);
    assert.deepEqual([headers.status, headers.body.error], [431, "HEADERS_TOO_LARGE"]);
    assert.deepEqual(Object.keys(headers.body).sort(), ["details", "error", "hint", "message"]);
  } finally {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a wrong state is a 409, and the client rebuilds it as a WrongStateError with its details", async () => {
  const r = await app.inject({ method: "POST", url: "/v1/vms/a/stop" });
  assert.equal(r.statusCode, 409);
  const e = errorFromBody(r.statusCode, r.json());
  assert.ok(e instanceof WrongStateError && e instanceof MvmError);
  assert.deepEqual([e.code, e.hint, e.message], ["WRONG_STATE", "h", "cannot stop VM a: it is created, and stop needs it running or paused"]);
  assert.deepEqual(e.details, { vm: "a", state: "created", allowed: ["running", "paused"], status: 409 });
  const missing = await app.inject({ method: "GET", url: "/v1/vms/zzz" });
  assert.ok(errorFromBody(missing.statusCode, missing.json()) instanceof NotFoundError);
});

test("suspend answers the suspended VM's view (boot and saved state included, as the schema says); resume goes to the manager", async () => {
  const { Value } = await import("@sinclair/typebox/value");
  const { VmViewSchema } = await import("../api/vm-schemas.js");
  asked.length = 0;
  const r = await app.inject({ method: "POST", url: "/v1/vms/a/suspend" });
  assert.equal(r.statusCode, 200);
  const view = r.json<{ state: string; suspended?: { stateBytes: number }; boot?: { how: string } }>();
  assert.ok(Value.Check(VmViewSchema, view), JSON.stringify([...Value.Errors(VmViewSchema, view)].slice(0, 3)));
  assert.deepEqual([view.state, view.suspended?.stateBytes, view.boot?.how], ["suspended", 268435456, "clone"]);
  const back = await app.inject({ method: "POST", url: "/v1/vms/a/resume" });
  assert.equal(back.statusCode, 200);
  assert.deepEqual(back.json<{ boot: unknown }>().boot, { how: "resume", reason: "the state VM a was suspended in", readyMs: 230 });
  assert.deepEqual(asked, [["suspend", "a"], ["resume", "a"]]);
});

test("snapshots: create (201, a name made up without a body), list, get, remove (204); views carry no host paths", async () => {
  const { Value } = await import("@sinclair/typebox/value");
  const { SnapshotViewSchema } = await import("../api/snapshot-schemas.js");
  snaps.clear();
  asked.length = 0;
  const made = await app.inject({ method: "POST", url: "/v1/vms/a/snapshots", payload: { name: "base" } });
  assert.equal(made.statusCode, 201);
  const view = made.json<Record<string, unknown>>();
  assert.ok(Value.Check(SnapshotViewSchema, view), JSON.stringify([...Value.Errors(SnapshotViewSchema, view)].slice(0, 3)));
  assert.deepEqual(view, {
    name: "base",
    vm: { id: "abc123", name: "a" },
    createdAt: "2025-01-01T12:00:00.000Z",
    qemuBuild: { sha256: "f".repeat(64), version: "7.2.0" },
    stateBytes: 536870912,
    pausedMs: 812,
    spec: { memoryMiB: 512, cpus: 2 },
  });
  const bare = await app.inject({ method: "POST", url: "/v1/vms/a/snapshots" });
  assert.equal(bare.statusCode, 201);
  assert.equal(bare.json<{ name: string }>().name, "a-20250101120000");
  assert.deepEqual(asked, [["snapshot", "a", "base"], ["snapshot", "a", undefined]]);
  const dup = await app.inject({ method: "POST", url: "/v1/vms/a/snapshots", payload: { name: "base" } });
  assert.deepEqual([dup.statusCode, codeOf(dup)], [409, "NAME_TAKEN"]);
  const noVm = await app.inject({ method: "POST", url: "/v1/vms/zzz/snapshots", payload: {} });
  assert.deepEqual([noVm.statusCode, codeOf(noVm)], [404, "NOT_FOUND"]);

  const list = (await app.inject({ method: "GET", url: "/v1/snapshots" })).json<Array<{ name: string }>>();
  assert.deepEqual(list.map((s) => s.name), ["base", "a-20250101120000"]);
  for (const v of list) assert.ok(Value.Check(SnapshotViewSchema, v));
  assert.equal((await app.inject({ method: "GET", url: "/v1/snapshots/base" })).json<{ stateBytes: number }>().stateBytes, 536870912);
  const gone = await app.inject({ method: "GET", url: "/v1/snapshots/nope" });
  assert.deepEqual([gone.statusCode, codeOf(gone)], [404, "NOT_FOUND"]);
  const rm = await app.inject({ method: "DELETE", url: "/v1/snapshots/base" });
  assert.equal(rm.statusCode, 204);
  assert.equal(rm.body, "");
  const again = await app.inject({ method: "DELETE", url: "/v1/snapshots/base" });
  assert.deepEqual([again.statusCode, codeOf(again)], [404, "NOT_FOUND"]);
});

test("a snapshot request body is checked by its schema, and the document says it may be left out", async () => {
  for (const payload of [{ bogus: 1 }, { name: "Not_A_Name" }, { name: "trailing-" }, { name: 7 }]) {
    const r = await app.inject({ method: "POST", url: "/v1/vms/a/snapshots", payload });
    assert.deepEqual([r.statusCode, codeOf(r)], [400, "BAD_REQUEST"], JSON.stringify(payload));
  }
  const doc = (await app.inject({ method: "GET", url: "/v1/openapi.json" })).json<{ paths: Record<string, Record<string, { requestBody?: { required: boolean }; responses: Record<string, unknown> }>> }>();
  const create = doc.paths["/v1/vms/{ref}/snapshots"]?.post;
  assert.equal(create?.requestBody?.required, false);
  assert.ok(create?.responses["201"]);
  assert.equal(doc.paths["/v1/vms/{ref}/sessions/{id}/signal"]?.post?.requestBody?.required, false, "no body means SIGTERM");
  assert.ok(doc.paths["/v1/snapshots/{name}"]?.delete?.responses["204"]);
});

test("the library's suspend, resume and snapshot calls speak these routes (over the socket, as a client does)", async () => {
  const { MvmClient, VmHandle } = await import("../client/client.js");
  const dir = mkdtempSync(join(tmpdir(), "mvm-http-"));
  const server = buildServer(fakeManager(), { version: "test", home: dir });
  await server.listen({ path: join(dir, "s.sock") });
  try {
    snaps.clear();
    asked.length = 0;
    const client = new MvmClient(join(dir, "s.sock"));
    const vm = new VmHandle(client, "a", "a");
    assert.equal((await client.suspend("a")).state, "suspended");
    assert.equal((await vm.suspend()).suspended?.wasPaused, false);
    assert.equal((await vm.resume()).boot?.how, "resume");
    assert.equal((await vm.snapshot({ name: "one" })).name, "one");
    assert.equal((await client.createSnapshot("a")).name, "a-20250101120000");
    assert.deepEqual((await client.snapshots()).map((s) => s.name), ["one", "a-20250101120000"]);
    assert.equal((await client.getSnapshot("one")).pausedMs, 812);
    await client.removeSnapshot("one");
    await assert.rejects(client.getSnapshot("one"), NotFoundError);
    await assert.rejects(client.createSnapshot("a", { name: "a-20250101120000" }), NameTakenError);
    assert.deepEqual(asked.slice(0, 5), [["suspend", "a"], ["suspend", "a"], ["resume", "a"], ["snapshot", "a", "one"], ["snapshot", "a", undefined]]);
  } finally {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test("request ids: a client's sane id is echoed, any other replaced; each request is one line in the log", async () => {
  const dir = mkdtempSync(join(tmpdir(), "mvm-reqlog-"));
  const requestLog = new RequestLog(join(dir, "requests.log"));
  const server = buildServer(fakeManager(), { version: "test", home: dir }, { requestLog });
  try {
    const mine = await server.inject({ method: "GET", url: "/v1/vms", headers: { "x-request-id": "ci-run-7.step:3" } });
    assert.equal(mine.headers["x-request-id"], "ci-run-7.step:3");
    for (const bad of ["a b", "x".repeat(65), "é"]) {
      const r = await server.inject({ method: "GET", url: "/v1/vms/zzz", headers: { "x-request-id": bad } });
      assert.match(String(r.headers["x-request-id"]), /^[0-9a-f]{16}$/, bad);
      assert.equal(r.statusCode, 404);
    }
    const made = await server.inject({ method: "GET", url: "/v1/info?token=secret" });
    await server.close();
    await requestLog.close();
    const lines = readFileSync(join(dir, "requests.log"), "utf8").trim().split("\n").map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.msg === "request");
    const [first, second, , , last] = lines;
    assert.ok(first && second && last && lines.length === 5, JSON.stringify(lines));
    assert.deepEqual({ ...first, time: undefined, ms: undefined }, { level: "info", time: undefined, id: "ci-run-7.step:3", listener: "unix", caller: "root", method: "GET", url: "/v1/vms", status: 200, ms: undefined, msg: "request" });
    assert.equal(second.status, 404);
    assert.equal(last.id, made.headers["x-request-id"]);
    assert.equal(last.url, "/v1/info?token=-");
    assert.equal(typeof last.ms, "number");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
