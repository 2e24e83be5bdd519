// One real guest under TCG, many commands through the host-side protocol code.
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { after, before, describe, test } from "node:test";
import { AgentProtocolError } from "../../src/errors.js";
import type { Guest } from "../../src/vm/launch.js";
import { bootGuest, stopGuest } from "../support/guests.js";

describe("exec through the agent", () => {
  let guest: Guest;
  const agent = () => guest.agent!;

  before(async () => {
    guest = await bootGuest(undefined, { config: { hostname: "exec-test", env: { FROM_CONFIG: "yes, with spaces" } } });
  });
  after(() => stopGuest(guest));

  test("hello describes the agent and the kernel", { timeout: 60_000 }, () => {
    const hello = guest.hello!;
    assert.equal(hello.protocol, 1);
    assert.match(hello.kernel ?? "", /^6\.1\.\d+/);
    assert.equal(hello.hostname, "exec-test");
    assert.ok(hello.capabilities.includes("exec"));
    assert.ok((hello.initUptimeMs ?? 0) > 0 && (hello.uptimeMs ?? 0) >= (hello.initUptimeMs ?? 0));
  });

  test("stdout and stderr stay apart", { timeout: 60_000 }, async () => {
    const r = await agent().run(["sh", "-c", "echo to-out; echo to-err >&2; echo more-out"]);
    assert.equal(r.stdout.toString(), "to-out\nmore-out\n");
    assert.equal(r.stderr.toString(), "to-err\n");
    assert.equal(r.exitCode, 0);
  });

  test("exit codes come back as they are", { timeout: 60_000 }, async () => {
    for (const code of [0, 1, 3, 42, 255]) {
      const r = await agent().run(["sh", "-c", `exit ${code}`]);
      assert.deepEqual([r.exitCode, r.signal, r.status], [code, null, code]);
    }
  });

  test("a command that does not exist gives 127 and says why", { timeout: 60_000 }, async () => {
    const r = await agent().run(["no-such-command-here"]);
    assert.equal(r.status, 127);
    assert.equal(r.pid, undefined);
    assert.match(r.message ?? "", /no-such-command-here: No such file or directory/);
  });

  test("a file that cannot be executed gives 126", { timeout: 60_000 }, async () => {
    const r = await agent().run(["/etc/passwd"]);
    assert.equal(r.status, 126);
    assert.match(r.message ?? "", /Permission denied/);
  });

  test("a command killed by a signal gives 128+N", { timeout: 60_000 }, async () => {
    const r = await agent().run(["sh", "-c", "kill -9 $$"]);
    assert.deepEqual([r.exitCode, r.signal, r.status], [null, 9, 137]);
  });

  test("signals reach the command's process group", { timeout: 60_000 }, async () => {
    const s = agent().exec({ argv: ["sh", "-c", "echo ready; sleep 30"], onStdout: () => s.kill(15) });
    const r = await s.result;
    assert.equal(r.signal, 15);
  });

  test("env, working directory and user", { timeout: 60_000 }, async () => {
    const r = await agent().run(["sh", "-c", 'echo "$FROM_CONFIG|$EXTRA|$(pwd)|$(id -u)|$HOME"'], { env: { EXTRA: "a=b" }, cwd: "/tmp", user: "nobody" });
    assert.equal(r.stdout.toString(), "yes, with spaces|a=b|/tmp|65534|/nonexistent\n");
    const bad = await agent().run(["true"], { cwd: "/does/not/exist" });
    assert.equal(bad.status, 126);
    assert.match(bad.message ?? "", /cannot change to directory \/does\/not\/exist/);
    const nouser = await agent().run(["true"], { user: "nosuchuser" });
    assert.equal(nouser.status, 126);
    assert.match(nouser.message ?? "", /no such user/);
  });

  test("five concurrent sessions each get their own output and status", { timeout: 60_000 }, async () => {
    const runs = Array.from({ length: 5 }, (_, i) =>
      agent().run(["sh", "-c", `for n in 1 2 3; do echo s${i}-$n; sleep 0.1; done; echo e${i} >&2; exit ${i + 10}`]),
    );
    const results = await Promise.all(runs);
    results.forEach((r, i) => {
      assert.equal(r.stdout.toString(), `s${i}-1\ns${i}-2\ns${i}-3\n`);
      assert.equal(r.stderr.toString(), `e${i}\n`);
      assert.equal(r.exitCode, i + 10);
    });
  });

  test("binary data survives stdin and stdout, beyond one flow-control window", { timeout: 60_000 }, async () => {
    const data = randomBytes(3 * 1024 * 1024 + 17);
    const r = await agent().run(["cat"], { input: data });
    assert.equal(r.exitCode, 0);
    assert.equal(r.stdout.length, data.length);
    assert.ok(r.stdout.equals(data), "output differs from input");
    const sum = await agent().run(["sha256sum"], { input: data });
    assert.equal(sum.stdout.toString().split(" ")[0], createHash("sha256").update(data).digest("hex"));
  });

  test("all 256 byte values come back from the guest unchanged", { timeout: 60_000 }, async () => {
    const r = await agent().run(["sh", "-c", "i=0; while [ $i -lt 256 ]; do printf \"\\\\$(printf %o $i)\"; i=$((i+1)); done"]);
    assert.deepEqual([...r.stdout], Array.from({ length: 256 }, (_, i) => i));
  });

  test("a command that leaves a background child still finishes", { timeout: 60_000 }, async () => {
    const r = await agent().run(["sh", "-c", "sleep 5 & echo started"]);
    assert.equal(r.stdout.toString(), "started\n");
    assert.equal(r.exitCode, 0);
    assert.ok(r.durationMs < 4000, `took ${r.durationMs} ms: waited for the background child`);
  });

  test("a timeout kills the command and everything it started, SIGTERM-proof and setsid'd ones included", { timeout: 60_000 }, async () => {
    const script = "trap '' TERM; setsid sh -c 'trap \"\" TERM; echo $$ > /tmp/grandchild; sleep 100' & sleep 100";
    const started = performance.now();
    const r = await agent().run(["sh", "-c", script], { timeoutMs: 1500 });
    assert.equal(r.timedOut, true);
    assert.equal(r.status, 124);
    assert.match(r.message ?? "", /timed out after 1500 ms/);
    assert.ok(performance.now() - started < 10000);
    const left = await agent().run(["sh", "-c", "kill -0 $(cat /tmp/grandchild) 2>/dev/null && echo alive || echo gone"]);
    assert.equal(left.stdout.toString(), "gone\n");
    const quick = await agent().run(["true"], { timeoutMs: 5000 });
    assert.deepEqual([quick.status, quick.timedOut], [0, undefined], "a command within its time is untouched");
  });

  test("hostile frames get clear errors and the agent keeps serving", { timeout: 60_000 }, async () => {
    const errors: AgentProtocolError[] = [];
    const onError = (e: AgentProtocolError) => errors.push(e);
    agent().on("protocol-error", onError);
    const { encodeFrame, encodeHeader } = await import("../../src/agent/frame.js");
    const ch = guest.channel!;
    ch.write(Buffer.from("complete garbage, no frame here"));
    ch.write(encodeFrame(0x7e, 0, Buffer.from("unknown type")));
    ch.write(Buffer.concat([encodeHeader(0x03, 77, 300 * 1024), Buffer.alloc(300 * 1024)])); // over the cap
    ch.write(encodeFrame(0x02, 0, Buffer.from([1, 0, 200, 0, 0, 0, 65]))); // a field that runs past the end
    ch.write(encodeHeader(0x02, 5, 40)); // truncated: header promises 40 bytes, 10 come
    ch.write(Buffer.alloc(10));
    ch.write(Buffer.alloc(64)); // the truncated frame takes 30 of these; the rest is garbage to skip
    const r = await agent().run(["echo", "still here"]);
    assert.equal(r.stdout.toString(), "still here\n");
    agent().off("protocol-error", onError);
    const names = errors.map((e) => e.details.codeName);
    for (const code of ["BAD_FRAME", "UNKNOWN_TYPE", "FRAME_TOO_LARGE", "BAD_MESSAGE"]) assert.ok(names.includes(code), `no ${code} in ${names.join(",")}`);
  });

  test("the host dropping the channel and coming back finds the agent serving (daemon restart)", { timeout: 60_000 }, async () => {
    const oldAgent = agent();
    const hello = await guest.reconnect(15000);
    assert.ok(oldAgent.closed);
    assert.equal(hello.agentPid, oldAgent.info?.agentPid, "the same agent process answers");
    const r = await agent().run(["echo", "reconnected"]);
    assert.equal(r.stdout.toString(), "reconnected\n");
  });

  test("the agent restarting fails its sessions clearly, and the VM carries on", { timeout: 60_000 }, async () => {
    const before = guest.hello!.agentPid;
    const rehello = new Promise((r) => agent().once("hello", r));
    const killed = agent().run(["sh", "-c", "kill -9 $PPID; sleep 10"]);
    await assert.rejects(killed, /agent restarted/);
    await rehello;
    assert.notEqual(agent().info?.agentPid, before);
    const r = await agent().run(["echo", "back"]);
    assert.equal(r.stdout.toString(), "back\n");
  });
});
