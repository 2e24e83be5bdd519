import { test } from "node:test";
import assert from "node:assert/strict";
import { FileExistsError, FileNotFoundError, NotFoundError, QuotaExceededError, UnauthorizedError, WrongStateError, InvalidSpecError } from "../errors.js";
import { connectError, controlError, E2bError } from "./errors.js";
import { EnvelopeError } from "./envelope.js";
import { routeOf } from "./routing.js";
import { parseMetadataFilter } from "./sandboxes.js";

test("errors: mvm's classes as the Connect codes the SDK maps, with their HTTP status", () => {
  const c = (e: unknown) => [connectError(e).code, connectError(e).status];
  assert.deepEqual(c(new FileNotFoundError("x")), ["not_found", 404]);
  assert.deepEqual(c(new NotFoundError("x")), ["not_found", 404]);
  assert.deepEqual(c(new FileExistsError("x")), ["already_exists", 409]);
  assert.deepEqual(c(new WrongStateError("x")), ["failed_precondition", 400]);
  assert.deepEqual(c(new UnauthorizedError("x")), ["unauthenticated", 401]);
  assert.deepEqual(c(new InvalidSpecError("x")), ["invalid_argument", 400]);
  assert.deepEqual(c(new EnvelopeError("big", "resource_exhausted")), ["resource_exhausted", 429]);
  assert.deepEqual(c(new Error("a bug")), ["internal", 500]);
  assert.match(connectError(new InvalidSpecError("bad", { hint: "do this" })).message, /bad \(do this\)/);
});

test("errors: the control plane answers {code: status, message}", () => {
  assert.deepEqual(controlError(new E2bError("sandbox x not found", "not_found")), { status: 404, body: { code: 404, message: "sandbox x not found" } });
  assert.deepEqual(controlError(new EnvelopeError("big", "resource_exhausted")).status, 413);
  assert.deepEqual(controlError(new EnvelopeError("{x", "invalid_argument")), { status: 400, body: { code: 400, message: "{x" } });
  const q = controlError(new QuotaExceededError("too many", { hint: "remove one" }));
  assert.equal(q.body.code, q.status);
  assert.match(q.body.message, /too many \(remove one\)/);
});

test("routing: envd by header or Host, the control plane by path, the rest is mvm's", () => {
  assert.deepEqual(routeOf("/process.Process/Start", { "e2b-sandbox-id": "iabc", "e2b-sandbox-port": "49983" }), { plane: "envd", sandboxId: "iabc", port: 49983 });
  assert.deepEqual(routeOf("/", { host: "8080-iabc.mvm.local" }), { plane: "envd", sandboxId: "iabc", port: 8080 });
  assert.deepEqual(routeOf("/v2/sandboxes?limit=3", {}), { plane: "control" });
  assert.deepEqual(routeOf("/sandboxes/iabc/timeout", {}), { plane: "control" });
  assert.equal(routeOf("/v1/vms", { host: "127.0.0.1:7070" }), undefined);
  assert.equal(routeOf("/sandboxesx", {}), undefined);
  assert.deepEqual(routeOf("/files?path=%2Fx&signature=v1_abc", {}), { plane: "signed" });
  assert.equal(routeOf("/files?path=%2Fx", {}), undefined, "unsigned, without a sandbox: mvm's (and refused there)");
});

test("the list's metadata filter, as the SDK encodes it", () => {
  const pairs = Object.fromEntries(Object.entries({ app: "a b&c", "k=1": "v" }).map(([k, v]) => [encodeURIComponent(k), encodeURIComponent(v)]));
  const sent = new URLSearchParams(pairs).toString();
  assert.deepEqual(parseMetadataFilter(new URLSearchParams({ metadata: sent }).get("metadata")), { app: "a b&c", "k=1": "v" });
  assert.deepEqual(parseMetadataFilter(null), {});
});
