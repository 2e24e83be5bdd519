import assert from "node:assert/strict";
import { test } from "node:test";
import { AbortError, AgentDisconnectedError, AgentProtocolError, TimeoutError } from "../errors.js";
import { duplexPair } from "../../test/support/duplex-pair.js";
import { FakeAgent } from "../../test/support/fake-agent.js";
import { AgentClient } from "./client.js";
import { FieldWriter, Fields } from "./fields.js";
import { ErrorCode, Field, FrameType, WINDOW } from "./protocol.js";

function setup(handler?: ConstructorParameters<typeof FakeAgent>[1]) {
  const [host, guest] = duplexPair();
  const client = new AgentClient(host);
  const agent = new FakeAgent(guest, handler);
  return { client, agent };
}

/** A fake agent that runs "echo"-like commands: argv[1] to stdout, argv[2] to stderr, exit argv[3]. */
const echoAgent = (agent: FakeAgent, f: { type: number; session: number; payload: Buffer }) => {
  if (f.type === FrameType.HELLO_REQ) agent.hello();
  if (f.type !== FrameType.EXEC) return;
  const argv = new Fields(f.payload).strs(Field.ARG);
  agent.send(FrameType.STARTED, f.session, new FieldWriter().u32(Field.PID, 100 + f.session).build());
  if (argv[1]) agent.send(FrameType.STDOUT, f.session, Buffer.from(argv[1]));
  if (argv[2]) agent.send(FrameType.STDERR, f.session, Buffer.from(argv[2]));
  agent.exit(f.session, Number(argv[3] ?? 0));
};

test("hello asks the agent and resolves with what it says", async () => {
  const { client } = setup(echoAgent);
  const hello = await client.hello({ timeoutMs: 1000 });
  assert.equal(hello.protocol, 1);
  assert.equal(hello.agentVersion, "fake");
  assert.equal(client.info, hello);
});

test("hello times out with a TimeoutError when the agent stays silent", async () => {
  const { client } = setup();
  await assert.rejects(client.hello({ timeoutMs: 50 }), TimeoutError);
});

test("a hello of another protocol version is refused", async () => {
  const { client } = setup((a, f) => f.type === FrameType.HELLO_REQ && a.hello(2));
  await assert.rejects(client.hello({ timeoutMs: 1000 }), AgentProtocolError);
});

test("exec keeps stdout and stderr apart and reports the exit code", async () => {
  const { client } = setup(echoAgent);
  const r = await client.run(["cmd", "out", "err", "3"]);
  assert.equal(r.stdout.toString(), "out");
  assert.equal(r.stderr.toString(), "err");
  assert.equal(r.exitCode, 3);
  assert.equal(r.status, 3);
  assert.ok(r.pid && r.pid > 100);
});

test("concurrent sessions get distinct ids and their own results", async () => {
  const { client } = setup(echoAgent);
  const results = await Promise.all(Array.from({ length: 20 }, (_, i) => client.run(["cmd", `o${i}`, "", String(i)])));
  results.forEach((r, i) => {
    assert.equal(r.stdout.toString(), `o${i}`);
    assert.equal(r.exitCode, i);
  });
});

test("a command killed by a signal has status 128+N", async () => {
  const { client, agent } = setup();
  const s = client.exec({ argv: ["sleep"] });
  agent.send(FrameType.EXIT, s.id, new FieldWriter().u32(Field.TERM_SIGNAL, 9).build());
  const r = await s.result;
  assert.deepEqual([r.exitCode, r.signal, r.status], [null, 9, 137]);
});

test("output credit is granted back in quarters of the window", async () => {
  const { client, agent } = setup();
  const s = client.exec({ argv: ["big"] });
  const chunk = Buffer.alloc(64 * 1024);
  for (let i = 0; i < WINDOW / chunk.length; i++) agent.send(FrameType.STDOUT, s.id, chunk);
  const grant = await agent.next((f) => f.type === FrameType.WINDOW && f.session === s.id);
  assert.equal(new Fields(grant.payload).u32(Field.BYTES), WINDOW / 4);
  agent.exit(s.id, 0);
  await s.result;
  const grants = agent.received.filter((f) => f.type === FrameType.WINDOW);
  assert.equal(grants.length, 4);
});

test("stdin waits for credit and never exceeds the window", async () => {
  const { client, agent } = setup();
  const s = client.exec({ argv: ["cat"], stdin: true });
  const data = Buffer.alloc(WINDOW + 1000, 7);
  let written = false;
  const w = s.write(data).then(() => (written = true));
  await new Promise((r) => setTimeout(r, 30));
  const sent = () => agent.received.filter((f) => f.type === FrameType.STDIN).reduce((n, f) => n + f.payload.length, 0);
  assert.equal(sent(), WINDOW);
  assert.equal(written, false);
  agent.send(FrameType.STDIN_WINDOW, s.id, new FieldWriter().u32(Field.BYTES, 4096).build());
  await w;
  assert.equal(sent(), WINDOW + 1000);
  assert.ok(agent.received.filter((f) => f.type === FrameType.STDIN).every((f) => f.payload.length <= 256 * 1024));
  await s.end();
  await agent.next((f) => f.type === FrameType.STDIN && f.payload.length === 0);
  agent.exit(s.id, 0);
  await s.result;
});

