// A hostile guest agent (docs/threat-model.md, "A hostile guest"): one that floods the channel, lies about
// sizes and checksums, or stops answering. Each test drives a real AgentClient over an in-memory duplex
// pair with a peer that misbehaves, and checks that the host stays bounded in memory, fails with a clear
// mvm error (never a crash or an uncaught exception), and that every wait ends by its deadline, while a
// second client on another pair (another VM) keeps working.

import assert from "node:assert/strict";
import { test } from "node:test";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import type { Duplex } from "node:stream";
import { duplexPair } from "../../test/support/duplex-pair.js";
import { FakeAgent } from "../../test/support/fake-agent.js";
import { crc32 } from "../api/crc32.js";
import { AbortError, AgentProtocolError, IntegrityError, MvmError, TimeoutError } from "../errors.js";
import { AgentClient, type AgentClientOptions } from "./client.js";
import { OVERRUN_SLACK } from "./credit.js";
import { FieldWriter, Fields } from "./fields.js";
import { encodeFrame, encodeHeader, type Frame } from "./frame.js";
import { Field, FrameType, WINDOW } from "./protocol.js";

// Measuring what the host keeps needs a collection first: without one, garbage the flood left behind
// would look like memory the host holds. (node --test has no --expose-gc; V8 lets a running process
// turn it on.)
setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc") as () => void;
/** Bytes held in ArrayBuffers (Buffers) after a full collection. */
function heldBytes(): number {
  gc();
  gc();
  return process.memoryUsage().arrayBuffers;
}
const MiB = 1024 * 1024;
const tick = () => new Promise<void>((r) => setImmediate(r));
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function setup(handler?: ConstructorParameters<typeof FakeAgent>[1], options: AgentClientOptions = {}) {
  const [host, guest] = duplexPair();
  const client = new AgentClient(host, options);
  const agent = new FakeAgent(guest, handler);
  return { client, agent, guest };
}

/** A well-behaved agent that runs "echo"-like commands (argv[1] to stdout, exit 0), for the bystanders. */
const echoAgent = (agent: FakeAgent, f: Frame) => {
  if (f.type === FrameType.HELLO_REQ) agent.hello(1, ["exec", "files"]);
  if (f.type !== FrameType.EXEC) return;
  const argv = FakeAgent.argv(f);
  agent.send(FrameType.STARTED, f.session, new FieldWriter().u32(Field.PID, 100).build());
  if (argv[1]) agent.send(FrameType.STDOUT, f.session, Buffer.from(argv[1]));
  agent.exit(f.session, 0);
};

/** Another VM: its own client and agent, which must not notice anything. */
async function bystanderWorks(): Promise<void> {
  const other = setup(echoAgent);
  await other.client.hello({ timeoutMs: 1000 });
  const r = await other.client.run(["echo", "still here"]);
  assert.equal(r.stdout.toString(), "still here");
  other.client.close();
}

const u64 = (n: bigint) => {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(n);
  return b;
};
const fsDone = (crc: number, size: bigint) => new FieldWriter().u32(Field.CRC32, crc).bytes(Field.SIZE, u64(size)).build();
/** One ENTRY field for a regular file of `size` bytes. */
function fileEntry(name: string, size: number): Buffer {
  const v = Buffer.alloc(31 + name.length);
  v.writeUInt32LE(0o100644, 1);
  v.writeBigUInt64LE(BigInt(size), 13);
  v.writeUInt16LE(name.length, 29);
  v.write(name, 31);
  return new FieldWriter().bytes(Field.ENTRY, v).build();
}
/** Raw field bytes: a tag and a length that need not match what follows. */
function rawField(tag: number, length: number, value: Buffer): Buffer {
  const h = Buffer.alloc(6);
  h.writeUInt16LE(tag, 0);
  h.writeUInt32LE(length >>> 0, 2);
  return Buffer.concat([h, value]);
}
const windowBytes = (f: Frame) => new Fields(f.payload).u32(Field.BYTES) ?? 0;
const signo = (f: Frame) => new Fields(f.payload).u32(Field.SIGNO);

