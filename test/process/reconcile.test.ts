// A daemon restart against the fake QEMU: the next daemon (a fresh VmManager on the same home) adopts the
// QEMUs that still run, records the ones that ended, kills the one caught booting, and reaps the labelled
// QEMUs no record knows, leaving other homes' alone.

import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import { test, type TestContext } from "node:test";
import { reapOrphans } from "../../src/daemon/reconcile.js";
import { VmStore } from "../../src/store/vm-store.js";
import { join } from "node:path";
import { FakeHome, alive, waitFor } from "./harness.js";

const T = { timeout: 15000 };

function home(t: TestContext): FakeHome {
  const h = new FakeHome();
  t.after(() => h.close());
  return h;
}

/** A record as a child daemon returned it (JSON). */
type Rec = { id: string; pid?: number; state: string };

test("a running QEMU is adopted by the next daemon, which can then use and stop it", T, async (t) => {
  const h = home(t);
  const first = await h.childDaemon();
  const { id } = (await first.call("create", { name: "a" })) as Rec;
  const { pid } = (await first.call("start", "a")) as Rec;
  await first.kill();
  assert.ok(alive(pid!), "a daemon's death leaves its QEMU running");

  const next = h.manager();
  await next.reconcile();
  const rec = next.get("a");
  assert.equal(rec.state, "running");
  assert.equal(rec.pid, pid);
  assert.ok(next.connected(id));
  // The fake reconnected its agent channel: the new daemon's commands run.
  const r = await next.agentFor("a").agent.run(["echo", "again"]);
  assert.equal(r.stdout.toString(), "again\n");
  assert.equal((await next.pause("a")).state, "paused");
  assert.equal((await next.resume("a")).state, "running");
  const stopped = await next.stop("a");
  assert.equal(stopped.state, "stopped");
  assert.ok(!alive(pid!));
  assert.deepEqual(h.pids(), []);
});

test("a paused QEMU is adopted as paused (QMP query-status says so)", T, async (t) => {
  const h = home(t);
  const first = await h.childDaemon();
  await first.call("create", { name: "p" });
  await first.call("start", "p");
  await first.call("pause", "p");
  await first.kill();
  const next = h.manager();
  await next.reconcile();
  assert.equal(next.get("p").state, "paused");
  assert.equal((await next.resume("p")).state, "running");
  await next.kill("p");
});

test("the VM's own command, still running, is adopted: its end powers the VM off", T, async (t) => {
  const h = home(t);
  const first = await h.childDaemon();
  await first.call("create", { name: "job", command: ["sh", "-c", "sleep 0.5; exit 4"] });
  await first.call("start", "job");
  await first.kill();
  const next = h.manager();
  await next.reconcile();
  assert.equal(next.get("job").state, "running");
  const e = await next.wait("job");
  assert.equal(e.commandExit?.status, 4);
  assert.equal(e.state, "stopped");
});

test("the VM's own command that ended while no daemon was there still ends the VM, with its status", T, async (t) => {
  const h = home(t);
  const first = await h.childDaemon();
  await first.call("create", { name: "late", command: ["sh", "-c", "sleep 0.2; exit 5"] });
  await first.call("start", "late");
  await first.kill();
  // The command ends in the guest meanwhile; its EXIT waits for a host (the scenario of issue 10's hang).
  await new Promise((r) => setTimeout(r, 500));
  const next = h.manager();
  await next.reconcile();
  const e = await next.wait("late");
  assert.equal(e.commandExit?.status, 5);
  assert.equal(e.state, "stopped");
});

test("a record whose QEMU is gone becomes crashed; one caught stopping becomes stopped", T, async (t) => {
  const h = home(t);
  const first = await h.childDaemon();
  await first.call("create", { name: "gone" });
  await first.call("create", { name: "was-stopping" });
  const a = (await first.call("start", "gone")) as Rec;
  const b = (await first.call("start", "was-stopping")) as Rec;
  await first.kill();
  for (const pid of [a.pid!, b.pid!]) process.kill(pid, "SIGKILL");
  await waitFor(() => !alive(a.pid!) && !alive(b.pid!), "both QEMUs to die");
  // The dead daemon had begun to stop one of them.
  const store = new VmStore(join(h.home, "mvm.db"));
  store.transition(b.id, ["running"], "stopping");
  store.close();

  const next = h.manager();
  await next.reconcile();
  const gone = next.get("gone");
  assert.equal(gone.state, "crashed");
  assert.equal(gone.pid, undefined);
  assert.match(gone.lastExit?.reason ?? "", /ended while the daemon was away/);
  assert.equal(next.get("was-stopping").state, "stopped");
  assert.ok(!next.connected(gone.id));
});

