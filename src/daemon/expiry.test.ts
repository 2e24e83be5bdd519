import { test } from "node:test";
import assert from "node:assert/strict";
import { ExpiryTimers } from "./expiry.js";

test("expiry: a VM is removed at its end time, not before; disarm and re-arm move it", async () => {
  const gone: string[] = [];
  const t = new ExpiryTimers({ expire: (id) => Promise.resolve(void gone.push(id)) });
  const soon = (ms: number) => new Date(Date.now() + ms).toISOString();
  t.arm("a", soon(150));
  t.arm("b", soon(150));
  t.arm("c", soon(10_000));
  t.disarm("b");
  await new Promise((r) => setTimeout(r, 20));
  assert.deepEqual(gone, []);
  await new Promise((r) => setTimeout(r, 400));
  assert.deepEqual(gone, ["a"]);
  t.arm("c", soon(10)); // setTimeout: a new end time replaces the old
  await new Promise((r) => setTimeout(r, 200));
  assert.deepEqual(gone, ["a", "c"]);
  assert.deepEqual(t.armed, []);
  t.close();
});

test("expiry: armAll after a restart removes those whose time passed at once; no end time, no timer", async () => {
  const gone: string[] = [];
  const t = new ExpiryTimers({ expire: (id) => Promise.resolve(void gone.push(id)) });
  t.armAll([{ id: "old", expiresAt: new Date(Date.now() - 3_600_000).toISOString() }, { id: "none" }, { id: "later", expiresAt: new Date(Date.now() + 3_600_000).toISOString() }]);
  assert.deepEqual(t.armed.sort(), ["later", "old"]);
  await new Promise((r) => setTimeout(r, 100));
  assert.deepEqual(gone, ["old"]);
  t.close();
  assert.deepEqual(t.armed, []);
});

test("expiry: a failed removal is logged and tried again", async () => {
  const lines: string[] = [];
  let calls = 0;
  const t = new ExpiryTimers({ expire: () => (calls++, Promise.reject(new Error("busy"))), log: (l) => lines.push(l) });
  t.arm("x", new Date(Date.now() - 1).toISOString());
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(calls, 1);
  assert.match(lines[0]!, /busy; trying again in a minute/);
  assert.deepEqual(t.armed, ["x"]);
  t.close();
});