/** Writes `total` bytes of frames for `session` into the channel as fast as the host takes them. */
async function blast(stream: Duplex, type: number, session: number | (() => number), total: number, chunk = 64 * 1024): Promise<void> {
  const payload = Buffer.alloc(chunk, 0x61);
  for (let sent = 0; sent < total; sent += chunk) {
    stream.write(encodeFrame(type, typeof session === "number" ? session : session(), payload));
    if ((sent / chunk) % 64 === 63) await tick(); // let the host run, and the garbage be collected
  }
}

// (a) Floods

test("100 MB of output for a command nobody reads flows under credit and leaves nothing behind", { timeout: 60_000 }, async () => {
  const total = 100 * MiB;
  const chunk = 64 * 1024;
  let credit = WINDOW;
  let sent = 0;
  let granted = 0;
  let session = 0;
  // An agent that honours its credit: sends while it has some, and goes on when WINDOW comes back.
  const pump = (agent: FakeAgent) => {
    while (credit >= chunk && sent < total) {
      agent.send(FrameType.STDOUT, session, Buffer.alloc(chunk, 0x62));
      credit -= chunk;
      sent += chunk;
    }
    if (sent >= total) agent.exit(session, 0);
  };
  const { client } = setup((a, f) => {
    if (f.type === FrameType.EXEC) {
      session = f.session;
      setImmediate(pump, a);
    }
    if (f.type === FrameType.WINDOW && f.session === session) {
      credit += windowBytes(f);
      granted += windowBytes(f);
      setImmediate(pump, a);
    }
  });
  const before = heldBytes();
  const r = await client.exec({ argv: ["yes"] }).result; // no onStdout: the output goes nowhere
  assert.equal(r.status, 0);
  assert.equal(sent, total);
  assert.ok(granted >= total - WINDOW, `the host returned credit for what it consumed (${granted} of ${total})`);
  const grew = heldBytes() - before;
  assert.ok(grew < 8 * MiB, `the host holds ${grew} bytes more after 100 MB of output`);
  await bystanderWorks();
});

test("a guest that ignores credit while the reader is paused loses its session, not the host's memory", { timeout: 60_000 }, async () => {
  const { client, agent, guest } = setup();
  let delivered = 0;
  const s = client.exec({ argv: ["yes"], onStdout: (b) => (delivered += b.length) });
  s.pause(); // a slow HTTP client: the host stops granting credit
  const exec = await agent.next((f) => f.type === FrameType.EXEC);
  const before = heldBytes();
  await blast(guest, FrameType.STDOUT, exec.session, 100 * MiB);
  await assert.rejects(s.result, (e: unknown) => e instanceof AgentProtocolError && /beyond the credit/.test(e.message));
  assert.ok(delivered <= WINDOW + OVERRUN_SLACK, `${delivered} bytes reached the paused reader`);
  const kill = await agent.next((f) => f.type === FrameType.SIGNAL && f.session === exec.session);
  assert.equal(signo(kill), 9, "the command is killed");
  const grew = heldBytes() - before;
  assert.ok(grew < 8 * MiB, `the host holds ${grew} bytes more after a 100 MB flood`);
  // The channel itself carries on: the same client runs the next command.
  const next = client.exec({ argv: ["true"] });
  const again = await agent.next((f) => f.type === FrameType.EXEC && f.session !== exec.session);
  agent.exit(again.session, 0);
  assert.equal((await next.result).status, 0);
  await bystanderWorks();
});

test("a file read beyond its credit fails the transfer and cancels it in the guest", { timeout: 30_000 }, async () => {
  const { client, agent, guest } = setup();
  let delivered = 0;
  const r = client.readFile("/big", (c) => (delivered += c.length));
  r.pause();
  const read = await agent.next((f) => f.type === FrameType.READ);
  agent.send(FrameType.FS_ENTRIES, read.session, fileEntry("/big", 50 * MiB));
  await blast(guest, FrameType.STDOUT, read.session, 20 * MiB);
  await assert.rejects(r.result, AgentProtocolError);
  assert.ok(delivered <= WINDOW + OVERRUN_SLACK, `${delivered} bytes reached the paused reader`);
  await agent.next((f) => f.type === FrameType.SIGNAL && f.session === read.session);
});

