import assert from "node:assert/strict";
import type { Socket } from "node:net";
import { PassThrough } from "node:stream";
import { test } from "node:test";
import { duplexPair } from "../../test/support/duplex-pair.js";
import { FakeAgent } from "../../test/support/fake-agent.js";
import { BootError } from "../errors.js";
import { FrameType } from "../agent/protocol.js";
import { ConsoleTap } from "./console-tap.js";
import { waitReady, type ReadyContext } from "./readiness.js";

const never = new Promise<never>(() => undefined);

function consoleContext(adopted = false): { ctx: ReadyContext; feed: (s: string) => void } {
  const tap = new ConsoleTap(() => 7);
  const stream = new PassThrough();
  tap.readFrom(stream);
  const ctx: ReadyContext = { agentConnected: never, console: tap, adopted, exitedEarly: never, now: () => 42 };
  return { ctx, feed: (s) => stream.write(s) };
}

/** Whether the wait has resolved once everything queued so far has run. */
async function settled(p: Promise<unknown>): Promise<boolean> {
  let done = false;
  void p.then(() => (done = true));
  await new Promise((r) => setImmediate(r));
  return done;
}

test("console readiness: a line matching the pattern, even one split across chunks", async () => {
  const { ctx, feed } = consoleContext();
  const ready = waitReady({ kind: "console", pattern: "^mvm-init: started$" }, ctx);
  feed("[    0.1] booting\r\nmvm-in");
  assert.equal(await settled(ready), false);
  feed("it: started\r\nmore\r\n");
  assert.deepEqual(await ready, { helloMs: 42 });
});

test("console readiness: a prompt without its newline counts", async () => {
  const { ctx, feed } = consoleContext();
  const ready = waitReady({ kind: "console", pattern: "login: $" }, ctx);
  feed("Welcome\r\nhost login: ");
  assert.deepEqual(await ready, { helloMs: 42 });
});

test("console readiness: what the console said before the wait began counts", async () => {
  const { ctx, feed } = consoleContext();
  feed("READY\n");
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(await waitReady({ kind: "console", pattern: "READY" }, ctx), { helloMs: 42 });
});

test("console readiness: lines are cut at 4096 bytes before matching, with or without a newline", async () => {
  const { ctx, feed } = consoleContext();
  const ready = waitReady({ kind: "console", pattern: "a{5000}" }, ctx);
  feed(`${"a".repeat(10000)}\n`);
  feed("a".repeat(10000));
  assert.equal(await settled(ready), false);
});

test("console readiness of an adopted VM: its console said its piece long ago", async () => {
  const { ctx } = consoleContext(true);
  assert.deepEqual(await waitReady({ kind: "console", pattern: "never printed" }, ctx), {});
});

test("agent readiness: the agent's hello, with the times it came", async () => {
  const [host, guest] = duplexPair();
  new FakeAgent(guest, (a, f) => f.type === FrameType.HELLO_REQ && a.hello());
  let t = 0;
  const ctx: ReadyContext = { agentConnected: Promise.resolve(host as unknown as Socket), console: new ConsoleTap(() => 0), adopted: false, exitedEarly: never, now: () => (t += 10) };
  const ready = await waitReady({ kind: "agent" }, ctx);
  assert.equal(ready.hello?.agentVersion, "fake");
  assert.equal(ready.channel, host);
  assert.deepEqual({ connected: ready.agentConnectedMs, hello: ready.helloMs }, { connected: 10, hello: 20 });
  ready.agent?.close();
});

test("agent readiness: a channel that closes before the hello reports QEMU's exit", async () => {
  const [host, guest] = duplexPair();
  const exit = new BootError("QEMU exited during boot (status 1)");
  let exited!: (e: Error) => void;
  const exitedEarly = new Promise<never>((_, reject) => (exited = reject));
  const ctx: ReadyContext = { agentConnected: Promise.resolve(host as unknown as Socket), console: new ConsoleTap(() => 0), adopted: false, exitedEarly, now: () => 0 };
  const ready = waitReady({ kind: "agent" }, ctx);
  guest.destroy();
  setImmediate(() => exited(exit));
  await assert.rejects(ready, (e: unknown) => e === exit);
});
