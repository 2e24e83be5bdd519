// The console and interactive exec over WebSocket (src/daemon/websocket.ts) against a real daemon
// (http-daemon.ts: the HTTP API over the fake QEMU), spoken to with the `ws` client as a browser would:
// bytes typed reach the console and come back, exec's messages (session, stdout, stderr, exit), stdin,
// refusals with their close codes (a bad first message, an unknown VM, a message over the limit, binary
// to exec), and clients that vanish or stop answering pings leave no command behind. In-process at the
// end: the upgrade goes through the per-request caller check as every HTTP route does.

import assert from "node:assert/strict";
import { request } from "node:http";
import { join } from "node:path";
import { after, before, test } from "node:test";
import WebSocket from "ws";
import { MvmClient } from "../../src/client/client.js";
import { buildServer } from "../../src/daemon/server.js";
import { ForbiddenError } from "../../src/errors.js";
import { HOST_ROOT } from "../../src/auth/caller.js";
import { FakeHome, waitFor } from "./harness.js";
import { startHttpDaemon, type HttpDaemon } from "./http-daemon.js";

const T = { timeout: 20_000 };
const PING_MS = 300;

let h: FakeHome;
let d: HttpDaemon;
let client: MvmClient;

before(async () => {
  h = new FakeHome();
  d = await startHttpDaemon(h, { body: { wsPingMs: PING_MS } });
  client = new MvmClient(d.socket);
  await client.create({ name: "ws" });
  await client.start("ws");
});

after(async () => {
  await client?.remove("ws", { force: true }).catch(() => undefined);
  await d?.stop();
  await h?.close();
});

const url = (path: string, socket = d.socket) => `ws+unix://${socket}:${path}`;

interface Opened {
  ws: WebSocket;
  /** Text messages, parsed. */
  json: Array<Record<string, unknown>>;
  binary: Buffer[];
  closed: Promise<{ code: number; reason: string }>;
}

function open(path: string, o: { autoPong?: boolean; socket?: string; headers?: Record<string, string> } = {}): Promise<Opened> {
  const ws = new WebSocket(url(path, o.socket), { autoPong: o.autoPong ?? true, headers: o.headers });
  const json: Opened["json"] = [];
  const binary: Buffer[] = [];
  ws.on("message", (data: Buffer, isBinary) => (isBinary ? binary.push(data) : json.push(JSON.parse(data.toString()) as Record<string, unknown>)));
  const closed = new Promise<{ code: number; reason: string }>((r) => ws.on("close", (code, reason) => r({ code, reason: reason.toString() })));
  return new Promise((resolve, reject) => {
    ws.once("open", () => resolve({ ws, json, binary, closed }));
    ws.once("error", reject);
    ws.once("unexpected-response", (_req, res) => reject(new Error(`handshake refused: ${res.statusCode}`)));
  });
}

const out = (msgs: Array<Record<string, unknown>>, type: string) =>
  msgs.filter((m) => m.type === type).map((m) => Buffer.from(m.data as string, "base64").toString()).join("");

test("console: bytes typed reach the VM's console and its output comes back, in binary messages", T, async () => {
  const c = await open("/v1/vms/ws/console/ws");
  c.ws.send(Buffer.from("echo typed-in-binary\r"));
  c.ws.send("and-as-text\r"); // a browser terminal sends strings: their UTF-8 bytes
  await waitFor(() => Buffer.concat(c.binary).toString().includes("and-as-text"), "the echo of what was typed");
  const seen = Buffer.concat(c.binary).toString();
  assert.match(seen, /echo typed-in-binary\r/);
  assert.deepEqual(c.json, [], "no control messages while all goes well");
  c.ws.close();
  assert.equal((await c.closed).code, 1005);
});

test("exec: session, stdout and stderr apart, the exit, then close 1000", T, async () => {
  const c = await open("/v1/vms/ws/exec/ws");
  c.ws.send(JSON.stringify({ argv: ["sh", "-c", "echo hi; echo oops >&2; exit 3"] }));
  const { code, reason } = await c.closed;
  assert.deepEqual({ code, reason }, { code: 1000, reason: "exit" });
  assert.equal(c.json[0]?.type, "session");
  assert.equal(out(c.json, "stdout"), "hi\n");
  assert.equal(out(c.json, "stderr"), "oops\n");
  const exit = c.json.at(-1)!;
  assert.deepEqual({ type: exit.type, status: exit.status, exitCode: exit.exitCode }, { type: "exit", status: 3, exitCode: 3 });
});

test("exec: stdin messages reach the command, eof ends it", T, async () => {
  const c = await open("/v1/vms/ws/exec/ws");
  c.ws.send(JSON.stringify({ argv: ["cat"] }));
  c.ws.send(JSON.stringify({ type: "stdin", data: Buffer.from("through the browser\n").toString("base64") }));
  c.ws.send(JSON.stringify({ type: "eof" }));
  assert.equal((await c.closed).code, 1000);
  assert.equal(out(c.json, "stdout"), "through the browser\n");
  assert.equal(c.json.at(-1)?.status, 0);
});

test("a bad first message is an error message and close 4400 with the reason; an unknown VM 4404", T, async () => {
  for (const bad of ["not json", "[1]", JSON.stringify({ argv: [] }), JSON.stringify({ argv: ["true"], bogus: 1 })]) {
    const c = await open("/v1/vms/ws/exec/ws");
    c.ws.send(bad);
    const { code, reason } = await c.closed;
    assert.equal(code, 4400, bad);
    assert.match(reason, /^BAD_REQUEST: /, bad);
    assert.equal(c.json[0]?.error, "BAD_REQUEST", bad);
  }
  const missing = await open("/v1/vms/nope/exec/ws");
  missing.ws.send(JSON.stringify({ argv: ["true"] }));
  const m = await missing.closed;
  assert.equal(m.code, 4404);
  assert.match(m.reason, /^NOT_FOUND: /);
  const con = await open("/v1/vms/nope/console/ws");
  assert.equal((await con.closed).code, 4404);
  const binary = await open("/v1/vms/ws/exec/ws");
  binary.ws.send(Buffer.from([1, 2, 3]));
  assert.equal((await binary.closed).code, 1003);
});