test("a HELLO announcing a 4 GiB window does not raise the host's limit", { timeout: 30_000 }, async () => {
  const { client, agent, guest } = setup((a, f) => {
    if (f.type !== FrameType.HELLO_REQ) return;
    const w = new FieldWriter().u32(Field.PROTO, 1).str(Field.AGENT_VERSION, "liar").u32(Field.MAX_PAYLOAD, 0xffffffff).u32(Field.WINDOW, 0xffffffff);
    a.send(FrameType.HELLO, 0, w.build());
  });
  await client.hello({ timeoutMs: 1000 });
  let delivered = 0;
  const s = client.exec({ argv: ["yes"], onStdout: (b) => (delivered += b.length) });
  s.pause();
  const exec = await agent.next((f) => f.type === FrameType.EXEC);
  await blast(guest, FrameType.STDOUT, exec.session, 8 * MiB);
  await assert.rejects(s.result, AgentProtocolError);
  assert.ok(delivered <= WINDOW + OVERRUN_SLACK);
});

test("unsolicited frames for sessions nobody opened are dropped; kept for adoption, they stay under the cap", { timeout: 60_000 }, async () => {
  // Without adoption: 100 MB of output and 200,000 assorted small frames for made-up sessions.
  {
    const { client, guest } = setup(echoAgent);
    const errors: Error[] = [];
    client.on("protocol-error", (e) => errors.push(e));
    const before = heldBytes();
    let id = 1000;
    await blast(guest, FrameType.STDOUT, () => id++, 100 * MiB);
    const types = [FrameType.STARTED, FrameType.EXIT, FrameType.FS_DONE, FrameType.STDIN_WINDOW, FrameType.FS_ENTRIES, FrameType.ERROR, 0x99];
    for (let i = 0; i < 200_000; i++) {
      guest.write(encodeFrame(types[i % types.length]!, 5000 + i, Buffer.from([1, 2, 3])));
      if (i % 2000 === 0) await tick();
    }
    await tick();
    const grew = heldBytes() - before;
    assert.ok(grew < 8 * MiB, `the host holds ${grew} bytes more`);
    assert.ok(errors.every((e) => e instanceof AgentProtocolError));
    assert.equal((await client.run(["echo", "ok"])).stdout.toString(), "ok");
  }
  // Kept for adoption (a daemon that restarted): at most ORPHAN_BYTES (16 MiB), counted per frame too.
  {
    const { client, guest } = setup(echoAgent, { keepOrphans: true });
    const before = heldBytes();
    const heapBefore = process.memoryUsage().heapUsed;
    let id = 1000;
    // Each 1-byte frame in the same write as a 60 KiB frame the host ignores (an unknown type on the
    // channel itself): a kept frame must not pin the chunk it came in.
    for (let i = 0; i < 2_000; i++) {
      guest.write(Buffer.concat([encodeFrame(FrameType.STDOUT, id++, Buffer.from("x")), encodeFrame(0x99, 0, Buffer.alloc(60 * 1024))]));
      if (i % 100 === 0) await tick();
    }
    const grew = heldBytes() - before;
    assert.ok(grew < 8 * MiB, `the host keeps ${grew} bytes for 2,000 bytes of orphans`);
    for (let i = 0; i < 500_000; i++) {
      guest.write(encodeFrame(FrameType.STDOUT, id++)); // empty: nothing but the frame itself
      if (i % 5000 === 0) await tick();
    }
    await tick();
    const held = heldBytes() - before;
    const heap = process.memoryUsage().heapUsed - heapBefore;
    assert.ok(held < 24 * MiB && heap < 48 * MiB, `the host keeps ${held} bytes of buffers and ${heap} of heap for orphans (cap 16 MiB)`);
    guest.write(encodeFrame(FrameType.EXIT, 7, new FieldWriter().u32(Field.EXIT_CODE, 3).build()));
    await tick();
    assert.equal(client.orphanExits().get(7)?.exitCode, 3, "the newest orphans are the ones kept");
    client.releaseOrphans();
    assert.ok(heldBytes() - before < 4 * MiB, "released orphans are gone");
  }
});

// (b) Lies about sizes

