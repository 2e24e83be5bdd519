import assert from "node:assert/strict";
import { test } from "node:test";
import { CreditedReceiver, CreditedSender } from "./credit.js";

test("the sender never exceeds its credit or the frame cap, and waits for more", async () => {
  const frames: number[] = [];
  const s = new CreditedSender(100, 40, (b) => frames.push(b.length), () => undefined);
  const done = s.write(Buffer.alloc(250));
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(frames, [40, 40, 20]); // 100 of credit, in frames of at most 40
  s.grant(60);
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(frames.slice(3), [40, 20]);
  s.grant(500);
  await done;
  assert.equal(frames.reduce((a, b) => a + b), 250);
});

test("a sender whose session ended fails its waiting writes", async () => {
  let live = true;
  const s = new CreditedSender(10, 10, () => undefined, () => {
    if (!live) throw new Error("ended");
  });
  const w = s.write(Buffer.alloc(30));
  await new Promise((r) => setImmediate(r));
  live = false;
  s.wake();
  await assert.rejects(w, /ended/);
});

test("the receiver grants in quarters of the window, and not while paused", () => {
  const grants: number[] = [];
  const r = new CreditedReceiver(100, (n) => grants.push(n));
  r.consumed(20);
  assert.deepEqual(grants, []);
  r.consumed(10);
  assert.deepEqual(grants, [30]);
  r.pause();
  r.consumed(50);
  assert.deepEqual(grants, [30]);
  r.resume();
  assert.deepEqual(grants, [30, 50]);
});
