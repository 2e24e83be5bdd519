// The daemon's rules for request bodies (src/daemon/request-body.ts, src/api/check.ts), against the real
// server with a stand-in manager: JSON bodies are objects without NUL bytes, within their route's limit,
// arriving within a deadline; every refusal is a 4xx in mvm's body shape.

import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { EXEC_BODY_LIMIT, JSON_BODY_LIMIT, NO_BODY_LIMIT } from "../api/routes.js";
import { checkBody } from "../api/check.js";
import { ExecBodySchema } from "../api/command-schemas.js";
import { NotFoundError } from "../errors.js";
import type { VmRecord } from "../store/vm-store.js";
import { checkSpec } from "../vmspec/vm-spec.js";
import { buildServer } from "./server.js";
import type { VmManager } from "./vm-manager.js";

const created: unknown[] = [];
const manager = {
  create: (body: unknown) => {
    const spec = checkSpec(body);
    created.push(body);
    return Promise.resolve({ id: "abc123", name: spec.name, spec, state: "created", createdAt: "t", updatedAt: "t" } satisfies VmRecord);
  },
  get: (ref: string) => {
    throw new NotFoundError(`no VM named ${ref}`);
  },
  start: (ref: string) => Promise.reject(new NotFoundError(`no VM named ${ref}`)),
  // Reached only by a body that parsed and matched the schema: says so with a 404 of its own.
  exec: (ref: string, o: unknown) => {
    checkBody(ExecBodySchema, o, "exec request");
    throw new NotFoundError(`exec reached for ${ref}`);
  },
} as unknown as VmManager;

const app = buildServer(manager, { version: "test", home: "/nonexistent" });

type Answer = { statusCode: number; json: <T>() => T };
const refused = (r: Answer, status: number, code: string, message?: RegExp) => {
  assert.equal(r.statusCode, status);
  const body = r.json<{ error: string; message: string; hint?: string }>();
  assert.deepEqual(Object.keys(body).sort(), ["details", "error", "hint", "message"]);
  assert.equal(body.error, code);
  assert.ok(body.message.length > 0);
  if (message) assert.match(body.message, message);
};
const json = { "content-type": "application/json" };

test("a JSON body must be an object: null, arrays, numbers and strings are a 400 on every route, and create nothing", async () => {
  created.length = 0;
  for (const url of ["/v1/vms", "/v1/networks", "/v1/vms/a/snapshots", "/v1/vms/a/sessions/1/signal", "/v1/vms/a/exec", "/v1/vms/a/files/stat", "/v1/images/import"]) {
    for (const payload of ["null", "[]", "[{}]", "0", "\"name\"", "true"]) {
      refused(await app.inject({ method: "POST", url, payload, headers: json }), 400, "BAD_REQUEST", /must be a JSON object, not (null|an array|a number|a string|a boolean)/);
    }
  }
  assert.deepEqual(created, []);
  // No body at all is not an empty spec either.
  refused(await app.inject({ method: "POST", url: "/v1/vms" }), 400, "INVALID_SPEC", /Expected object/);
  assert.equal((await app.inject({ method: "POST", url: "/v1/vms", payload: "{}", headers: json })).statusCode, 201, "{} asks for every default");
});

test("a NUL byte anywhere in a JSON body (a value, a key, deep in a list) is a 400 naming where", async () => {
  created.length = 0;
  const cases: Array<[unknown, RegExp]> = [
    [{ env: { A: "x\u0000y" } }, /\/env\/A: holds a NUL byte/],
    [{ env: { "A\u0000": "x" } }, /"\/env\/A\\u0000": holds a NUL byte/],
    [{ command: ["sh", "-c", "echo\u0000rm"] }, /\/command\/2/],
    [{ disks: ["/tmp/a\u0000.img"] }, /\/disks\/0/],
    [{ kernel: "\u0000" }, /\/kernel/],
  ];
  for (const [body, where] of cases) refused(await app.inject({ method: "POST", url: "/v1/vms", payload: JSON.stringify(body), headers: json }), 400, "BAD_REQUEST", where);
  refused(await app.inject({ method: "POST", url: "/v1/vms/a/exec", payload: { argv: ["a\u0000b"] } }), 400, "BAD_REQUEST", /\/argv\/0/);
  assert.deepEqual(created, []);
  // The spec's checker says the same to callers that are not HTTP (the manager's own create).
  assert.throws(() => checkSpec({ env: { A: "\u0000" } }), /\/env\/A: holds a NUL byte/);
});

test("environment variable names are checked by one schema for the spec and for exec: no '=' smuggles a second variable", async () => {
  for (const env of [{ "A=B": "c" }, { "": "x" }, { "1A": "x" }, { "A B": "x" }]) {
    refused(await app.inject({ method: "POST", url: "/v1/vms", payload: { env } }), 400, "INVALID_SPEC", /\/env\/.*environment variable names/);
    refused(await app.inject({ method: "POST", url: "/v1/vms/a/exec", payload: { argv: ["true"], env } }), 400, "BAD_REQUEST");
  }
  refused(await app.inject({ method: "POST", url: "/v1/vms/a/exec", payload: { argv: ["true"], env: { GOOD_1: "x=y" } } }), 404, "NOT_FOUND", /exec reached/);
});

