import assert from "node:assert/strict";
import { test } from "node:test";
import { checkSpec } from "../vmspec/vm-spec.js";
import { NameTakenError, NotFoundError, type VmRecord } from "../store/vm-store.js";
import { StateError } from "../vm/state.js";
import { buildServer } from "./server.js";
import type { VmManager } from "./vm-manager.js";

const record = (name: string): VmRecord => ({ id: "abc123", name, spec: checkSpec({ name }), state: "created", createdAt: "t", updatedAt: "t" });

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
      return Promise.resolve(record(body.name ?? "gen"));
    },
    stop: () => Promise.reject(new StateError("cannot stop VM a: it is created, and stop needs it running or paused", { hint: "h" })),
    exec: () => {
      throw new Error("must not be reached with a bad body");
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

test("the OpenAPI document describes exactly the routes the server has", async () => {
  const { documentedRoutes, UPGRADE_ROUTES } = await import("./openapi.js");
  const { registeredRoutes } = await import("./server.js");
  const key = ([m, p]: readonly [string, string]) => `${m.toUpperCase()} ${p}`;
  const served = [...registeredRoutes(app), ...UPGRADE_ROUTES].map(key).sort();
  assert.deepEqual(documentedRoutes().map(key).sort(), served);
  const doc = (await app.inject({ method: "GET", url: "/v1/openapi.json" })).json<{ openapi: string; paths: Record<string, object> }>();
  assert.equal(doc.openapi, "3.1.0");
  assert.ok("/v1/vms/{ref}/files/content" in doc.paths);
});