test("a header claiming more than the cap fails its session and is skipped; the channel goes on", { timeout: 30_000 }, async () => {
  const { client, agent } = setup();
  const s = client.exec({ argv: ["x"] });
  const exec = await agent.next((f) => f.type === FrameType.EXEC);
  // 300 KiB claimed (and sent): over the 256 KiB cap.
  agent.sendRaw(Buffer.concat([encodeHeader(FrameType.STDOUT, exec.session, 300 * 1024), Buffer.alloc(300 * 1024)]));
  await assert.rejects(s.result, (e: unknown) => e instanceof AgentProtocolError && /FRAME_TOO_LARGE/.test(e.message));
  const next = client.exec({ argv: ["y"] });
  const again = await agent.next((f) => f.type === FrameType.EXEC && f.session !== exec.session);
  agent.exit(again.session, 4);
  assert.equal((await next.result).status, 4, "the frame after the oversized one is read");
});

test("a header claiming 4 GiB makes the host skip, not buffer", { timeout: 30_000 }, async () => {
  const { client, agent, guest } = setup();
  const errors: Error[] = [];
  client.on("protocol-error", (e) => errors.push(e));
  const before = heldBytes();
  agent.sendRaw(encodeHeader(FrameType.STDOUT, 0, 0xffffffff));
  await blast(guest, FrameType.STDOUT, 0, 50 * MiB); // swallowed by the skip
  await tick();
  assert.ok(errors[0] instanceof AgentProtocolError && /FRAME_TOO_LARGE/.test(errors[0].message), String(errors[0]));
  assert.ok(heldBytes() - before < 8 * MiB, "nothing of what is skipped is kept");
  await assert.rejects(client.hello({ timeoutMs: 100 }), TimeoutError); // the channel is a lost cause: waits still end
  await bystanderWorks();
});

test("garbage and truncated headers cost only themselves", { timeout: 30_000 }, async () => {
  const { client, agent } = setup(echoAgent);
  const errors: Error[] = [];
  client.on("protocol-error", (e) => errors.push(e));
  const bad = encodeHeader(FrameType.STDOUT, 1, 10);
  bad[12] = bad[12]! ^ 0xff; // wrong header CRC
  agent.sendRaw(Buffer.concat([Buffer.alloc(5000, 0x6d), bad, Buffer.from("mv\x01"), encodeFrame(FrameType.HELLO_REQ, 0)]));
  await tick();
  assert.equal(errors.length, 1, "one BAD_FRAME for the whole run of garbage");
  assert.equal((await client.run(["echo", "after garbage"])).stdout.toString(), "after garbage");
});

test("fields whose lengths overflow or run past the frame end the session with a protocol error", { timeout: 30_000 }, async () => {
  const { client, agent } = setup();
  const cases: Array<[string, Buffer]> = [
    ["length 0xffffffff", rawField(Field.EXIT_CODE, 0xffffffff, Buffer.alloc(4))],
    ["length past the end", rawField(Field.EXIT_CODE, 5, Buffer.alloc(4))],
    ["negative as i32 (0x80000000)", rawField(Field.MESSAGE, 0x80000000, Buffer.from("hi"))],
    ["a truncated field header", Buffer.from([9, 0, 4])],
  ];
  for (const [what, payload] of cases) {
    const s = client.exec({ argv: [what] });
    const exec = await agent.next((f) => f.type === FrameType.EXEC && FakeAgent.argv(f)[0] === what);
    agent.send(FrameType.EXIT, exec.session, payload);
    await assert.rejects(s.result, (e: unknown) => e instanceof AgentProtocolError && /BAD_MESSAGE|malformed/.test(e.message), what);
  }
  // The same in a HELLO: reported, no hello taken from it, and the wait for one still ends.
  const errors: Error[] = [];
  client.on("protocol-error", (e) => errors.push(e));
  agent.send(FrameType.HELLO, 0, rawField(Field.PROTO, 0xfffffff0, Buffer.alloc(4)));
  await tick();
  assert.ok(errors[0] instanceof AgentProtocolError);
  await assert.rejects(client.hello({ timeoutMs: 100 }), TimeoutError);
  // A malformed FS_DONE fails the read; a malformed ENTRY the stat.
  const r = client.readFile("/f", () => undefined);
  const read = await agent.next((f) => f.type === FrameType.READ);
  agent.send(FrameType.FS_DONE, read.session, rawField(Field.CRC32, 0xffffffff, Buffer.alloc(4)));
  await assert.rejects(r.result, AgentProtocolError);
  const st = client.fileOp({ op: "stat", path: "/f" });
  const fs = await agent.next((f) => f.type === FrameType.FS);
  agent.send(FrameType.FS_ENTRIES, fs.session, new FieldWriter().bytes(Field.ENTRY, Buffer.alloc(10)).build());
  await assert.rejects(st, AgentProtocolError);
});