test("a VM caught in starting has its QEMU killed and is crashed", T, async (t) => {
  const h = home(t);
  const first = await h.childDaemon();
  await first.call("create", { name: "booting", append: "fake_qemu.mode=no-hello" });
  void first.call("start", "booting").catch(() => undefined); // never ready: it boots until the daemon dies
  const store = new VmStore(join(h.home, "mvm.db"));
  t.after(() => store.close());
  await waitFor(() => store.get("booting").pid !== undefined, "the record to name its QEMU");
  const { pid } = store.get("booting");
  await first.kill();
  assert.ok(alive(pid!));

  const next = h.manager();
  await next.reconcile();
  const rec = next.get("booting");
  assert.equal(rec.state, "crashed");
  assert.match(rec.lastExit?.reason ?? "", /while the VM was booting; its QEMU was killed/);
  await waitFor(() => !alive(pid!), "the QEMU caught booting to be killed");
});

test("the reaper stops a labelled QEMU that no record knows, and leaves another home's alone", T, async (t) => {
  const h = home(t);
  const other = home(t);
  const m = h.manager();
  await m.create({ name: "known" });
  const { pid: knownPid } = await m.start("known");
  const orphan = h.spawnFake(randomBytes(6).toString("hex"));
  const foreign = other.spawnFake(randomBytes(6).toString("hex"));
  await Promise.all([once(orphan, "spawn"), once(foreign, "spawn")]);
  await waitFor(() => h.pids().length === 2 && other.pids().length === 1, "the fakes to run");

  const logs: string[] = [];
  const store = new VmStore(join(h.home, "mvm.db"));
  const reaped = reapOrphans({ store, home: h.home, log: (l) => logs.push(l) });
  store.close();
  assert.deepEqual(reaped.map((q) => q.pid), [orphan.pid]);
  assert.match(logs.join("\n"), /no VM record has that id/);
  await waitFor(() => !alive(orphan.pid!), "the orphan to be reaped");
  assert.ok(alive(foreign.pid!), "another home's QEMU is none of this daemon's business");
  assert.ok(alive(knownPid!), "a QEMU its record names is not an orphan");
  await m.kill("known");
  foreign.kill("SIGKILL");
  await waitFor(() => other.pids().length === 0, "the other home's fake to go");
});

test("a daemon's start-up reconcile reaps too", T, async (t) => {
  const h = home(t);
  const orphan = h.spawnFake(randomBytes(6).toString("hex"));
  await once(orphan, "spawn");
  await waitFor(() => h.pids().length === 1, "the fake to run");
  await h.manager().reconcile();
  await waitFor(() => !alive(orphan.pid!), "the orphan to be reaped");
  assert.match(h.logs.join("\n"), new RegExp(`reaping QEMU pid ${orphan.pid}`));
});

test("a suspend whose state was saved before the daemon died is finished: its QEMU goes, the VM is suspended", T, async (t) => {
  const h = home(t);
  const first = await h.childDaemon();
  const { id } = (await first.call("create", { name: "sus" })) as Rec;
  const { pid } = (await first.call("start", "sus")) as Rec;
  await first.kill();
  // The dead daemon had saved the state (the record names it) but not yet ended QEMU.
  const store = new VmStore(join(h.home, "mvm.db"));
  store.transition(id, ["running"], "stopping", { suspended: { stateFile: join(h.home, "vms", id, "suspend", "state"), qemuBuild: { sha256: "0".repeat(64), version: "7.2" }, savedAt: new Date().toISOString(), wasPaused: false, stateBytes: 1 } });
  store.close();
  const next = h.manager();
  await next.reconcile();
  const rec = next.get("sus");
  assert.equal(rec.state, "suspended");
  assert.match(rec.lastExit?.reason ?? "", /suspended/);
  await waitFor(() => !alive(pid!), "the suspended VM's QEMU to end");
  assert.ok(!next.connected(id));
});
