import assert from "node:assert/strict";
import { test } from "node:test";
import { AbortError, AgentDisconnectedError, AgentProtocolError, AgentRestartedError, TimeoutError } from "../errors.js";
import { duplexPair } from "../../test/support/duplex-pair.js";
import { FakeAgent } from "../../test/support/fake-agent.js";
import { AgentClient } from "./client.js";
import { FieldWriter, Fields } from "./fields.js";
import { decodeHello, encodeIdentity } from "./messages.js";
import { ErrorCode, Field, FrameType } from "./protocol.js";
import type { Frame } from "./frame.js";

const realtimeNs = 1_700_000_000_123_456_789n;

test("an identity request carries every field; the clock keeps its nanoseconds", () => {
  const entropy = Buffer.from([0, 1, 2, 255]);
  const f = new Fields(
    encodeIdentity({ realtimeNs, hostname: "vm-7", entropy, env: { A: "1", B: "x=y" }, network: { mac: "52:54:00:aa:bb:cc", address: "10.1.2.3/24", gateway: "10.1.2.1" } }),
  );
  assert.equal(f.all(Field.REALTIME_NS)[0]!.readBigUInt64LE(0), realtimeNs);
  assert.equal(f.str(Field.HOSTNAME), "vm-7");
  assert.deepEqual(f.all(Field.ENTROPY)[0], entropy);
  assert.deepEqual(f.strs(Field.ENV), ["A=1", "B=x=y"]);
  assert.deepEqual([f.str(Field.NET_MAC), f.str(Field.NET_ADDRESS), f.str(Field.NET_GATEWAY)], ["52:54:00:aa:bb:cc", "10.1.2.3/24", "10.1.2.1"]);
});

test("an identity request without options holds the clock alone", () => {
  const payload = encodeIdentity({ realtimeNs: 0xffff_ffff_ffff_ffffn });
  assert.equal(payload.length, 6 + 8);
  assert.equal(new Fields(payload).all(Field.REALTIME_NS)[0]!.readBigUInt64LE(0), 0xffff_ffff_ffff_ffffn);
});

test("what the guest would refuse is refused when encoding", () => {
  assert.throws(() => encodeIdentity({ realtimeNs, entropy: Buffer.alloc(513) }), RangeError);
  assert.doesNotThrow(() => encodeIdentity({ realtimeNs, entropy: Buffer.alloc(512) }));
  assert.throws(() => encodeIdentity({ realtimeNs, env: { "A=B": "c" } }), RangeError);
  assert.throws(() => encodeIdentity({ realtimeNs, env: { "": "c" } }), RangeError);
  assert.throws(() => encodeIdentity({ realtimeNs: -1n }), RangeError);
});

test("a hello lists identity errors only when it has some", () => {
  const base = new FieldWriter().u32(Field.PROTO, 1);
  assert.equal("identityErrors" in decodeHello(base.build()), false);
  const h = decodeHello(base.str(Field.IDENTITY_ERROR, "clock: EPERM (Operation not permitted)").str(Field.IDENTITY_ERROR, "hostname: EINVAL (Invalid argument)").build());
  assert.deepEqual(h.identityErrors, ["clock: EPERM (Operation not permitted)", "hostname: EINVAL (Invalid argument)"]);
});

/** A HELLO; as the answer to an IDENTITY (answering: its REALTIME_NS) it echoes that value. */
function helloPayload(hostname: string, answering?: bigint, errors: string[] = [], pid = 10): Buffer {
  const w = new FieldWriter().u32(Field.PROTO, 1).str(Field.CAP, "identity").str(Field.HOSTNAME, hostname).u32(Field.AGENT_PID, pid);
  if (answering !== undefined) w.u64(Field.REALTIME_NS, answering);
  for (const e of errors) w.str(Field.IDENTITY_ERROR, e);
  return w.build();
}

const asked = (f: Frame) => new Fields(f.payload).all(Field.REALTIME_NS)[0]!.readBigUInt64LE(0);