test("a read reply with more bytes than the stat, or a wrong total, fails with IntegrityError", { timeout: 30_000 }, async () => {
  const { client, agent } = setup();
  const data = Buffer.from("0123456789");
  const cases: Array<[string, Buffer, Buffer]> = [
    // bytes sent, FS_DONE: the guest claims the stat's 10 bytes but sent 15
    ["more than announced", Buffer.concat([data, Buffer.from("extra")]), fsDone(crc32(data), 10n)],
    ["a total smaller than what came", data, fsDone(crc32(data), 4n)],
    ["a total of 2^64-1", data, fsDone(crc32(data), 0xffffffffffffffffn)],
    ["no checksum or size at all", data, Buffer.alloc(0)],
  ];
  for (const [what, bytes, done] of cases) {
    const r = client.readFile(`/${what}`, () => undefined);
    const read = await agent.next((f) => f.type === FrameType.READ && new Fields(f.payload).str(Field.PATH) === `/${what}`);
    agent.send(FrameType.FS_ENTRIES, read.session, fileEntry("/f", data.length));
    agent.send(FrameType.STDOUT, read.session, bytes);
    agent.send(FrameType.FS_DONE, read.session, done);
    await assert.rejects(r.result, IntegrityError, what);
  }
});

// (c) Lies about checksums

test("a wrong CRC fails reads and writes with IntegrityError, every error an MvmError", { timeout: 30_000 }, async () => {
  const data = Buffer.alloc(300 * 1024, 7);
  const { client } = setup((a, f) => {
    if (f.type === FrameType.READ) {
      a.send(FrameType.FS_ENTRIES, f.session, fileEntry("/f", data.length));
      a.send(FrameType.STDOUT, f.session, data.subarray(0, 128 * 1024));
      a.send(FrameType.STDOUT, f.session, data.subarray(128 * 1024));
      a.send(FrameType.FS_DONE, f.session, fsDone((crc32(data) ^ 1) >>> 0, BigInt(data.length)));
    }
    if (f.type === FrameType.WRITE) a.send(FrameType.STARTED, f.session);
    if (f.type === FrameType.STDIN && f.payload.length === 0) a.send(FrameType.FS_DONE, f.session, fsDone(0xdeadbeef, BigInt(data.length)));
  });
  const r = client.readFile("/f", () => undefined);
  await assert.rejects(r.result, (e: unknown) => e instanceof IntegrityError && e instanceof MvmError);
  const w = client.writeFile({ path: "/g" });
  await w.write(data);
  await assert.rejects(w.end(), (e: unknown) => e instanceof IntegrityError && /damaged/.test(e.hint ?? ""));
});

// (d) Stops answering

test("a hello or a list that never comes ends by its deadline", { timeout: 30_000 }, async () => {
  const { client } = setup();
  const t0 = performance.now();
  await assert.rejects(client.hello({ timeoutMs: 150 }), TimeoutError);
  assert.ok(performance.now() - t0 < 1000);
  await assert.rejects(client.listSessions({ timeoutMs: 100 }), TimeoutError);
  await bystanderWorks();
});

test("an exec whose EXIT never comes: a timeout ends it on the host too, an abort at once", { timeout: 30_000 }, async () => {
  const { client, agent } = setup((a, f) => f.type === FrameType.EXEC && a.send(FrameType.STARTED, f.session, new FieldWriter().u32(Field.PID, 9).build()));
  // With timeoutMs the agent should have killed it by then; a host-side deadline backs that up.
  const t0 = performance.now();
  const s = client.exec({ argv: ["sleep", "inf"], timeoutMs: 50 });
  const bystander = bystanderWorks(); // meanwhile another VM is fine
  await assert.rejects(s.result, TimeoutError);
  const took = performance.now() - t0;
  assert.ok(took >= 50 && took < 15_000, `gave up after ${took} ms`);
  const exec = await agent.next((f) => f.type === FrameType.EXEC);
  assert.equal(signo(await agent.next((f) => f.type === FrameType.SIGNAL && f.session === exec.session)), 9);
  await bystander;
  // Without a timeout only the caller's signal ends the wait.
  const ac = new AbortController();
  const forever = client.exec({ argv: ["sleep", "inf"], signal: ac.signal });
  setTimeout(() => ac.abort(), 50);
  await assert.rejects(forever.result, AbortError);
});