test("__proto__ keys, other content types and bodies over a route's limit are refused before any route runs", async () => {
  refused(await app.inject({ method: "POST", url: "/v1/vms", payload: "{\"__proto__\": {\"cpus\": 2}}", headers: json }), 400, "BAD_REQUEST");
  refused(await app.inject({ method: "POST", url: "/v1/vms", payload: "{\"constructor\": {\"prototype\": {}}}", headers: json }), 400, "BAD_REQUEST");
  refused(await app.inject({ method: "POST", url: "/v1/vms", payload: "{}", headers: { "content-type": "text/plain" } }), 415, "UNSUPPORTED_MEDIA_TYPE");
  const padded = (n: number) => `{"name": "x"${" ".repeat(n - 13)}}`;
  assert.equal(Buffer.byteLength(padded(100)), 100);
  refused(await app.inject({ method: "POST", url: "/v1/vms", payload: padded(JSON_BODY_LIMIT + 1), headers: json }), 413, "BODY_TOO_LARGE", /over 1 MiB, the limit of POST \/v1\/vms/);
  assert.equal((await app.inject({ method: "POST", url: "/v1/vms", payload: padded(JSON_BODY_LIMIT), headers: json })).statusCode, 201);
  refused(await app.inject({ method: "POST", url: "/v1/vms/a/start", payload: padded(NO_BODY_LIMIT + 1), headers: json }), 413, "BODY_TOO_LARGE", /over 16 KiB/);
  refused(await app.inject({ method: "POST", url: "/v1/vms/a/start", payload: padded(NO_BODY_LIMIT), headers: json }), 404, "NOT_FOUND");
  // exec carries its whole stdin: it takes more, up to its own limit.
  const exec = (n: number) => `{"argv": ["cat"], "input": "${"A".repeat(n - 30)}"}`;
  assert.equal(Buffer.byteLength(exec(100)), 100);
  refused(await app.inject({ method: "POST", url: "/v1/vms/a/exec", payload: exec(4 * JSON_BODY_LIMIT), headers: json }), 404, "NOT_FOUND", /exec reached/);
  refused(await app.inject({ method: "POST", url: "/v1/vms/a/exec", payload: exec(EXEC_BODY_LIMIT + 1), headers: json }), 413, "BODY_TOO_LARGE", /over 16 MiB/);
});

/** A raw HTTP exchange over the server's socket: what is written (in pieces, with pauses), and the answer. */
async function rawExchange(socketPath: string, pieces: Array<string | number>, o: { end?: boolean } = {}): Promise<{ status: number; body: Record<string, unknown>; ms: number }> {
  const s = connect(socketPath);
  const t0 = Date.now();
  let text = "";
  const answered = new Promise<void>((resolve) => {
    s.on("data", (b: Buffer) => (text += b.toString()));
    s.on("close", () => resolve());
    s.on("error", () => resolve());
  });
  for (const p of pieces) {
    if (typeof p === "number") await new Promise((r) => setTimeout(r, p));
    else if (!s.destroyed) s.write(p);
  }
  if (o.end) s.end();
  await answered;
  const head = text.slice(0, text.indexOf("\r\n\r\n"));
  const rest = text.slice(head.length + 4);
  return { status: Number(head.split(" ")[1]), body: rest ? (JSON.parse(rest) as Record<string, unknown>) : {}, ms: Date.now() - t0 };
}

test("a body that stalls is a 408 after the deadline; one sent slowly but in time is taken; the server serves on", async () => {
  const dir = mkdtempSync(join(tmpdir(), "mvm-body-"));
  const server = buildServer(manager, { version: "test", home: dir }, { bodyTimeoutMs: 300 });
  const sock = join(dir, "s.sock");
  await server.listen({ path: sock });
  try {
    const body = JSON.stringify({ name: "slow" });
    const head = `POST /v1/vms HTTP/1.1\r\nhost: mvm\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\nconnection: close\r\n\r\n`;
    const stalled = await rawExchange(sock, [head, body.slice(0, 5)]);
    assert.equal(stalled.status, 408);
    assert.equal(stalled.body.error, "REQUEST_TIMEOUT");
    assert.ok(stalled.ms >= 250 && stalled.ms < 5000, `answered after ${stalled.ms} ms`);
    const trickled = await rawExchange(sock, [head, ...[...body].flatMap((c) => [c, 10])]);
    assert.equal(trickled.status, 201);
    // A client that goes away half-way leaves nothing behind that fails later (no timer, no stream error).
    await rawExchange(sock, [head, body.slice(0, 3)], { end: true }).catch(() => undefined);
    const gone = connect(sock);
    gone.write(head + body.slice(0, 4));
    await new Promise((r) => setTimeout(r, 20));
    gone.destroy();
    await new Promise((r) => setTimeout(r, 500));
    assert.equal((await server.inject({ method: "POST", url: "/v1/vms", payload: {} })).statusCode, 201);
  } finally {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test("an upgrade with a VM reference that is not valid percent-encoding is a 400, and the server serves on", async () => {
  const dir = mkdtempSync(join(tmpdir(), "mvm-body-"));
  const server = buildServer(manager, { version: "test", home: dir });
  const sock = join(dir, "s.sock");
  await server.listen({ path: sock });
  try {
    for (const kind of ["exec", "console"]) {
      const r = await rawExchange(sock, [`GET /v1/vms/%zz/${kind} HTTP/1.1\r\nhost: mvm\r\nconnection: Upgrade\r\nupgrade: mvm-${kind}\r\n\r\n`]);
      assert.deepEqual([r.status, r.body.error], [400, "BAD_REQUEST"]);
    }
    assert.equal((await server.inject({ method: "GET", url: "/v1/openapi.json" })).statusCode, 200);
  } finally {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
