import assert from "node:assert/strict";
import type { Duplex } from "node:stream";
import { test } from "node:test";
import { QmpCommandError, QmpDisconnectedError, TimeoutError } from "../errors.js";
import { duplexPair } from "../../test/support/duplex-pair.js";
import { QmpClient, type QmpEvent } from "./qmp-client.js";

const GREETING = { QMP: { version: { qemu: { major: 7, minor: 2, micro: 0 }, package: "" }, capabilities: ["oob"] } };

/** A fake QEMU monitor: greets, answers qmp_capabilities, and hands other commands to `answer`. */
function fakeQemu(server: Duplex, answer: (cmd: { execute: string; arguments?: unknown; id: number }) => unknown = () => undefined) {
  const seen: Array<{ execute: string; id: number }> = [];
  let buf = "";
  server.setEncoding("utf8");
  server.on("data", (chunk: string) => {
    buf += chunk;
    let nl: number;
    while ((nl = buf.indexOf("\n")) >= 0) {
      const cmd = JSON.parse(buf.slice(0, nl)) as { execute: string; id: number };
      buf = buf.slice(nl + 1);
      seen.push(cmd);
      const reply = cmd.execute === "qmp_capabilities" ? { return: {}, id: cmd.id } : answer(cmd);
      if (reply !== undefined) server.write(`${JSON.stringify(reply)}\n`);
    }
  });
  server.write(`${JSON.stringify(GREETING)}\r\n`);
  return seen;
}

test("connect waits for the greeting and negotiates capabilities", async () => {
  const [client, server] = duplexPair();
  const seen = fakeQemu(server);
  const qmp = await QmpClient.connect(client);
  assert.equal(qmp.greeting?.version.qemu.major, 7);
  assert.deepEqual(seen.map((c) => c.execute), ["qmp_capabilities"]);
});

test("replies are matched by id, even out of order, and events are kept apart", async () => {
  const [client, server] = duplexPair();
  const held: Array<{ execute: string; id: number }> = [];
  fakeQemu(server, (cmd) => {
    held.push(cmd);
    if (held.length === 2) {
      // Answer the second first, with an event in between.
      server.write(`${JSON.stringify({ return: { status: "running" }, id: held[1]!.id })}\n`);
      server.write(`${JSON.stringify({ event: "STOP", timestamp: { seconds: 1, microseconds: 2 } })}\n`);
      server.write(`${JSON.stringify({ return: { n: 1 }, id: held[0]!.id })}\n`);
    }
    return undefined;
  });
  const qmp = await QmpClient.connect(client);
  const events: QmpEvent[] = [];
  qmp.on("event", (e) => events.push(e));
  const [a, b] = await Promise.all([qmp.execute("first"), qmp.execute("query-status")]);
  assert.deepEqual(a, { n: 1 });
  assert.deepEqual(b, { status: "running" });
  assert.deepEqual(events.map((e) => e.event), ["STOP"]);
});

test("an error reply rejects with the command and the reply", async () => {
  const [client, server] = duplexPair();
  fakeQemu(server, (cmd) => ({ error: { class: "GenericError", desc: "no such thing" }, id: cmd.id }));
  const qmp = await QmpClient.connect(client);
  await assert.rejects(qmp.execute("device_del", { id: "x" }), (e: unknown) => {
    assert.ok(e instanceof QmpCommandError);
    assert.match(e.message, /device_del: no such thing/);
    assert.deepEqual(e.details.arguments, { id: "x" });
    return true;
  });
});

test("a dropped connection fails every pending call", async () => {
  const [client, server] = duplexPair();
  fakeQemu(server);
  const qmp = await QmpClient.connect(client);
  const calls = [qmp.execute("a"), qmp.execute("b")];
  server.destroy();
  for (const c of calls) await assert.rejects(c, QmpDisconnectedError);
  await assert.rejects(qmp.execute("late"), QmpDisconnectedError);
});

test("no greeting is a timeout, and the stream is closed", async () => {
  const [client] = duplexPair();
  await assert.rejects(QmpClient.connect(client, { timeoutMs: 30 }), TimeoutError);
  assert.ok(client.destroyed);
});

test("a command without a reply times out when asked to", async () => {
  const [client, server] = duplexPair();
  fakeQemu(server);
  const qmp = await QmpClient.connect(client);
  await assert.rejects(qmp.execute("hang", undefined, { timeoutMs: 30 }), TimeoutError);
});