test("a file read that stalls mid-way times out and is cancelled; a paused one does not", { timeout: 30_000 }, async () => {
  const { client, agent } = setup(undefined, { fileIdleMs: 200 });
  const r = client.readFile("/stall", () => undefined);
  const read = await agent.next((f) => f.type === FrameType.READ);
  agent.send(FrameType.FS_ENTRIES, read.session, fileEntry("/stall", 10 * MiB));
  agent.send(FrameType.STDOUT, read.session, Buffer.alloc(64 * 1024));
  const t0 = performance.now();
  await assert.rejects(r.result, TimeoutError);
  assert.ok(performance.now() - t0 < 2000);
  await agent.next((f) => f.type === FrameType.SIGNAL && f.session === read.session);
  // Paused by the host, silence is the guest doing as asked.
  const p = client.readFile("/paused", () => undefined);
  p.pause();
  let failed: unknown;
  p.result.catch((e: unknown) => (failed = e));
  await sleep(500);
  assert.equal(failed, undefined, "a paused read has no idle deadline");
  p.resume();
  await assert.rejects(p.result, TimeoutError);
});

test("a file write that stalls for credit, for STARTED or for FS_DONE times out; a slow host does not", { timeout: 30_000 }, async () => {
  let answer = true;
  const { client, agent } = setup((a, f) => {
    if (f.type === FrameType.WRITE && answer) a.send(FrameType.STARTED, f.session);
  }, { fileIdleMs: 200 });
  // Credit never comes back: the second MiB waits, then gives up.
  const w = client.writeFile({ path: "/a" });
  await assert.rejects(w.write(Buffer.alloc(2 * MiB)), TimeoutError);
  const first = await agent.next((f) => f.type === FrameType.WRITE);
  await agent.next((f) => f.type === FrameType.SIGNAL && f.session === first.session); // the guest drops its temporary file
  // FS_DONE never comes.
  const w2 = client.writeFile({ path: "/b" });
  await w2.write(Buffer.from("abc"));
  await assert.rejects(w2.end(), TimeoutError);
  // STARTED never comes.
  answer = false;
  const w3 = client.writeFile({ path: "/c" });
  await assert.rejects(w3.ready, TimeoutError);
  // A host with nothing to send yet is not the guest's fault.
  answer = true;
  const w4 = client.writeFile({ path: "/d" });
  await w4.ready;
  let failed: unknown;
  w4.done.catch((e: unknown) => (failed = e));
  await sleep(500);
  assert.equal(failed, undefined);
  w4.cancel();
});

test("a file operation never answered times out", { timeout: 30_000 }, async () => {
  const { client } = setup(undefined, { fileIdleMs: 150 });
  await assert.rejects(client.fileOp({ op: "stat", path: "/x" }), TimeoutError);
  await bystanderWorks();
});

test("a guest that stalls one session leaves the others on the same channel working", { timeout: 30_000 }, async () => {
  // The agent answers every command but "hang", and never finishes a read.
  const { client } = setup((a, f) => {
    if (f.type === FrameType.EXEC && FakeAgent.argv(f)[0] !== "hang") echoAgent(a, f);
    if (f.type === FrameType.READ) a.send(FrameType.FS_ENTRIES, f.session, fileEntry("/f", 1));
  }, { fileIdleMs: 300 });
  const ac = new AbortController();
  const hung = client.exec({ argv: ["hang"], signal: ac.signal });
  const read = client.readFile("/f", () => undefined);
  for (let i = 0; i < 20; i++) assert.equal((await client.run(["echo", `n${i}`])).stdout.toString(), `n${i}`);
  await assert.rejects(read.result, TimeoutError);
  assert.equal((await client.run(["echo", "after"])).stdout.toString(), "after");
  ac.abort();
  await assert.rejects(hung.result, AbortError);
});
