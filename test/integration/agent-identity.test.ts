// IDENTITY against a real guest: what a VM restored from a template is told, it becomes. One guest: a
// malformed request first (it must change nothing), then a good one.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { test } from "node:test";
import { bootGuest, withConsole } from "../support/guests.js";

const inAnHour = () => BigInt(Date.now() + 3600_000) * 1_000_000n;

test("identity sets the clock, hostname and environment and answers with a fresh hello; a bad one changes nothing", { timeout: 180_000 }, async (t) => {
  const guest = await bootGuest((fn) => t.after(fn), { config: { hostname: "before" } });
  const agent = guest.agent!;
  const clock = async () => Number((await agent.run(["date", "+%s"])).stdout.toString().trim());
  // What a command inherits (this busybox has no printenv).
  const inherited = async () => (await agent.run(["env"])).stdout.toString().split("\n").filter((l) => l.startsWith("MVM_IDENT="));
  assert.ok(guest.hello?.capabilities.includes("identity"));
  await withConsole(guest, async () => {
    // A hostname over 64 bytes: the agent refuses the whole request, its clock and env included.
    await assert.rejects(agent.identity({ realtimeNs: inAnHour(), hostname: "x".repeat(65), env: { MVM_IDENT: "no" } }, { timeoutMs: 30_000 }), /BAD_MESSAGE: identity: HOSTNAME/);
    assert.equal((await agent.run(["hostname"])).stdout.toString().trim(), "before");
    assert.deepEqual(await inherited(), []);
    assert.ok(Math.abs((await clock()) - Date.now() / 1000) < 600, "the clock stayed where it was");

    const ahead = Date.now() / 1000 + 3600;
    const hello = await agent.identity({ realtimeNs: inAnHour(), hostname: "ident-test", entropy: randomBytes(64), env: { MVM_IDENT: "yes" } }, { timeoutMs: 30_000 });
    assert.equal(hello.hostname, "ident-test");
    assert.deepEqual(hello.identityErrors, []);
    assert.equal(hello.agentPid, guest.hello?.agentPid, "the same agent answered");
    assert.equal((await agent.run(["hostname"])).stdout.toString().trim(), "ident-test");
    const date = await clock();
    assert.ok(Math.abs(date - ahead) <= 10, `the guest's clock says ${date}; an hour ahead of the host is ${Math.round(ahead)}`);
    assert.deepEqual(await inherited(), ["MVM_IDENT=yes"]);
  });
});
