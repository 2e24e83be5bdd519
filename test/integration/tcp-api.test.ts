// The API over TCP with a token against a real guest under TCG (issue 13): the daemon the library starts on
// demand listens on loopback (MVM_LISTEN, as `mvm daemon --listen` sets it); a user token creates, starts
// and runs commands in its VM over TCP, exec streaming included, and another user token does not see it.
import assert from "node:assert/strict";
import { once } from "node:events";
import { createServer } from "node:net";
import { test } from "node:test";
import { connect } from "../../src/client/client.js";
import { MvmError } from "../../src/errors.js";
import { startTestDaemon } from "../support/daemon.js";

test("over TCP with a token: create, start, exec and an exec stream in a real guest; another token sees nothing", { timeout: 180_000 }, async (t) => {
  const probe = createServer().listen(0, "127.0.0.1");
  await once(probe, "listening");
  const port = (probe.address() as { port: number }).port;
  probe.close();
  process.env.MVM_LISTEN = `127.0.0.1:${port}`;
  let d;
  try {
    d = await startTestDaemon(t);
  } finally {
    delete process.env.MVM_LISTEN;
  }
  const url = `http://127.0.0.1:${port}`;
  const { token } = await d.client.createToken("it", { role: "user", maxVms: 1 });
  const other = await connect({ url, token: (await d.client.createToken("other")).token });
  const c = await connect({ url, token });
  const vm = await c.create({ name: "over-tcp" });
  assert.equal(vm.owner, "it");
  const started = await c.start(vm.id);
  assert.equal(started.state, "running");
  const r = await c.exec("over-tcp", ["sh", "-c", "uname -s; echo oops >&2; exit 4"]);
  assert.deepEqual([r.exitCode, r.status], [4, 4]);
  const out: Buffer[] = [];
  const s = await c.execStream("over-tcp", ["sh", "-c", "read x; echo got-$x"], { onStdout: (b) => out.push(b) });
  s.write("42\n");
  s.end();
  assert.equal((await s.result).exitCode, 0);
  assert.equal(Buffer.concat(out).toString(), "got-42\n");
  assert.deepEqual(await other.list(), []);
  await assert.rejects(other.exec("over-tcp", ["true"]), (e: unknown) => e instanceof MvmError && e.code === "NOT_FOUND");
  await assert.rejects(c.create({ name: "second" }), (e: unknown) => e instanceof MvmError && e.code === "QUOTA_EXCEEDED");
  await c.remove("over-tcp", { force: true });
});
