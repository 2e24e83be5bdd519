// The dashboard's file server (dashboard.ts) on a plain node server over a folder made here; the token a
// browser's WebSocket offers as a subprotocol (access.ts); the sign-in link `mvm dashboard` prints.
import assert from "node:assert/strict";
import { once } from "node:events";
import { writeFileSync } from "node:fs";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { dashboard } from "./dashboard.js";
import { subprotocolToken } from "./access.js";
import { dashboardLink, listenerUrlOf } from "../cli/commands/dashboard.js";
import { tempDir } from "../../test/support/temp-dirs.js";

async function serve(dir: string) {
  const d = dashboard(dir);
  const server = createServer((req, res) => {
    if (!d.handle(req, res)) res.writeHead(418).end("api");
  }).listen(0, "127.0.0.1");
  await once(server, "listening");
  const base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  return { base, close: () => new Promise<void>((r) => server.close(() => r())) };
}

test("the bundle's files with their types and caching; / redirects; the API's paths are left alone", async (t) => {
  const dir = tempDir("mvm-dash-");
  writeFileSync(join(dir, "index.html"), "<!doctype html><title>x</title>");
  writeFileSync(join(dir, "app.js"), "console.log(1)");
  writeFileSync(join(dir, "app.css"), "body{}");
  writeFileSync(join(dir, "notes.txt"), "not served");
  const s = await serve(dir);
  t.after(s.close);
  const root = await fetch(`${s.base}/`, { redirect: "manual" });
  assert.equal(root.status, 302);
  assert.equal(root.headers.get("location"), "/dashboard/");
  const index = await fetch(`${s.base}/dashboard/`);
  assert.equal(index.status, 200);
  assert.equal(index.headers.get("content-type"), "text/html; charset=utf-8");
  assert.equal(index.headers.get("cache-control"), "no-cache");
  assert.match(index.headers.get("content-security-policy") ?? "", /default-src 'self'/);
  const js = await fetch(`${s.base}/dashboard/app.js`);
  assert.equal(js.headers.get("content-type"), "text/javascript; charset=utf-8");
  assert.equal(await js.text(), "console.log(1)");
  const etag = js.headers.get("etag")!;
  assert.equal((await fetch(`${s.base}/dashboard/app.js`, { headers: { "if-none-match": etag } })).status, 304);
  assert.equal((await fetch(`${s.base}/dashboard/app.css`)).headers.get("content-type"), "text/css; charset=utf-8");
  for (const bad of ["/dashboard/notes.txt", "/dashboard/..%2Fx", "/dashboard/nope.js"]) {
    const r = await fetch(s.base + bad);
    assert.equal(r.status, 404, bad);
    assert.equal(((await r.json()) as { error: string }).error, "UNKNOWN_ROUTE");
  }
  const post = await fetch(`${s.base}/dashboard/`, { method: "POST" });
  assert.equal(post.status, 405);
  assert.equal(post.headers.get("allow"), "GET, HEAD");
  assert.equal((await fetch(`${s.base}/v1/vms`)).status, 418);
  assert.equal((await fetch(`${s.base}/dashboards`)).status, 418);
});

test("a dashboard not built says how to build it", async (t) => {
  const s = await serve(join(tmpdir(), "mvm-no-such-dashboard"));
  t.after(s.close);
  const r = await fetch(`${s.base}/dashboard/`);
  assert.equal(r.status, 404);
  assert.match(((await r.json()) as { hint: string }).hint, /setup\.sh/);
});

test("a WebSocket's token offered as the subprotocol mvm.token.TOKEN", () => {
  assert.equal(subprotocolToken("mvm, mvm.token.mvm_abc-_Z9"), "mvm_abc-_Z9");
  assert.equal(subprotocolToken("mvm.token.mvm_x"), "mvm_x");
  for (const h of [undefined, "", "mvm", "mvm.token.", "mvm.token.a b", "token.mvm_x"]) assert.equal(subprotocolToken(h), undefined, String(h));
});

test("the sign-in link: the listener's URL, the token in the fragment; a stale listener.json is ignored", () => {
  assert.equal(dashboardLink("http://127.0.0.1:7070"), "http://127.0.0.1:7070/dashboard/");
  assert.equal(dashboardLink("https://h:7443/", "mvm_a+b"), "https://h:7443/dashboard/#token=mvm_a%2Bb");
  const home = tempDir("mvm-home-");
  assert.equal(listenerUrlOf(home, 1), undefined);
  writeFileSync(join(home, "listener.json"), JSON.stringify({ url: "http://127.0.0.1:7070", pid: 42 }));
  assert.equal(listenerUrlOf(home, 42), "http://127.0.0.1:7070");
  assert.equal(listenerUrlOf(home, 43), undefined);
});
