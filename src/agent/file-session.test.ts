import assert from "node:assert/strict";
import { test } from "node:test";
import { duplexPair } from "../../test/support/duplex-pair.js";
import { FakeAgent } from "../../test/support/fake-agent.js";
import { AgentProtocolError, IntegrityError } from "../errors.js";
import { AgentClient } from "./client.js";
import { crc32 } from "../api/crc32.js";
import { FieldWriter, Fields } from "./fields.js";
import { Field, FrameType } from "./protocol.js";

function setup(handler: ConstructorParameters<typeof FakeAgent>[1], options = {}) {
  const [host, guest] = duplexPair();
  return { client: new AgentClient(host, options), agent: new FakeAgent(guest, handler) };
}

const done = (crc: number, size: number) => new FieldWriter().u32(Field.CRC32, crc).bytes(Field.SIZE, Buffer.from(new BigUint64Array([BigInt(size)]).buffer)).build();

/** One ENTRY field for a regular file of `size` bytes. */
function fileEntry(name: string, size: number): Buffer {
  const v = Buffer.alloc(31 + name.length);
  v[0] = 0;
  v.writeUInt32LE(0o100644, 1);
  v.writeBigUInt64LE(BigInt(size), 13);
  v.writeUInt16LE(name.length, 29);
  v.write(name, 31);
  return new FieldWriter().bytes(Field.ENTRY, v).build();
}

test("a read whose bytes do not match the guest's CRC fails with IntegrityError", async () => {
  const data = Buffer.from("the real bytes");
  const { client } = setup((a, f) => {
    if (f.type !== FrameType.READ) return;
    a.send(FrameType.FS_ENTRIES, f.session, fileEntry("/f", data.length));
    a.send(FrameType.STDOUT, f.session, Buffer.from("the fake bytes"));
    a.send(FrameType.FS_DONE, f.session, done(crc32(data), data.length));
  });
  const chunks: Buffer[] = [];
  const r = client.readFile("/f", (c) => chunks.push(c));
  assert.equal((await r.info).size, data.length);
  await assert.rejects(r.result, IntegrityError);
});

test("a write the guest stored differently fails with IntegrityError; a matching one resolves", async () => {
  let lie = true;
  const { client } = setup((a, f) => {
    if (f.type === FrameType.WRITE) a.send(FrameType.STARTED, f.session);
    if (f.type === FrameType.STDIN && f.payload.length === 0) a.send(FrameType.FS_DONE, f.session, done(lie ? 1234 : crc32(Buffer.from("abc")), 3));
  });
  const w = client.writeFile({ path: "/f" });
  await w.write(Buffer.from("abc"));
  await assert.rejects(w.end(), IntegrityError);
  lie = false;
  const w2 = client.writeFile({ path: "/g" });
  await w2.write(Buffer.from("abc"));
  assert.deepEqual(await w2.end(), { size: 3, crc32: crc32(Buffer.from("abc")).toString(16).padStart(8, "0") });
});

test("a guest errno becomes a GuestFileError with its code; malformed entries end that operation only", async () => {
  const { client } = setup((a, f) => {
    if (f.type !== FrameType.FS) return;
    const op = new Fields(f.payload).str(Field.OP);
    if (op === "stat") a.send(FrameType.FS_DONE, f.session, new FieldWriter().u32(Field.ERRNO, 2).str(Field.MESSAGE, "stat /x: No such file or directory").build());
    if (op === "list") a.send(FrameType.FS_ENTRIES, f.session, new FieldWriter().bytes(Field.ENTRY, Buffer.alloc(5)).build());
    if (op === "mkdir") a.send(FrameType.FS_DONE, f.session, new FieldWriter().u32(Field.ERRNO, 28).str(Field.MESSAGE, "mkdir /d: No space left on device").build());
  });
  await assert.rejects(client.fileOp({ op: "stat", path: "/x" }), (e: Error & { code?: string }) => e.code === "FILE_NOT_FOUND" && /No such file/.test(e.message));
  await assert.rejects(client.fileOp({ op: "list", path: "/" }), AgentProtocolError);
  await assert.rejects(client.fileOp({ op: "mkdir", path: "/d" }), (e: Error & { code?: string }) => e.code === "GUEST_DISK_FULL");
});

test("a restarted host keeps frames of sessions it does not know yet, and adopting replays them", async () => {
  const { client, agent } = setup((a, f) => {
    if (f.type === FrameType.LIST) {
      const v = Buffer.concat([Buffer.from([7, 0, 0, 0, 99, 0, 0, 0, 0]), Buffer.from("sleep\u0000100\u0000")]);
      a.send(FrameType.SESSIONS, 0, new FieldWriter().bytes(Field.SESSION, v).build());
    }
  }, { keepOrphans: true });
  // Output of session 7 arrives before anyone asked, and an exit of session 1 that ended meanwhile.
  agent.send(FrameType.STDOUT, 7, Buffer.from("early "));
  agent.exit(1, 5);
  const listed = await client.listSessions({ timeoutMs: 1000 });
  assert.deepEqual(listed, [{ id: 7, pid: 99, tty: false, argv: ["sleep", "100"] }]);
  assert.equal(client.orphanExits().get(1)?.exitCode, 5);
  let out = "";
  const s = client.adopt(listed[0]!, { onStdout: (b) => (out += b.toString()) });
  agent.send(FrameType.STDOUT, 7, Buffer.from("late"));
  agent.exit(7, 0);
  assert.equal((await s.result).status, 0);
  assert.equal(out, "early late");
  assert.equal(await s.started, 99);
  client.releaseOrphans();
  // New sessions get ids above the adopted one.
  assert.ok(client.exec({ argv: ["true"] }).id > 7);
});

test("adoption of a command the agent lists as ended: the EXIT it sends again after the list ends it, acknowledged", async () => {
  const entry = (id: number, pid: number, argv: string) => Buffer.concat([Buffer.from([id, 0, 0, 0, pid, 0, 0, 0, 0]), Buffer.from(argv)]);
  const { client, agent } = setup((a, f) => {
    if (f.type === FrameType.HELLO_REQ) a.hello(undefined, ["exec", "exit-ack"]);
    if (f.type === FrameType.LIST) {
      // Session 1 ended, its first EXIT lost with the host before; session 2 never started (pid 0).
      a.send(FrameType.SESSIONS, 0, new FieldWriter().bytes(Field.SESSION, entry(1, 42, "job\u0000")).bytes(Field.SESSION, entry(2, 0, "nope\u0000")).build());
      a.exit(1, 5);
      a.send(FrameType.EXIT, 2, new FieldWriter().u32(Field.EXIT_CODE, 127).str(Field.MESSAGE, "cannot run nope: No such file or directory").build());
    }
  }, { keepOrphans: true });
  await client.hello();
  const listed = await client.listSessions({ timeoutMs: 1000 });
  const [job, nope] = listed.map((l) => client.adopt(l, {}));
  assert.equal((await job!.result).status, 5);
  assert.equal(await job!.started, 42);
  assert.equal((await nope!.result).status, 127);
  assert.equal(await nope!.started, undefined);
  client.releaseOrphans();
  await agent.next((f) => f.type === FrameType.EXIT_ACK && f.session === 2);
  assert.deepEqual(agent.received.filter((f) => f.type === FrameType.EXIT_ACK).map((f) => f.session).sort(), [1, 2]);
});
