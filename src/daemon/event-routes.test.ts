import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { request, type IncomingMessage } from "node:http";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test, type TestContext } from "node:test";
import Fastify from "fastify";
import { readEvents, type StreamedEvent } from "../client/events.js";
import { NotFoundError } from "../errors.js";
import { handleErrors } from "./http-errors.js";
import { registerEventRoutes, type EventStreamOptions } from "./event-routes.js";
import { EventBus } from "./events.js";

const a = { id: "aaa111", name: "a" };
const b = { id: "bbb222", name: "b" };

async function serve(t: TestContext, o: EventStreamOptions = {}) {
  const dir = mkdtempSync(join(tmpdir(), "mvm-ev-"));
  const socketPath = join(dir, "s.sock");
  const bus = new EventBus(20, 1);
  const app = Fastify();
  handleErrors(app);
  registerEventRoutes(app, { bus: () => bus, vmId: (ref) => [a, b].find((v) => v.name === ref || v.id === ref)?.id ?? (() => { throw new NotFoundError(`no VM named ${ref}`, { hint: "h" }); })(), ...o });
  await app.listen({ path: socketPath });
  t.after(async () => {
    await app.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const open = (path: string, headers: Record<string, string> = {}) =>
    new Promise<IncomingMessage>((resolve, reject) => request({ socketPath, path, headers }, resolve).on("error", reject).end());
  return { bus, app, socketPath, open };
}

/** Reads `n` events of a stream, then stops. */
async function take(res: IncomingMessage, n: number): Promise<StreamedEvent[]> {
  const out: StreamedEvent[] = [];
  if (n === 0) return out;
  for await (const e of readEvents(res)) {
    out.push(e);
    if (out.length >= n) break;
  }
  return out;
}

const waitUntil = async (cond: () => boolean, what: string) => {
  const end = Date.now() + 3000;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
};

test("a stream gives live events; Last-Event-ID resumes after the last seen, without loss or duplicate", async (t) => {
  const { bus, open } = await serve(t);
  const res = await open("/v1/events");
  assert.equal(res.statusCode, 200);
  assert.match(String(res.headers["content-type"]), /^text\/event-stream/);
  await waitUntil(() => bus.subscribers === 1, "the subscription");
  bus.publish({ type: "vm.created", vm: a });
  bus.publish({ type: "vm.state", vm: a, from: "created", to: "starting" });
  const first = await take(res, 2);
  assert.deepEqual(first.map((e) => [e.id, e.type]), [[1, "vm.created"], [2, "vm.state"]]);
  await waitUntil(() => bus.subscribers === 0, "the first stream to end");
  // Missed while away: 3 and 4; then live: 5.
  bus.publish({ type: "vm.state", vm: a, from: "starting", to: "running" });
  bus.publish({ type: "vm.state", vm: a, from: "running", to: "stopping" });
  const again = await open("/v1/events", { "last-event-id": "2" });
  await waitUntil(() => bus.subscribers === 1, "the second subscription");
  bus.publish({ type: "vm.state", vm: a, from: "stopping", to: "stopped" });
  const rest = await take(again, 3);
  assert.deepEqual(rest.map((e) => e.id), [3, 4, 5]);
  // ?since= does the same (for clients that cannot set headers).
  assert.deepEqual((await take(await open("/v1/events?since=3"), 2)).map((e) => e.id), [4, 5]);
});

test("resuming from an id that fell out of the ring says reset first, then gives what is kept", async (t) => {
  const { bus, open } = await serve(t);
  for (let i = 0; i < 30; i++) bus.publish({ type: "vm.created", vm: a }); // kept: 11..30
  const got = await take(await open("/v1/events", { "last-event-id": "5" }), 3);
  assert.equal(got[0]!.type, "reset");
  assert.deepEqual(got[0], { type: "reset", requested: 5, oldest: 11, reason: got[0]!.type === "reset" ? got[0]!.reason : "" });
  assert.deepEqual(got.slice(1).map((e) => e.id), [11, 12]);
});

test("?vm= and ?types= filter; visible() hides what a caller may not see; unknown ones are refused", async (t) => {
  const { bus, open } = await serve(t, { visible: (e, req) => req.headers["x-sees"] !== "a-only" || ("vm" in e && e.vm?.id === a.id) });
  bus.publish({ type: "vm.created", vm: a });
  bus.publish({ type: "vm.created", vm: b });
  bus.publish({ type: "vm.state", vm: b, from: "created", to: "starting" });
  bus.publish({ type: "image.done", image: "deb", op: "build" });
  bus.publish({ type: "vm.state", vm: a, from: "created", to: "starting" });
  assert.deepEqual((await take(await open("/v1/events?since=0&vm=b"), 2)).map((e) => e.id), [2, 3]);
  assert.deepEqual((await take(await open("/v1/events?since=0&types=vm.state,image."), 3)).map((e) => e.id), [3, 4, 5]);
  assert.deepEqual((await take(await open("/v1/events?since=0&types=vm.", { "x-sees": "a-only" }), 2)).map((e) => e.id), [1, 5]);
  const bad = await open("/v1/events?types=vm.exploded");
  assert.equal(bad.statusCode, 400);
  const missing = await open("/v1/events?vm=zzz");
  assert.equal(missing.statusCode, 404);
  bad.resume();
  missing.resume();
});

test("a client that stops reading is cut off once too much waits for it; others go on", async (t) => {
  const { bus, socketPath, open } = await serve(t, { maxQueuedBytes: 256 * 1024, maxQueuedEvents: 100000 });
  // A raw client that sends its request and never reads a byte.
  const slow = connect(socketPath);
  slow.write("GET /v1/events HTTP/1.1\r\nHost: x\r\n\r\n");
  slow.pause();
  let slowClosed = false;
  slow.on("close", () => (slowClosed = true));
  slow.on("error", () => undefined);
  await waitUntil(() => bus.subscribers === 1, "the slow client's subscription");
  const fast = await open("/v1/events");
  await waitUntil(() => bus.subscribers === 2, "the fast client's subscription");
  const seen: StreamedEvent[] = [];
  const reading = (async () => {
    for await (const e of readEvents(fast)) if (seen.push(e) >= 400) break;
  })();
  // 400 events of ~10 KB: 4 MB, far beyond what the kernel's socket buffers and the limit hold.
  const line = "x".repeat(10_000);
  // Paced to the reading client (a burst of 5, then until it has them), which so never falls behind.
  for (let i = 1; i <= 400; i++) {
    bus.publish({ type: "image.progress", image: "big", op: "build", line });
    if (i % 5 === 0) await waitUntil(() => seen.length >= i, "the reading client to catch up");
  }
  await reading;
  assert.equal(seen.length, 400, "the reading client got every event");
  await waitUntil(() => bus.subscribers === 0, "the slow client to be dropped");
  // Its socket is ended by the server (it is destroyed 5 s later if it still does not read).
  slow.resume();
  let text = "";
  slow.setEncoding("utf8");
  slow.on("data", (d: string) => (text = (text + d).slice(-4000)));
  let total = 0;
  slow.on("data", (d: string) => (total += d.length));
  await waitUntil(() => slowClosed, "the slow client's socket to close").catch((e: Error) => {
    throw new Error(`${e.message}: read ${total}, tail ${JSON.stringify(text.slice(-300))}`);
  });
  assert.match(text, /event: overflow\ndata: .*fell behind/);
});

test("keep-alive comments on a quiet stream; closing the server ends its streams", async (t) => {
  const { app, open } = await serve(t, { keepAliveMs: 50 });
  const res = await open("/v1/events");
  let text = "";
  res.setEncoding("utf8");
  res.on("data", (d: string) => (text += d));
  await waitUntil(() => (text.match(/: keep-alive/g) ?? []).length >= 2, "two keep-alive comments");
  const ended = new Promise<void>((r) => res.on("end", () => r()));
  await app.close();
  await ended;
});
