// The WebSocket streams over the network listener with tokens (tcp-daemon.ts: a real daemon over the fake
// QEMU): the handshake goes through the same checks as every route. No token is 401, a read token 403,
// another user's VM 404 (as one that does not exist), the owner's stream runs; and removing a token ends
// the streams it has open, their commands with them.

import assert from "node:assert/strict";
import { test } from "node:test";
import WebSocket from "ws";
import { FakeHome, waitFor } from "./harness.js";
import { startTcpDaemon } from "./tcp-daemon.js";

const T = { timeout: 30_000 };

/** Opens a WebSocket: its messages, its close, or the handshake's HTTP status when refused. */
function open(url: string, token?: string): Promise<{ ws: WebSocket; json: Array<Record<string, unknown>>; closed: Promise<number> } | { refused: number }> {
  const ws = new WebSocket(url, { headers: token ? { authorization: `Bearer ${token}` } : {} });
  const json: Array<Record<string, unknown>> = [];
  ws.on("message", (b: Buffer) => json.push(JSON.parse(b.toString()) as Record<string, unknown>));
  const closed = new Promise<number>((r) => ws.on("close", (code) => r(code)));
  return new Promise((resolve, reject) => {
    ws.once("open", () => resolve({ ws, json, closed }));
    ws.once("unexpected-response", (_req, res) => resolve({ refused: res.statusCode ?? 0 }));
    ws.once("error", reject);
  });
}

test("WebSocket over TCP: 401 without a token, 403 for a read token, 404 on another's VM; the owner's runs; a removed token's stream ends", T, async (t) => {
  const h = new FakeHome();
  const d = await startTcpDaemon(h);
  t.after(async () => {
    await d.stop();
    await h.close();
  });
  const alice = await d.token("alice", { role: "user" });
  const bob = await d.token("bob", { role: "user" });
  const reader = await d.token("reader", { role: "read" });
  const a = d.as(alice);
  await a.start((await a.create({ name: "alices" })).id);
  const ws = (path: string) => `${d.url.replace(/^http/, "ws")}${path}`;

  assert.deepEqual(await open(ws("/v1/vms/alices/exec/ws")), { refused: 401 });
  assert.deepEqual(await open(ws("/v1/vms/alices/console/ws"), reader), { refused: 403 });
  assert.deepEqual(await open(ws("/v1/vms/alices/exec/ws"), reader), { refused: 403 });
  assert.deepEqual(await open(ws("/v1/vms/alices/exec/ws"), bob), { refused: 404 }, "another's VM is as one that does not exist");

  const run = await open(ws("/v1/vms/alices/exec/ws"), alice);
  assert.ok("ws" in run);
  run.ws.send(JSON.stringify({ argv: ["sh", "-c", "echo over-tcp"] }));
  assert.equal(await run.closed, 1000);
  assert.equal(Buffer.from(run.json.find((m) => m.type === "stdout")?.data as string, "base64").toString(), "over-tcp\n");

  const long = await open(ws("/v1/vms/alices/exec/ws"), alice);
  assert.ok("ws" in long);
  long.ws.send(JSON.stringify({ argv: ["sleep", "30"] }));
  await waitFor(() => long.json.some((m) => m.type === "session"), "the session");
  assert.equal((await d.root.sessions("alices")).length, 1);
  await d.root.removeToken("alice");
  const code = await Promise.race([long.closed, new Promise<string>((r) => setTimeout(() => r("still open"), 5000))]);
  assert.notEqual(code, "still open", "the removed token's stream ended");
  const end = Date.now() + 5000;
  while ((await d.root.sessions("alices")).length && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
  assert.deepEqual(await d.root.sessions("alices"), [], "and its command with it");
  await d.root.remove("alices", { force: true });
});