/** A fake agent that applies IDENTITY by taking the hostname it names, and answers with it. */
function setup(onIdentity: (agent: FakeAgent, frame: Frame) => void = (a, f) => a.send(FrameType.HELLO, 0, helloPayload(new Fields(f.payload).str(Field.HOSTNAME) ?? "old", asked(f)))) {
  const [host, guest] = duplexPair();
  const client = new AgentClient(host);
  const agent = new FakeAgent(guest, (a, f) => f.type === FrameType.IDENTITY && onIdentity(a, f));
  return { client, agent };
}

test("identity sends the frame on session 0 and resolves with the hello that answers it", async () => {
  const { client, agent } = setup();
  const hello = await client.identity({ realtimeNs, hostname: "fresh", env: { K: "v" } }, { timeoutMs: 1000 });
  assert.equal(hello.hostname, "fresh");
  assert.deepEqual(hello.identityErrors, []);
  assert.equal(client.info?.hostname, "fresh");
  const sent = await agent.next((f) => f.type === FrameType.IDENTITY);
  assert.equal(sent.session, 0);
  assert.deepEqual(new Fields(sent.payload).strs(Field.ENV), ["K=v"]);
});

test("identity reports the steps the agent could not do", async () => {
  const { client } = setup((a, f) => a.send(FrameType.HELLO, 0, helloPayload("old", asked(f), ["clock: EPERM (Operation not permitted)"])));
  const hello = await client.identity({ realtimeNs, hostname: "new" });
  assert.deepEqual(hello.identityErrors, ["clock: EPERM (Operation not permitted)"]);
});

test("a hello that crosses the request (start-up, reconnect, HELLO_REQ) is not taken for its answer", async () => {
  const { client } = setup((a, f) => {
    a.send(FrameType.HELLO, 0, helloPayload("template")); // sent before the agent read IDENTITY
    a.send(FrameType.HELLO, 0, helloPayload("fresh", asked(f)));
  });
  const hello = await client.identity({ realtimeNs, hostname: "fresh" }, { timeoutMs: 1000 });
  assert.equal(hello.hostname, "fresh");
  // An answer to another request (a different REALTIME_NS) is not this one's either.
  const other = setup((a, f) => a.send(FrameType.HELLO, 0, helloPayload("other", asked(f) + 1n)));
  await assert.rejects(other.client.identity({ realtimeNs }, { timeoutMs: 50 }), TimeoutError);
});

test("identity rejects when the agent refuses it or does not know it", async () => {
  for (const code of [ErrorCode.BAD_MESSAGE, ErrorCode.UNKNOWN_TYPE]) {
    const { client } = setup((a) => a.send(FrameType.ERROR, 0, new FieldWriter().u32(Field.ERROR_CODE, code).str(Field.MESSAGE, "no").build()));
    await assert.rejects(client.identity({ realtimeNs }, { timeoutMs: 1000 }), AgentProtocolError);
  }
});

test("a bad request, or one aborted already, rejects without sending anything", async () => {
  const { client, agent } = setup();
  await assert.rejects(client.identity({ realtimeNs, entropy: Buffer.alloc(600) }), RangeError);
  await assert.rejects(client.identity({ realtimeNs }, { signal: AbortSignal.abort() }), AbortError);
  await client.identity({ realtimeNs }); // the channel is in order, and this is the only frame it carried
  assert.equal(agent.received.length, 1);
});

test("identity fails on a closed channel, a silent agent and a restarted one", async () => {
  const closing = setup((a) => a.stream.destroy());
  await assert.rejects(closing.client.identity({ realtimeNs }), AgentDisconnectedError);
  await assert.rejects(closing.client.identity({ realtimeNs }), AgentDisconnectedError);

  const silent = setup(() => {});
  await assert.rejects(silent.client.identity({ realtimeNs }, { timeoutMs: 50 }), TimeoutError);

  const restarted = setup((a) => a.send(FrameType.HELLO, 0, helloPayload("new", undefined, [], 11)));
  restarted.agent.send(FrameType.HELLO, 0, helloPayload("old", undefined, [], 10));
  await restarted.client.hello();
  await assert.rejects(restarted.client.identity({ realtimeNs }), AgentRestartedError);
});