test("a message over the limit (1 MiB) closes the socket with 1009, and its command goes", T, async () => {
  const c = await open("/v1/vms/ws/exec/ws");
  c.ws.send(JSON.stringify({ argv: ["cat"] }));
  await waitFor(() => c.json.some((m) => m.type === "session"), "the session");
  c.ws.send(JSON.stringify({ type: "stdin", data: "A".repeat(1024 * 1024) }));
  assert.equal((await c.closed).code, 1009);
  await waitUntilNoSessions();
});

async function waitUntilNoSessions(): Promise<void> {
  const end = Date.now() + 5000;
  let left = await client.sessions("ws");
  while (left.length && Date.now() < end) {
    await new Promise((r) => setTimeout(r, 20));
    left = await client.sessions("ws");
  }
  assert.deepEqual(left, [], "no command left in the session registry");
}

test("a client vanishing mid-stream (no close frame) ends only its stream: its command goes, the daemon's descriptors come back", T, async () => {
  const fdsBefore = d.fds().length;
  const keep = await open("/v1/vms/ws/exec/ws");
  keep.ws.send(JSON.stringify({ argv: ["cat"] }));
  const c = await open("/v1/vms/ws/exec/ws");
  c.ws.send(JSON.stringify({ argv: ["sleep", "30"] }));
  await waitFor(() => c.json.some((m) => m.type === "session") && keep.json.some((m) => m.type === "session"), "both sessions");
  assert.equal((await client.sessions("ws")).length, 2);
  c.ws.terminate(); // the TCP/Unix socket destroyed: the daemon sees it end, with no goodbye
  const end = Date.now() + 5000;
  while ((await client.sessions("ws")).length !== 1 && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
  assert.deepEqual((await client.sessions("ws")).map((s) => s.argv), [["cat"]], "the vanished client's command is gone, the other runs on");
  keep.ws.send(JSON.stringify({ type: "stdin", data: Buffer.from("still here\n").toString("base64") }));
  keep.ws.send(JSON.stringify({ type: "eof" }));
  assert.equal((await keep.closed).code, 1000);
  assert.equal(out(keep.json, "stdout"), "still here\n");
  await waitUntilNoSessions();
  await waitFor(() => d.fds().length <= fdsBefore, `the daemon's descriptors back to ${fdsBefore}`);
});

test("a client that stops answering pings is ended after the deadline, and its command with it", T, async () => {
  const c = await open("/v1/vms/ws/exec/ws", { autoPong: false });
  c.ws.send(JSON.stringify({ argv: ["sleep", "30"] }));
  await waitFor(() => c.json.some((m) => m.type === "session"), "the session");
  const t0 = Date.now();
  const { code } = await c.closed;
  assert.equal(code, 1006, "terminated, without a close handshake");
  assert.ok(Date.now() - t0 <= PING_MS * 3, `ended within two ping intervals (${Date.now() - t0} ms)`);
  await waitUntilNoSessions();
  // One that answers stays, over several intervals.
  const alive = await open("/v1/vms/ws/console/ws");
  await new Promise((r) => setTimeout(r, PING_MS * 4));
  assert.equal(alive.ws.readyState, WebSocket.OPEN);
  alive.ws.close();
});

test("a WebSocket route without the upgrade is a 400; an upgrade to no route is a 404, both in mvm's shape", T, async () => {
  const get = (path: string, headers: Record<string, string> = {}) =>
    new Promise<{ status: number; body: Record<string, unknown> }>((resolve, reject) => {
      const req = request({ socketPath: d.socket, path, headers }, (res) => {
        let text = "";
        res.on("data", (b: Buffer) => (text += b.toString()));
        res.on("end", () => resolve({ status: res.statusCode!, body: JSON.parse(text) as Record<string, unknown> }));
      });
      req.on("error", reject);
      req.end();
    });
  const plain = await get("/v1/vms/ws/console/ws");
  assert.deepEqual([plain.status, plain.body.error], [400, "BAD_REQUEST"]);
  await assert.rejects(open("/v1/vms/ws/nothing/ws"), /handshake refused: 404/);
});

test("the upgrade goes through the per-request caller check, as every HTTP route does", T, async () => {
  const manager = h.manager();
  const app = buildServer(manager, { version: "t", home: h.home }, {
    callerOf: (req) => {
      if (req.headers["x-token"] === "read") return { kind: "token", name: "r", role: "read" };
      if (req.headers["x-token"] !== "good") throw new ForbiddenError("no token");
      return HOST_ROOT;
    },
  });
  const socket = join(h.home, "caller.sock");
  await app.listen({ path: socket });
  try {
    await assert.rejects(open("/v1/vms/ws/console/ws", { socket }), /handshake refused: 403/);
    await assert.rejects(open("/v1/vms/ws/exec/ws", { socket, headers: { "x-token": "read" } }), /handshake refused: 403/, "a read token runs no command, though the method is GET");
    const ws = new WebSocket(url("/v1/vms/nope/console/ws", socket), { headers: { "x-token": "good" } });
    const code = await new Promise<number>((r) => ws.on("close", (c) => r(c)));
    assert.equal(code, 4404, "past the check, the route ran");
  } finally {
    await app.close();
  }
});