test("writing to a command started without stdin is an error", async () => {
  const { client } = setup();
  const s = client.exec({ argv: ["x"] });
  await assert.rejects(s.write("data"), AgentProtocolError);
});

test("an agent error naming a session fails that session only", async () => {
  const { client, agent } = setup(echoAgent);
  const s = client.exec({ argv: ["bad"] });
  agent.send(FrameType.ERROR, s.id, new FieldWriter().u32(Field.ERROR_CODE, ErrorCode.BAD_MESSAGE).str(Field.MESSAGE, "no").build());
  await assert.rejects(s.result, (e: Error) => e instanceof AgentProtocolError && /BAD_MESSAGE: no/.test(e.message));
  assert.equal((await client.run(["ok", "fine"])).stdout.toString(), "fine");
});

test("a malformed payload from the agent fails that session, and the channel carries on", async () => {
  const { client, agent } = setup(echoAgent);
  const s = client.exec({ argv: ["x"] });
  agent.send(FrameType.EXIT, s.id, Buffer.from([1, 0, 99, 0, 0, 0])); // field claims 99 bytes
  await assert.rejects(s.result, AgentProtocolError);
  assert.equal((await client.run(["ok", "still"])).stdout.toString(), "still");
});

test("garbage from the agent is reported and the next frames still work", async () => {
  const { client, agent } = setup(echoAgent);
  const seen: Error[] = [];
  client.on("protocol-error", (e) => seen.push(e));
  agent.sendRaw(Buffer.from("\x00\x01garbage bytes mv\xff"));
  assert.equal((await client.run(["ok", "after"])).stdout.toString(), "after");
  assert.equal(seen.length, 1);
});

test("closing the channel fails every pending call with AgentDisconnectedError", async () => {
  const { client, agent } = setup();
  const a = client.exec({ argv: ["a"] });
  const b = client.exec({ argv: ["b"], stdin: true });
  const hello = client.hello();
  agent.stream.destroy();
  await assert.rejects(a.result, AgentDisconnectedError);
  await assert.rejects(b.result, AgentDisconnectedError);
  await assert.rejects(hello, AgentDisconnectedError);
  await assert.rejects(client.exec({ argv: ["late"] }).result, AgentDisconnectedError);
  assert.equal(await a.started, undefined);
});

test("aborting an exec kills the command and rejects with AbortError", async () => {
  const { client, agent } = setup();
  const ac = new AbortController();
  const s = client.exec({ argv: ["sleep"], signal: ac.signal });
  ac.abort();
  await assert.rejects(s.result, AbortError);
  const sig = await agent.next((f) => f.type === FrameType.SIGNAL);
  assert.equal(new Fields(sig.payload).u32(Field.SIGNO), 9);
});

test("power off resolves on the agent's acknowledgement", async () => {
  const { client, agent } = setup((a, f) => f.type === FrameType.POWEROFF && a.send(FrameType.POWEROFF_ACK, 0));
  await client.powerOff();
  assert.ok(agent.received.some((f) => f.type === FrameType.POWEROFF));
});

test("power off also counts as done when the channel closes after it", async () => {
  const { client } = setup((a, f) => f.type === FrameType.POWEROFF && a.stream.destroy());
  await client.powerOff();
  assert.ok(client.closed);
});

test("a hello from a new agent process fails the sessions the old one was running", async () => {
  const { client, agent } = setup();
  const helloWith = (pid: number) =>
    agent.send(FrameType.HELLO, 0, new FieldWriter().u32(Field.PROTO, 1).u32(Field.AGENT_PID, pid).build());
  helloWith(10);
  await client.hello();
  const s = client.exec({ argv: ["long"] });
  helloWith(10); // the same agent answering again changes nothing
  await new Promise((r) => setTimeout(r, 10));
  helloWith(11);
  await assert.rejects(s.result, (e: Error) => e instanceof AgentDisconnectedError && /restarted/.test(e.message));
  assert.equal(client.info?.agentPid, 11);
});

test("an agent with exit-ack hears EXIT_ACK for the exits of sessions this host knows, and only for those", async () => {
  const { client, agent } = setup((a, f) => {
    if (f.type === FrameType.HELLO_REQ) a.hello(undefined, ["exec", "exit-ack"]);
    if (f.type === FrameType.EXEC) a.exit(f.session, 3);
  });
  await client.hello();
  const s = client.exec({ argv: ["x"] });
  assert.equal((await s.result).status, 3);
  assert.equal((await agent.next((f) => f.type === FrameType.EXIT_ACK)).session, s.id);
  agent.exit(999, 1); // a session this host never had: its exit stays with the agent for an adopter
  const t = client.exec({ argv: ["y"] });
  await t.result;
  await agent.next((f) => f.type === FrameType.EXIT_ACK && f.session === t.id);
  assert.deepEqual(agent.received.filter((f) => f.type === FrameType.EXIT_ACK).map((f) => f.session), [s.id, t.id]);
});

test("an agent without exit-ack is never sent EXIT_ACK", async () => {
  const { client, agent } = setup(echoAgent);
  await client.hello();
  await client.run(["cmd", "out", "", "0"]);
  await new Promise((r) => setImmediate(r));
  await client.run(["cmd", "out", "", "0"]); // a round trip after the first exit
  assert.ok(!agent.received.some((f) => f.type === FrameType.EXIT_ACK));
});
