// Forwards and watches on the host side, against a fake agent over an in-memory pair: the encoding, port
// parsing, a connection's bytes and half-close, a refused port, an agent without the capability, and a
// hostile agent that sends beyond its credit (the session fails, nothing piles up).

import assert from "node:assert/strict";
import { test } from "node:test";
import { duplexPair } from "../../test/support/duplex-pair.js";
import { FakeAgent } from "../../test/support/fake-agent.js";
import { parsePortSpec } from "../cli/commands/port-forward.js";
import type { MvmError } from "../errors.js";
import { AgentClient } from "./client.js";
import { FieldWriter, Fields } from "./fields.js";
import type { Frame } from "./frame.js";
import { encodeForward, parsePort } from "./forward-session.js";
import { Field, FrameType, WatchKind, WINDOW } from "./protocol.js";
import { decodeWatchEvents, encodeWatch } from "./watch-session.js";

const code = (e: unknown) => (e as MvmError).code;

function setup(caps: string[], handler: (agent: FakeAgent, f: Frame) => void) {
  const [host, guest] = duplexPair();
  const client = new AgentClient(host);
  const agent = new FakeAgent(guest, (a, f) => {
    if (f.type === FrameType.HELLO_REQ) a.hello(1, caps);
    else handler(a, f);
  });
  return { client, agent };
}

const event = (kind: number, name: string) => Buffer.concat([Buffer.from([kind]), Buffer.from(name)]);

test("parsePort takes 1-65535 as numbers or decimal strings only", () => {
  assert.equal(parsePort(1), 1);
  assert.equal(parsePort("65535"), 65535);
  for (const bad of [0, 65536, -1, 1.5, "0x50", "80a", "", " 80", "999999", null, undefined]) assert.equal(parsePort(bad), undefined, String(bad));
});

test("parsePortSpec: GUESTPORT, HOSTPORT:GUESTPORT, 0:GUESTPORT; anything else is refused", () => {
  assert.deepEqual(parsePortSpec("8000"), { hostPort: 8000, guestPort: 8000 });
  assert.deepEqual(parsePortSpec("8080:80"), { hostPort: 8080, guestPort: 80 });
  assert.deepEqual(parsePortSpec("0:80"), { hostPort: 0, guestPort: 80 });
  for (const bad of ["0", "80:0", "70000", "a:80", "80:", ":80", "1:2:3"]) assert.throws(() => parsePortSpec(bad), (e) => code(e) === "INVALID_ARGUMENT", bad);
});

test("FORWARD and WATCH payloads carry the fields the agent reads", () => {
  const f = new Fields(encodeForward({ port: 8000, address: "::1" }));
  assert.deepEqual([f.u32(Field.PORT), f.str(Field.ADDRESS)], [8000, "::1"]);
  assert.equal(new Fields(encodeForward({ port: 80 })).str(Field.ADDRESS), undefined);
  assert.throws(() => encodeForward({ port: 0 }), RangeError);
  const w = new Fields(encodeWatch("/srv", true));
  assert.deepEqual([w.str(Field.PATH), w.u32(Field.FLAGS)], ["/srv", 2]);
  const payload = new FieldWriter().bytes(Field.EVENT, event(WatchKind.CREATE, "a/b")).bytes(Field.EVENT, event(WatchKind.OVERFLOW, "")).bytes(Field.EVENT, event(99, "x")).build();
  assert.deepEqual(decodeWatchEvents(payload), [{ type: "create", name: "a/b" }, { type: "overflow" }]);
});

test("a forward: bytes both ways, the host's end() is an empty STDIN, the guest's EOF ends the stream", async () => {
  const got: Buffer[] = [];
  let ended = false;
  const { client } = setup(["forward"], (a, f) => {
    if (f.type === FrameType.FORWARD) a.send(FrameType.STARTED, f.session);
    if (f.type === FrameType.STDIN && f.payload.length) got.push(Buffer.from(f.payload));
    if (f.type === FrameType.STDIN && !f.payload.length) {
      ended = true;
      a.send(FrameType.STDOUT, f.session, Buffer.from("pong"));
      a.send(FrameType.STDOUT, f.session, Buffer.alloc(0));
      a.exit(f.session, 0);
    }
  });
  await client.hello();
  const s = await client.forward(8000);
  s.stream.end("ping");
  const parts: Buffer[] = [];
  for await (const c of s.stream) parts.push(c as Buffer);
  assert.equal(Buffer.concat(parts).toString(), "pong");
  assert.equal(Buffer.concat(got).toString(), "ping");
  assert.ok(ended);
  client.close();
});

