// The agent keeps an ended command's exit until a host acknowledges it: a host that goes away between the
// EXIT and its acknowledgement (a daemon killed with -9) cannot lose how the command ended.
import assert from "node:assert/strict";
import { test } from "node:test";
import { bootGuest } from "../support/guests.js";

test("an exit no host acknowledged is listed to the next host, sent again, and adopted; an acknowledged one is forgotten", { timeout: 180_000 }, async (t) => {
  const guest = await bootGuest((fn) => t.after(fn));
  assert.ok(guest.hello?.capabilities.includes("exit-ack"));
  const first = guest.agent!;
  const job = first.exec({ argv: ["sh", "-c", "echo out; exit 7"] });
  // The host drops the channel the moment the EXIT arrives, before its acknowledgement (which waits for a
  // later turn of the event loop) can go out. The next host keeps early frames, as a restarted daemon does.
  const next = job.result.then(() => guest.reconnect(15000, { keepOrphans: true }));
  assert.equal((await job.result).status, 7);
  await next;
  assert.ok(first.closed);
  const agent = guest.agent!;
  const listed = await agent.listSessions({ timeoutMs: 10000 });
  const mine = listed.find((l) => l.id === job.id);
  assert.ok(mine, `the agent still lists session ${job.id}: ${JSON.stringify(listed)}`);
  assert.deepEqual(mine.argv, ["sh", "-c", "echo out; exit 7"]);
  const adopted = agent.adopt(mine, {});
  assert.equal((await adopted.result).status, 7);
  agent.releaseOrphans();
  // This host acknowledged it (on the next turn): the agent lists it no more.
  await new Promise((r) => setImmediate(r));
  assert.equal((await agent.run(["true"])).status, 0);
  assert.ok(!(await agent.listSessions({ timeoutMs: 10000 })).some((l) => l.id === job.id));
});

test("a command that exited with output still to forward is listed, and its EXIT follows the list", { timeout: 180_000 }, async (t) => {
  const guest = await bootGuest((fn) => t.after(fn));
  const agent = guest.agent!;
  // Past one window of output with the reader paused: the agent holds the rest (in the pipe) and the EXIT.
  let got = 0;
  const job = agent.exec({ argv: ["sh", "-c", "head -c 1064960 /dev/zero; exit 5"], onStdout: (b) => (got += b.length) });
  job.pause();
  const pid = await job.started;
  // Until the agent has reaped it: `kill -0` fails only then (a zombie still counts).
  assert.equal((await agent.run(["sh", "-c", `while kill -0 ${pid} 2>/dev/null; do sleep 0.05; done`], { timeoutMs: 60000 })).status, 0);
  const listed = await agent.listSessions({ timeoutMs: 10000 });
  assert.ok(listed.some((l) => l.id === job.id), `an ended command still owed to the host is listed: ${JSON.stringify(listed)}`);
  job.resume();
  assert.equal((await job.result).status, 5);
  assert.equal(got, 1064960);
  agent.releaseOrphans();
});
