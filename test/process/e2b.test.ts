// The E2B backend's refusals through the official SDK and raw HTTP against a daemon with its TCP listener
// (the fake QEMU; nothing boots): a missing or wrong API key is AuthenticationError, an unknown template
// a 404 naming the image to build, unknown sandboxes are not found to every control-plane call and 502 to
// envd, bad bodies are 400 in E2B's {code, message}, and mvm's own /v1 API is still served beside it.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { request } from "node:http";
import { join } from "node:path";
import { test } from "node:test";
import { Sandbox, type SandboxOpts } from "e2b";
import { FakeHome } from "./harness.js";
import { startTcpDaemon } from "./tcp-daemon.js";

test("E2B control plane and envd refusals, in the shapes the SDK maps", { timeout: 30_000 }, async (t) => {
  const h = new FakeHome();
  const d = await startTcpDaemon(h);
  t.after(async () => {
    await d.stop();
    await h.close();
  });
  const key = await d.token("ann", { role: "user" });
  const opts: SandboxOpts = { apiUrl: d.url, sandboxUrl: d.url, apiKey: key, requestTimeoutMs: 10_000 };

  await assert.rejects(Sandbox.create("base", { ...opts, apiKey: "wrong" }), (e: unknown) => (e as Error).name === "AuthenticationError");
  await assert.rejects(Sandbox.create("base", opts), (e: unknown) => /template 'base' not found: no mvm image named debian \(build it with mvm image build debian\)/.test((e as Error).message));
  await assert.rejects(Sandbox.create("Bad Name!", opts), /not found/);
  assert.deepEqual(await Sandbox.list(opts).nextItems(), []);
  assert.equal(await Sandbox.kill("inope", opts), false);
  await assert.rejects(Sandbox.getInfo("inope", opts), (e: unknown) => (e as Error).name === "SandboxNotFoundError");
  await assert.rejects(Sandbox.setTimeout("inope", 1000, opts), (e: unknown) => (e as Error).name === "SandboxNotFoundError");
  await assert.rejects(Sandbox.connect("inope", opts), (e: unknown) => (e as Error).name === "SandboxNotFoundError");

  const raw = async (path: string, init: RequestInit = {}) => {
    const r = await fetch(`${d.url}${path}`, init);
    const text = await r.text();
    return { status: r.status, body: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
  };
  const json = { "content-type": "application/json", "x-api-key": key };
  assert.deepEqual(await raw("/v2/sandboxes", { method: "POST", headers: { "content-type": "application/json" }, body: "{}" }), { status: 401, body: { code: 401, message: "send an mvm token as X-API-KEY (E2B_API_KEY)" } });
  const notJson = await raw("/v2/sandboxes", { method: "POST", headers: json, body: "{nope" });
  assert.equal(notJson.status, 400);
  assert.equal(notJson.body.code, 400);
  const badTimeout = await raw("/sandboxes/inope/timeout", { method: "POST", headers: json, body: JSON.stringify({ timeout: 1 }) });
  assert.equal(badTimeout.status, 404, "the sandbox is looked up first");
  const huge = await raw("/v2/sandboxes", { method: "POST", headers: json, body: JSON.stringify({ metadata: { x: "y".repeat(300_000) } }) });
  assert.equal(huge.status, 413, JSON.stringify(huge.body));
  assert.equal((await raw("/sandboxes/inope/nothing", { headers: json })).status, 404);

  const envd = await raw("/health", { headers: { "e2b-sandbox-id": "inope", "e2b-sandbox-port": "49983" } });
  assert.deepEqual(envd, { status: 502, body: { sandboxId: "inope", message: "The sandbox was not found", code: 502 } });
  // fetch sets Host itself: node's http.request sends the one given, as a preview URL's client would.
  const byHost = await new Promise<number>((resolve, reject) => {
    const r = request(`${d.url}/files?path=/etc/passwd`, { headers: { host: "49983-inope.e2b.app" } }, (res) => (res.resume(), resolve(res.statusCode ?? 0)));
    r.on("error", reject);
    r.end();
  });
  assert.equal(byHost, 502);

  // mvm's own API is untouched: a token still lists its VMs over /v1.
  assert.deepEqual(await d.as(key).list(), []);

  // The E2B backend's requests carry ids and are in the request log as mvm's are (plane "e2b").
  const traced = await fetch(`${d.url}/v2/sandboxes`, { headers: { "x-api-key": key, "x-request-id": "e2b-trace-1" } });
  assert.deepEqual([traced.status, traced.headers.get("x-request-id")], [200, "e2b-trace-1"]);
  await traced.text();
  await d.stop();
  const lines = readFileSync(join(h.home, "requests.log"), "utf8").trim().split("\n").map((l) => JSON.parse(l) as Record<string, unknown>);
  assert.deepEqual(lines.filter((l) => l.id === "e2b-trace-1").map((l) => [l.plane, l.method, l.url, l.status]), [["e2b", "GET", "/v2/sandboxes", 200]]);
  assert.ok(lines.some((l) => l.plane === "e2b" && l.status === 401), "refusals too");
  assert.ok(!readFileSync(join(h.home, "requests.log"), "utf8").includes(key), "no API key in the log");
});