test("a refused port rejects with GUEST_PORT and the agent's message; an agent without the capability with AGENT_CAPABILITY", async () => {
  const { client } = setup(["forward"], (a, f) => {
    if (f.type === FrameType.FORWARD) a.send(FrameType.EXIT, f.session, new FieldWriter().u32(Field.EXIT_CODE, 1).u32(Field.ERRNO, 111).str(Field.MESSAGE, "connect 127.0.0.1:81: Connection refused").build());
  });
  await client.hello();
  await assert.rejects(client.forward(81), (e) => code(e) === "GUEST_PORT" && /Connection refused/.test((e as Error).message));
  client.close();
  const old = setup(["exec", "files"], () => undefined);
  await old.client.hello();
  await assert.rejects(old.client.forward(80), (e) => code(e) === "AGENT_CAPABILITY" && /restart the VM/.test((e as MvmError).hint ?? ""));
  await assert.rejects(old.client.watch("/"), (e) => code(e) === "AGENT_CAPABILITY");
  old.client.close();
});

test("a hostile agent: forward data beyond the credit fails the stream and is answered with SIGNAL", async () => {
  let signalled = false;
  const { client } = setup(["forward"], (a, f) => {
    if (f.type === FrameType.FORWARD) {
      a.send(FrameType.STARTED, f.session);
      // Nobody reads the stream: the guest has WINDOW of credit and sends far more.
      const chunk = Buffer.alloc(256 * 1024);
      for (let i = 0; i < (WINDOW * 3) / chunk.length; i++) a.send(FrameType.STDOUT, f.session, chunk);
    }
    if (f.type === FrameType.SIGNAL) {
      signalled = true;
      a.exit(f.session, 0);
    }
  });
  await client.hello();
  const s = await client.forward(80);
  const err = await new Promise<Error>((resolve) => s.stream.once("error", resolve));
  assert.equal(code(err), "AGENT_PROTOCOL");
  assert.ok(signalled);
  client.close();
});

test("a watch: events in order, a non-directory refused with its errno, a flood beyond the credit fails it", async () => {
  const { client } = setup(["watch"], (a, f) => {
    if (f.type !== FrameType.WATCH) return;
    const path = new Fields(f.payload).str(Field.PATH);
    if (path === "/file") return a.send(FrameType.EXIT, f.session, new FieldWriter().u32(Field.EXIT_CODE, 1).u32(Field.ERRNO, 20).str(Field.MESSAGE, "watch /file: Not a directory").build());
    a.send(FrameType.STARTED, f.session);
    if (path === "/ok") {
      a.send(FrameType.WATCH_EVENTS, f.session, new FieldWriter().bytes(Field.EVENT, event(WatchKind.CREATE, "x")).bytes(Field.EVENT, event(WatchKind.REMOVE, "x")).build());
      a.exit(f.session, 0);
    } else {
      const big = new FieldWriter();
      for (let i = 0; i < 1000; i++) big.bytes(Field.EVENT, event(WatchKind.WRITE, "f".repeat(200)));
      const payload = big.build();
      for (let i = 0; i < (WINDOW * 3) / payload.length; i++) a.send(FrameType.WATCH_EVENTS, f.session, payload);
    }
  });
  await client.hello();
  const w = await client.watch("/ok");
  const seen = [];
  for await (const e of w) seen.push(e);
  assert.deepEqual(seen, [{ type: "create", name: "x" }, { type: "remove", name: "x" }]);
  await assert.rejects(client.watch("/file"), (e) => code(e) === "FILE_ERROR" && (e as MvmError).details.errnoName === "ENOTDIR");
  const flood = await client.watch("/flood");
  await new Promise((r) => setTimeout(r, 50)); // the flood arrives while nobody reads
  await assert.rejects(async () => {
    for await (const e of flood) void e;
  }, (e) => code(e) === "AGENT_PROTOCOL");
  client.close();
});
