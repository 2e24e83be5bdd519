// The VM manager's lifecycle against the fake QEMU (test/support/fake-qemu.ts): every state and branch a
// real guest would need minutes under TCG for, in milliseconds. Each test has its own home and fails if a
// QEMU it started survives it.

import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { test, type TestContext } from "node:test";
import { MvmError } from "../../src/errors.js";
import type { VmManager } from "../../src/daemon/vm-manager.js";
import { vmDir, vmFiles } from "../../src/vm/layout.js";
import { FAKE_QEMU, FakeHome, alive, waitFor } from "./harness.js";

const T = { timeout: 15000 };

function setup(t: TestContext, options: { readyTimeoutMs?: number } = {}): { h: FakeHome; m: VmManager } {
  const h = new FakeHome();
  t.after(() => h.close());
  return { h, m: h.manager(options) };
}

/** The fake's own note of how it ended (it writes one to its stderr, QEMU's log). */
const qemuLog = (h: FakeHome, id: string) => readFileSync(vmFiles(vmDir(h.home, id)).qemuLog, "utf8");

/** With a knob set for the fakes started meanwhile. */
async function withEnv<T>(vars: Record<string, string>, fn: () => Promise<T>): Promise<T> {
  const old = Object.fromEntries(Object.keys(vars).map((k) => [k, process.env[k]]));
  Object.assign(process.env, vars);
  try {
    return await fn();
  } finally {
    for (const [k, v] of Object.entries(old)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
}

const isWrongState = (...states: string[]) => (e: unknown) => {
  assert.ok(e instanceof MvmError, `not an MvmError: ${String(e)}`);
  assert.equal(e.code, "WRONG_STATE");
  for (const s of states) assert.match(e.message, new RegExp(`\\b${s}\\b`));
  return true;
};

test("create → start → running: the record names the QEMU, its argv and its timings", T, async (t) => {
  const { h, m } = setup(t);
  const created = await m.create({ name: "a" });
  assert.equal(created.state, "created");
  const rec = await m.start("a");
  assert.equal(rec.state, "running");
  assert.ok(rec.pid && alive(rec.pid), "the record names a live pid");
  assert.deepEqual(h.pids(), [rec.pid]);
  assert.ok(rec.pidStart);
  const argv = rec.argv ?? [];
  assert.equal(argv[argv.indexOf("-name") + 1], `mvm-${rec.id}`);
  assert.ok(argv.some((a) => a.includes(`path=${vmDir(h.home, rec.id)}/agent.sock`)));
  assert.deepEqual({ kind: rec.binary?.kind, path: rec.binary?.path }, { kind: "full", path: FAKE_QEMU });
  assert.equal(typeof rec.timings?.qmpMs, "number");
  assert.equal(typeof rec.timings?.helloMs, "number");
  assert.equal(rec.timings?.guestInitUptimeMs, 290);
  assert.equal(rec.kernelRelease, "6.1.0-fake");
  assert.ok(m.connected(rec.id));
  // The console went to the socket and QEMU's logfile.
  assert.match(readFileSync(vmFiles(vmDir(h.home, rec.id)).consoleLog, "utf8"), /mvm-init: started/);
  const hello = await m.agentFor("a").agent.run(["sh", "-c", "echo hi; echo oops >&2; exit 3"]);
  assert.deepEqual({ status: hello.status, out: hello.stdout.toString(), err: hello.stderr.toString() }, { status: 3, out: "hi\n", err: "oops\n" });
  await m.kill("a");
});

test("pause and resume go through QMP (query-status agrees); stop climbs the ladder's first rung", T, async (t) => {
  const { h, m } = setup(t);
  const { id } = await m.create({ name: "p" });
  await m.start("p");
  const qmp = FakeHome.guestOf(m, id).qmp;
  assert.equal((await m.pause("p")).state, "paused");
  assert.equal((await qmp.execute<{ status: string }>("query-status")).status, "paused");
  assert.equal((await m.resume("p")).state, "running");
  assert.equal((await qmp.execute<{ status: string }>("query-status")).status, "running");
  const pid = m.get("p").pid!;
  const stopped = await m.stop("p");
  assert.equal(stopped.state, "stopped");
  assert.equal(stopped.pid, undefined);
  assert.deepEqual({ code: stopped.lastExit?.exitCode, signal: stopped.lastExit?.signal, reason: stopped.lastExit?.reason }, { code: 0, signal: null, reason: "stopped on request" });
  // The guest powered off when asked (no QMP quit, no signal).
  assert.match(qemuLog(h, id), /shutting down \(guest: true, reason: guest-shutdown\)/);
  assert.ok(!alive(pid));
  assert.ok(!m.connected(id));
  assert.ok(!existsSync(vmFiles(vmDir(h.home, id)).agentSocket), "the sockets went with the VM");
});

test("kill → stopped, by SIGKILL", T, async (t) => {
  const { h, m } = setup(t);
  await m.create({ name: "k" });
  const { pid } = await m.start("k");
  const rec = await m.kill("k");
  assert.equal(rec.state, "stopped");
  assert.equal(rec.lastExit?.signal, "SIGKILL");
  assert.ok(!alive(pid!));
  assert.deepEqual(h.pids(), []);
});

test("a stopped or crashed VM starts again, with a new QEMU", T, async (t) => {
  const { h, m } = setup(t);
  await m.create({ name: "again" });
  const first = await m.start("again");
  await m.stop("again");
  const second = await m.start("again");
  assert.equal(second.state, "running");
  assert.notEqual(second.pid, first.pid);
  assert.deepEqual(h.pids(), [second.pid]);
  await m.kill("again");
});

test("the VM's own command: its output is logged, and its end powers the VM off", T, async (t) => {
  const { m } = setup(t);
  await m.create({ name: "job", command: ["sh", "-c", "echo out; exit 3"] });
  const ended = m.wait("job");
  await m.start("job");
  const e = await ended;
  assert.equal(e.commandExit?.status, 3);
  assert.equal(e.state, "stopped");
  assert.equal(m.get("job").commandExit?.status, 3);
  const logged = m.jobLog(m.get("job").id).history().map((x) => ("data" in x ? Buffer.from(x.data, "base64").toString() : ""));
  assert.equal(logged.join(""), "out\n");
});

test("a guest that powers itself off is stopped, not crashed", T, async (t) => {
  const { m } = setup(t);
  const { id } = await m.create({ name: "off" });
  await m.start("off");
  await m.agentFor("off").agent.run(["poweroff"]);
  await waitFor(() => m.get(id).state !== "running", "the VM to stop");
  const rec = m.get(id);
  assert.equal(rec.state, "stopped");
  assert.equal(rec.lastExit?.reason, "the guest powered off");
});

test("a power-off whose SHUTDOWN event is still unread when QEMU's exit arrives is stopped too", T, async (t) => {
  const { m } = setup(t);
  const { id } = await m.create({ name: "quick", append: "fake_qemu.mode=prompt-exit" });
  for (let i = 0; i < 5; i++) {
    await m.start("quick");
    await m.agentFor("quick").agent.run(["poweroff"]);
    await waitFor(() => m.get(id).state !== "running", "the VM to stop");
    assert.deepEqual([m.get(id).state, m.get(id).lastExit?.reason], ["stopped", "the guest powered off"], `round ${i}`);
  }
});

test("QEMU dying during boot: crashed with the reason, nothing left running, the record intact", T, async (t) => {
  const { h, m } = setup(t);
  const created = await m.create({ name: "die" });
  const err = await withEnv({ FAKE_QEMU_MODE: "die-at-boot", FAKE_QEMU_STDERR: "qemu-system-x86_64: -kernel: no such thing" }, () => m.start("die").then(() => assert.fail("started"), (e: unknown) => e));
  assert.ok(err instanceof MvmError);
  assert.equal(err.code, "BOOT_FAILED");
  assert.match(err.message, /QEMU exited during boot \(status 1\)/);
  assert.match(String(err.details.qemuStderr), /-kernel: no such thing/, "the error carries QEMU's output");
  const rec = m.get("die");
  assert.equal(rec.state, "crashed");
  assert.equal(rec.pid, undefined);
  assert.match(rec.lastExit?.reason ?? "", /^boot failed: QEMU exited during boot/);
  assert.deepEqual(rec.spec, created.spec);
  assert.deepEqual(h.pids(), []);
  assert.ok(!existsSync(vmFiles(vmDir(h.home, rec.id)).agentSocket));
  // Not damaged: it starts the next time.
  assert.equal((await m.start("die")).state, "running");
  await m.kill("die");
});

test("QEMU's disk-lock refusal at boot is a DiskInUseError", T, async (t) => {
  const { h, m } = setup(t);
  await m.create({ name: "locked" });
  const stderr = 'qemu-system-x86_64: -blockdev {"driver":"raw"}: Failed to get "write" lock\nIs another process using the image [/tmp/disk.img]?';
  await withEnv({ FAKE_QEMU_MODE: "die-at-boot", FAKE_QEMU_STDERR: stderr }, () =>
    assert.rejects(m.start("locked"), (e: unknown) => e instanceof MvmError && e.code === "DISK_IN_USE" && /\/tmp\/disk\.img/.test(e.message)),
  );
  assert.equal(m.get("locked").state, "crashed");
  assert.deepEqual(h.pids(), []);
});

test("a boot that never gets ready times out: crashed, QEMU killed, the console kept in the error", T, async (t) => {
  // Long enough for the fake to have printed its boot lines on a loaded host (Node starts in ~0.1-1 s).
  const { h, m } = setup(t, { readyTimeoutMs: 2000 });
  await m.create({ name: "silent", append: "fake_qemu.mode=no-hello" });
  const err = await m.start("silent").then(() => assert.fail("started"), (e: unknown) => e);
  assert.ok(err instanceof MvmError);
  assert.equal(err.code, "TIMEOUT");
  assert.match(err.message, /did not become ready within 2000 ms/);
  assert.match(String(err.details.consoleTail), /mvm-init: started/);
  const rec = m.get("silent");
  assert.equal(rec.state, "crashed");
  assert.match(rec.lastExit?.reason ?? "", /^boot failed: .*within 2000 ms/);
  assert.deepEqual(h.pids(), []);
});

test("a QEMU that hangs before connecting anything times out the same way", T, async (t) => {
  const { h, m } = setup(t, { readyTimeoutMs: 300 });
  await m.create({ name: "hung", append: "fake_qemu.mode=hang" });
  await assert.rejects(m.start("hung"), { code: "TIMEOUT" });
  assert.equal(m.get("hung").state, "crashed");
  assert.deepEqual(h.pids(), []);
});

test("a console-line readiness needs no agent", T, async (t) => {
  const { m } = setup(t, { readyTimeoutMs: 2000 });
  await m.create({ name: "own-initrd", append: "fake_qemu.mode=no-hello", ready: { consoleLine: "^mvm-init: started$" } });
  assert.equal((await m.start("own-initrd")).state, "running");
  assert.throws(() => m.agentFor("own-initrd"), /agent of VM own-initrd is not connected/);
  // No agent to ask: the ladder goes on to QMP quit.
  assert.equal((await m.stop("own-initrd")).state, "stopped");
});

test("a QEMU crash after ready → crashed, with QEMU's last words", T, async (t) => {
  const { h, m } = setup(t);
  const { id } = await m.create({ name: "crash", append: "fake_qemu.mode=crash-after-ready" });
  assert.equal((await m.start("crash")).state, "running");
  await waitFor(() => m.get(id).state !== "running", "the crash to be recorded");
  const rec = m.get(id);
  assert.equal(rec.state, "crashed");
  assert.equal(rec.pid, undefined);
  assert.match(rec.lastExit?.reason ?? "", /^QEMU ended unasked \(status 1\): .*fake: crashing/);
  assert.deepEqual(h.pids(), []);
});

test("a QEMU killed from outside → crashed, killed by SIGKILL", T, async (t) => {
  const { m } = setup(t);
  const { id } = await m.create({ name: "shot" });
  const { pid } = await m.start("shot");
  process.kill(pid!, "SIGKILL");
  await waitFor(() => m.get(id).state === "crashed", "the crash to be recorded");
  assert.match(m.get(id).lastExit?.reason ?? "", /killed by SIGKILL/);
});

test("wrong-state calls fail with a state error naming both states", T, async (t) => {
  const { m } = setup(t);
  await m.create({ name: "w" });
  await assert.rejects(m.stop("w"), isWrongState("created", "running", "paused"));
  await assert.rejects(m.pause("w"), isWrongState("created", "running"));
  await assert.rejects(m.resume("w"), isWrongState("created", "paused"));
  await assert.rejects(m.kill("w"), isWrongState("created", "starting"));
  assert.throws(() => m.agentFor("w"), isWrongState("created", "running"));
  await m.start("w");
  await assert.rejects(m.start("w"), isWrongState("running", "created", "stopped", "crashed"));
  await assert.rejects(m.resume("w"), isWrongState("running", "paused"));
  await assert.rejects(m.remove("w"), (e: unknown) => isWrongState("running", "created")(e) && /rm -f w/.test((e as MvmError).hint ?? ""));
  await m.pause("w");
  assert.throws(() => m.agentFor("w"), (e: unknown) => isWrongState("paused", "running")(e) && /resume it first/.test((e as MvmError).hint ?? ""));
  await m.kill("w");
});

test("remove, remove by force, and prune", T, async (t) => {
  const { h, m } = setup(t);
  const a = await m.create({ name: "keep" });
  const b = await m.create({ name: "was-stopped" });
  const c = await m.create({ name: "was-crashed", append: "fake_qemu.mode=die-at-boot" });
  const d = await m.create({ name: "running" });
  await m.start("was-stopped");
  await m.stop("was-stopped");
  await m.start("was-crashed").catch(() => undefined);
  const { pid } = await m.start("running");
  assert.deepEqual((await m.prune()).sort(), ["was-crashed", "was-stopped"]);
  assert.deepEqual(m.list().map((r) => r.name).sort(), ["keep", "running"]);
  for (const gone of [b, c]) assert.ok(!existsSync(vmDir(h.home, gone.id)));
  await m.remove("keep");
  assert.throws(() => m.get("keep"), { code: "NOT_FOUND" });
  assert.ok(!existsSync(vmDir(h.home, a.id)));
  await m.remove("running", true);
  assert.throws(() => m.get("running"), { code: "NOT_FOUND" });
  assert.ok(!alive(pid!));
  assert.ok(!existsSync(vmDir(h.home, d.id)));
  assert.deepEqual(h.pids(), []);
});

test("kill while the VM boots: the boot is abandoned and its QEMU killed", T, async (t) => {
  const { h, m } = setup(t);
  const { id } = await m.create({ name: "slow", append: "fake_qemu.mode=no-hello" });
  const starting = m.start("slow").then(() => assert.fail("started"), (e: unknown) => e);
  await waitFor(() => m.get(id).pid !== undefined, "the record to name its QEMU");
  const pid = m.get(id).pid!;
  const rec = await m.kill("slow");
  assert.equal(rec.state, "stopped");
  assert.ok(!alive(pid), "kill returns once the booting QEMU is gone");
  assert.equal(((await starting) as MvmError).code, "ABORTED");
  assert.equal(m.get(id).state, "stopped");
  assert.ok(!m.connected(id));
  assert.deepEqual(h.pids(), []);
});

test("remove by force while the VM boots: no QEMU outlives its record", T, async (t) => {
  const { h, m } = setup(t);
  const { id } = await m.create({ name: "slow-rm", append: "fake_qemu.mode=no-hello" });
  const starting = m.start("slow-rm").catch((e: unknown) => e);
  await waitFor(() => m.get(id).pid !== undefined, "the record to name its QEMU");
  await m.remove("slow-rm", true);
  await starting;
  assert.throws(() => m.get(id), { code: "NOT_FOUND" });
  assert.ok(!existsSync(vmDir(h.home, id)));
  assert.deepEqual(h.pids(), []);
});
