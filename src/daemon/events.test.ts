import assert from "node:assert/strict";
import { Readable } from "node:stream";
import { test } from "node:test";
import { EVENT_TYPES } from "../api/event-schemas.js";
import { parseSse } from "../client/events.js";
import { sseMessage } from "./event-routes.js";
import { EventBus, typeFilter, UnknownEventTypes, vmOf } from "./events.js";

const vm = { id: "abc123", name: "a" };
const publishN = (bus: EventBus, n: number) => {
  for (let i = 0; i < n; i++) bus.publish({ type: "vm.state", vm, from: "created", to: "starting" });
};

test("ids increase by one from the first; every event is stamped and kept in order", () => {
  const bus = new EventBus(10, 100);
  assert.equal(bus.lastId, 99);
  const a = bus.publish({ type: "vm.created", vm });
  const b = bus.publish({ type: "vm.state", vm, from: "created", to: "starting" });
  assert.deepEqual([a.id, b.id, bus.lastId], [100, 101, 101]);
  assert.match(a.event.at, /^\d{4}-\d\d-\d\dT/);
  assert.deepEqual(bus.kept().map((p) => p.id), [100, 101]);
  assert.deepEqual(vmOf(b.event), vm);
});

test("the ring keeps the last `keep` events, oldest first", () => {
  const bus = new EventBus(5, 1);
  publishN(bus, 12);
  assert.deepEqual(bus.kept().map((p) => p.id), [8, 9, 10, 11, 12]);
});

test("resume: what came after the id, no gap while it is kept, a gap once it fell out", () => {
  const bus = new EventBus(5, 1);
  publishN(bus, 12); // kept: 8..12
  assert.deepEqual(bus.since(9), { events: bus.kept().slice(2) });
  // 7 is the id just before the oldest kept: nothing is missing.
  assert.equal(bus.since(7).gap, undefined);
  assert.equal(bus.since(7).events.length, 5);
  // After 5: 6 and 7 are gone.
  const r = bus.since(5);
  assert.deepEqual(r.gap, { requested: 5, oldest: 8 });
  assert.deepEqual(r.events.map((p) => p.id), [8, 9, 10, 11, 12]);
  // Up to date: nothing, no gap.
  assert.deepEqual(bus.since(12), { events: [] });
});

test("ids go on across daemon restarts (they start at the start time), and an id the daemon never had is a gap", () => {
  const before = new EventBus();
  publishN(before, 3);
  const after = new EventBus(1000, before.lastId + 1000);
  publishN(after, 2);
  assert.ok(after.kept()[0]!.id > before.lastId);
  assert.deepEqual(after.since(before.lastId).gap, { requested: before.lastId, oldest: after.kept()[0]!.id });
  // An id ahead of this daemon (a clock that went back): a gap, then everything kept.
  const ahead = after.since(after.lastId + 50);
  assert.equal(ahead.gap?.requested, after.lastId + 50);
  assert.equal(ahead.events.length, 2);
});

test("a subscriber that throws is dropped; the others still hear every event", () => {
  const bus = new EventBus(10, 1);
  const heard: number[] = [];
  bus.subscribe(() => {
    throw new Error("boom");
  });
  const off = bus.subscribe((p) => heard.push(p.id));
  publishN(bus, 2);
  assert.equal(bus.subscribers, 1);
  off();
  publishN(bus, 1);
  assert.deepEqual(heard, [1, 2]);
  assert.equal(bus.subscribers, 0);
});

test("type filters: exact names and prefixes; unknown names are refused", () => {
  const f = typeFilter("vm.state, command.", EVENT_TYPES)!;
  assert.deepEqual(["vm.state", "vm.created", "command.start", "command.exit", "image.done"].map(f), [true, false, true, true, false]);
  assert.equal(typeFilter(undefined, EVENT_TYPES), undefined);
  assert.equal(typeFilter("", EVENT_TYPES), undefined);
  assert.throws(() => typeFilter("vm.state,vm.exploded,nope.", EVENT_TYPES), (e: unknown) => e instanceof UnknownEventTypes && e.names.join() === "vm.exploded,nope.");
});

test("SSE messages as the server writes them parse back (split anywhere, CRLF too), comments left out", async () => {
  const bus = new EventBus(10, 41);
  const a = bus.publish({ type: "command.start", vm, session: "job", argv: ["sh", "-c", "echo 'a\nb'"], background: false });
  const b = bus.publish({ type: "vm.removed", vm });
  const text = `retry: 1000\n: a comment\n\n${sseMessage(a)}: keep-alive\n\n${sseMessage(b).replace(/\n/g, "\r\n")}`;
  // One byte at a time: no message may depend on how the stream was cut.
  const chunks = [...Buffer.from(text)].map((c) => Buffer.from([c]));
  const got: Array<{ id?: string; event?: string; data: string }> = [];
  for await (const m of parseSse(Readable.from(chunks))) got.push(m);
  assert.deepEqual(got.map((m) => [m.id, m.event, JSON.parse(m.data) as unknown]), [
    ["41", "command.start", a.event],
    ["42", "vm.removed", b.event],
  ]);
});
