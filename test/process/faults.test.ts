// Faults, against the fake QEMU: nothing lost, nothing leaked (issue 12).
//   - a daemon killed with SIGKILL while 10 VMs start and 10 run: the next daemon puts every record right,
//     starts nothing twice, reaps what no record knows, and leaves no socket behind;
//   - SQLite: WAL, a writer killed mid-transaction, concurrent writers, and one daemon per home (a real
//     daemon, src/daemon/main.ts, started many at once);
//   - the host's disk full under $MVM_HOME (a small tmpfs; root only) while creating a VM and importing an
//     image: a clear error, nothing half-registered, a running VM unharmed.
// Snapshots on a full disk need a real QEMU: test/integration/faults.test.ts.

import assert from "node:assert/strict";
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statfsSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { test, type TestContext } from "node:test";
import { cgroupDirs, fillDisk } from "../support/host-state.js";
import { fileURLToPath } from "node:url";
import Database from "better-sqlite3";
import { connect } from "../../src/client/client.js";
import { VmStore } from "../../src/store/vm-store.js";
import { findLabelledQemus } from "../../src/vm/orphans.js";
import { isLive } from "../../src/vm/state.js";
import { FAKE_QEMU, FakeHome, alive, fakeQemuPids, waitFor } from "./harness.js";

const root = process.getuid?.() === 0;

function home(t: TestContext): FakeHome {
  const h = new FakeHome();
  t.after(() => h.close());
  return h;
}

/** A record as a child daemon returned it (JSON). */
type Rec = { id: string; name: string; pid?: number; state: string };

const sockets = (dir: string) => (existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith(".sock")) : []);

test("daemon SIGKILLed while 10 VMs start and 10 run: every record right, nothing started twice, no orphan, no stray socket", { timeout: 60_000 }, async (t) => {
  const h = home(t);
  const store = new VmStore(join(h.home, "mvm.db"));
  t.after(() => store.close());
  const first = await h.childDaemon({ readyTimeoutMs: 60_000 });
  const running = Array.from({ length: 10 }, (_, i) => `run-${i}`);
  const booting = Array.from({ length: 10 }, (_, i) => `boot-${i}`);
  for (const name of running) await first.call("create", { name });
  // Their fake QEMUs never say hello: they are still starting when the daemon dies.
  for (const name of booting) await first.call("create", { name, append: "fake_qemu.mode=no-hello" });
  const started = (await Promise.all(running.map((n) => first.call("start", n)))) as Rec[];
  for (const name of booting) void first.call("start", name).catch(() => undefined);
  await waitFor(() => booting.every((n) => store.get(n).pid !== undefined && store.get(n).state === "starting"), "the booting VMs' records to name their QEMUs", 20_000);
  await first.call("pause", "run-0");
  await first.call("pause", "run-1");
  const before = new Map([...running, ...booting].map((n) => [n, store.get(n)]));
  await first.kill();

  // While no daemon runs: two running QEMUs and two booting ones die, one stop had been begun, and two
  // QEMUs with this home's label appear that no record knows (a parked QEMU of a killed daemon, say).
  for (const n of ["run-8", "run-9", "boot-8", "boot-9"]) process.kill(before.get(n)!.pid!, "SIGKILL");
  store.transition(before.get("run-7")!.id, ["running"], "stopping");
  const orphans = [h.spawnFake(randomBytes(6).toString("hex")), h.spawnFake(randomBytes(6).toString("hex"))];
  await Promise.all(orphans.map((o) => once(o, "spawn")));
  await waitFor(() => ["run-8", "run-9", "boot-8", "boot-9"].every((n) => !alive(before.get(n)!.pid!)), "the killed QEMUs to go");
  await waitFor(() => findLabelledQemus(h.home).length === 16 + orphans.length, "the orphans to run");
  const labelledBefore = findLabelledQemus(h.home).length;

  const next = await h.childDaemon({ readyTimeoutMs: 60_000 });
  await next.call("reconcile");
  const want: Record<string, [string, RegExp?]> = {
    "run-0": ["paused"], "run-1": ["paused"],
    "run-2": ["running"], "run-3": ["running"], "run-4": ["running"], "run-5": ["running"], "run-6": ["running"],
    "run-7": ["stopped"],
    "run-8": ["crashed", /ended while the daemon was away/], "run-9": ["crashed", /ended while the daemon was away/],
    "boot-8": ["crashed", /booting, and its QEMU ended meanwhile/], "boot-9": ["crashed", /booting, and its QEMU ended meanwhile/],
  };
  for (let i = 0; i < 8; i++) want[`boot-${i}`] = ["crashed", /while the VM was booting; its QEMU was killed/];
  // The stop the dead daemon began is finished by the next one, in the background.
  await waitFor(() => store.get("run-7").state === "stopped", "run-7's stop to be finished", 15_000);
  const recovered: string[] = [];
  for (const [name, [state, reason]] of Object.entries(want)) {
    const rec = store.get(name);
    assert.equal(rec.state, state, `${name}: ${rec.lastExit?.reason ?? ""}`);
    if (reason) assert.match(rec.lastExit?.reason ?? "", reason, name);
    if (isLive(rec.state)) assert.equal(rec.pid, before.get(name)!.pid, `${name} is adopted: the same QEMU, not a new one`);
    else assert.equal(rec.pid, undefined, name);
    recovered.push(name);
  }
  assert.equal(recovered.length, 20);
  // No orphan: the QEMUs of this home are exactly those the live records name, one per VM.
  await waitFor(() => findLabelledQemus(h.home).length === 7, "only the adopted QEMUs to run", 10_000);
  const live = store.list().filter((r) => isLive(r.state));
  assert.deepEqual(findLabelledQemus(h.home).map((q) => q.pid).sort(), live.map((r) => r.pid!).sort());
  assert.deepEqual(fakeQemuPids(h.home).sort(), live.map((r) => r.pid!).sort(), "no fake QEMU of this home runs unrecorded");
  for (const o of orphans) assert.ok(!alive(o.pid!), `orphan ${o.pid} reaped`);
  // No stray socket: a VM whose QEMU is gone keeps its logs, not the dead daemon's listening sockets.
  for (const r of store.list()) {
    const dir = join(h.home, "vms", r.id);
    if (isLive(r.state)) assert.deepEqual(sockets(dir).sort(), ["agent.sock", "console.sock", "qmp.sock"], r.name);
    else assert.deepEqual(sockets(dir), [], `${r.name} (${r.state}) left sockets`);
  }
  assert.deepEqual(readdirSync(join(h.home, "vms")).sort(), store.list().map((r) => r.id).sort(), "no directory no record owns");
  // Adopted VMs are connected to the new daemon; ended ones start again, once each.
  for (const name of ["run-0", "run-2", "run-6"]) assert.equal(await next.call("connected", store.get(name).id), true, name);
  const restarted = (await Promise.all(["run-8", "run-9", "run-7"].map((n) => next.call("start", n)))) as Rec[];
  assert.equal(new Set(restarted.map((r) => r.pid)).size, 3);
  await waitFor(() => findLabelledQemus(h.home).length === 10, "one QEMU per running VM", 10_000);
  t.diagnostic(`records recovered: ${recovered.length} (of ${started.length} running: 5 adopted running, 2 adopted paused, 1 stop finished, 2 crashed; of 10 starting: 10 crashed); labelled QEMUs before the restart: ${labelledBefore}, reaped as orphans: ${orphans.length}, killed mid-boot: 8`);
  for (const r of store.list()) if (isLive(r.state)) await next.call("kill", r.name);
  await next.kill();
});


test("with the jail: the control groups of QEMUs that died while no daemon ran, or that the next daemon killed mid-boot, go at restart; an adopted one's when it ends", { timeout: 60_000, skip: !root && "the jail needs a root daemon" }, async (t) => {
  const h = home(t);
  const store = new VmStore(join(h.home, "mvm.db"));
  t.after(() => store.close());
  const first = await h.childDaemon({ jail: true, readyTimeoutMs: 60_000 });
  for (const name of ["died", "adopted", "kept"]) {
    await first.call("create", { name });
    await first.call("start", name);
  }
  await first.call("create", { name: "booting", append: "fake_qemu.mode=no-hello" });
  void first.call("start", "booting").catch(() => undefined);
  // The recorded pid is the jail's shell until it has joined the group and exec'd QEMU.
  const inGroup = (n: string) => store.get(n).pid !== undefined && cgroupDirs(store.get(n).pid!).length > 0;
  await waitFor(() => inGroup("booting"), "the booting VM's QEMU in its group", 20_000).catch(() => undefined);
  const groups = new Map(["died", "adopted", "kept", "booting"].map((n) => [n, cgroupDirs(store.get(n).pid!)]));
  if ([...groups.values()].some((g) => g.length === 0)) {
    for (const n of groups.keys()) await first.call("kill", n).catch(() => undefined);
    return t.skip(`no control groups on this host: ${JSON.stringify([...groups])}`);
  }
  await first.kill();
  const died = store.get("died").pid!;
  process.kill(died, "SIGKILL");
  await waitFor(() => !alive(died), "the QEMU to die");
  assert.ok(groups.get("died")!.every(existsSync), "nobody removed its group while no daemon ran");

  const next = await h.childDaemon({ jail: true });
  await next.call("reconcile");
  assert.equal(store.get("died").state, "crashed");
  assert.equal(store.get("booting").state, "crashed");
  assert.equal(store.get("adopted").state, "running");
  const left = (n: string) => groups.get(n)!.filter(existsSync);
  await waitFor(() => left("died").length === 0 && left("booting").length === 0, `the ended VMs' groups to go (left: ${[...left("died"), ...left("booting")].join(", ")})`, 10_000).catch((e: Error) => assert.fail(`${e.message}: ${[...left("died"), ...left("booting")].join(", ")}`));
  assert.deepEqual(left("adopted"), groups.get("adopted"), "a running VM keeps its group");
  await next.call("kill", "adopted");
  await waitFor(() => left("adopted").length === 0, "the adopted VM's group to go when it ends", 10_000).catch(() => assert.fail(`left: ${left("adopted").join(", ")}`));
  assert.deepEqual(left("kept"), groups.get("kept"));
  await next.call("kill", "kept");
  await next.kill();
});

// --- SQLite -----------------------------------------------------------------------------------------------

const SQLITE_CHILD = fileURLToPath(new URL("./sqlite-child.js", import.meta.url));

function child(t: TestContext, args: string[]): { proc: ChildProcess; lines: AsyncIterator<string> } {
  const proc = spawn(process.execPath, [SQLITE_CHILD, ...args], { stdio: ["ignore", "pipe", "inherit"] });
  t.after(() => void (proc.exitCode === null && proc.signalCode === null && proc.kill("SIGKILL")));
  return { proc, lines: createInterface({ input: proc.stdout })[Symbol.asyncIterator]() };
}

const nextLine = async (c: { lines: AsyncIterator<string> }) => (await c.lines.next()).value as string;

test("SQLite: the database is in WAL mode, and a writer killed mid-transaction loses only that transaction", { timeout: 30_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "mvm-sqlite-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const db = join(dir, "mvm.db");
  const c = child(t, ["mid-transaction", db, "50"]);
  assert.equal(await nextLine(c), "in-transaction");
  assert.ok(readFileSync(`${db}-wal`).length > 1024 * 1024, "the open transaction's pages are in the WAL");
  c.proc.kill("SIGKILL");
  await once(c.proc, "exit");
  const store = new VmStore(db); // what the next daemon does
  const raw = new Database(db);
  t.after(() => {
    store.close();
    raw.close();
  });
  assert.equal(raw.pragma("journal_mode", { simple: true }), "wal");
  assert.equal(raw.pragma("integrity_check", { simple: true }), "ok");
  const names = store.list().map((r) => r.name);
  assert.deepEqual(names, Array.from({ length: 50 }, (_, i) => `committed-${i}`), "every committed record, none of the open transaction's");
  assert.ok(store.list().every((r) => r.state === "created"));
  t.diagnostic(`after SIGKILL mid-transaction (3000 rows spilled into a ${(readFileSync(`${db}-wal`).length / 1048576).toFixed(1)} MiB WAL): ${names.length} of 50 committed records, integrity ok`);
});

test("SQLite: concurrent writers queue (busy_timeout) instead of failing", { timeout: 60_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "mvm-sqlite-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const db = join(dir, "mvm.db");
  new VmStore(db).close();
  const store = new VmStore(db);
  t.after(() => store.close());
  const busy = (store as unknown as { db: Database.Database }).db.pragma("busy_timeout", { simple: true });
  assert.equal(busy, 5000);
  // One writer holds a write transaction for 1.5 s; three others (processes) write 100 records each meanwhile.
  const holder = child(t, ["hold", db, "1500"]);
  assert.equal(await nextLine(holder), "holding");
  const t0 = Date.now();
  const writers = ["a", "b", "c"].map((p) => child(t, ["writer", db, p, "100"]));
  const said = await Promise.all(writers.map((w) => nextLine(w)));
  const waited = Date.now() - t0;
  assert.deepEqual(said, ["done 100", "done 100", "done 100"]);
  assert.equal(await nextLine(holder), "committed");
  const recs = store.list();
  assert.equal(recs.length, 300);
  assert.ok(recs.every((r) => r.state === "stopped" && r.pid === undefined));
  assert.ok(waited >= 1400, `the writers waited for the holder (${waited} ms)`);
  t.diagnostic(`3 writer processes × 100 records × 6 statements beside a 1.5 s write transaction: 300 records, 0 failures, done in ${waited} ms`);
});

// --- one daemon per home (a real daemon, with the fake QEMU) ----------------------------------------------

const DAEMON = fileURLToPath(new URL("../../src/daemon/main.js", import.meta.url));

interface Started {
  proc: ChildProcess;
  /** "ready", or the error line and the exit status. */
  outcome: Promise<{ ready: boolean; line: string; code: number | null }>;
}

function spawnDaemon(t: TestContext, home: string, env: NodeJS.ProcessEnv = {}): Started {
  const proc = spawn(process.execPath, [DAEMON], {
    env: { ...process.env, MVM_HOME: home, MVM_QEMU: FAKE_QEMU, MVM_QEMU_MICROVM: "/nonexistent", MVM_JAIL: "0", MVM_TEMPLATES: "0", MVM_POOL_SIZE: "0", ...env },
    stdio: ["ignore", "pipe", "pipe"],
    detached: true,
  });
  t.after(() => void (proc.exitCode === null && proc.signalCode === null && proc.kill("SIGKILL")));
  let out = "";
  let err = "";
  proc.stderr.on("data", (b: Buffer) => (err += b.toString()));
  const outcome = new Promise<{ ready: boolean; line: string; code: number | null }>((resolve) => {
    proc.stdout.on("data", (b: Buffer) => {
      out += b.toString();
      if (out.includes("ready\n")) resolve({ ready: true, line: "ready", code: null });
    });
    proc.once("exit", (code) => resolve({ ready: false, line: out.split("\n").find((l) => l.startsWith("error ")) ?? `(nothing; stderr: ${err.slice(-500)})`, code }));
  });
  return { proc, outcome };
}

test("two daemons never run on one home: started 3 at a time, one serves, the others name it and exit 1; a SIGKILLed one's lock is free", { timeout: 120_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "mvm-lock-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const cache = join(dir, "cache");
  let refused = 0;
  for (let round = 0; round < 6; round++) {
    // Rounds after the first start where a daemon was killed with -9: its pid file, lock file and socket are left.
    const ds = [0, 1, 2].map(() => spawnDaemon(t, dir, { MVM_CACHE: cache }));
    const outcomes = await Promise.all(ds.map((d) => d.outcome));
    const winners = ds.filter((_, i) => outcomes[i]!.ready);
    assert.equal(winners.length, 1, `round ${round}: exactly one daemon serves: ${JSON.stringify(outcomes)}`);
    const winner = winners[0]!.proc.pid!;
    for (const o of outcomes.filter((o) => !o.ready)) {
      assert.equal(o.code, 1, "the second daemon exits non-zero");
      const body = JSON.parse(o.line.slice("error ".length)) as { error: string; message: string; hint: string; details: { pid?: number } };
      assert.equal(body.error, "DAEMON_ALREADY_RUNNING");
      assert.match(body.message, new RegExp(`already running for this home .*pid ${winner}\\b`));
      assert.equal(body.details.pid, winner);
      assert.ok(body.hint);
      refused++;
    }
    const c = await connect({ home: dir, autoStart: false });
    assert.equal((await c.info()).pid, winner, "the first daemon is untouched and still serves");
    assert.equal(Number(readFileSync(join(dir, "daemon.pid"), "utf8")), winner);
    if (round % 2 === 0) {
      process.kill(winner, "SIGKILL");
    } else {
      process.kill(winner, "SIGTERM");
    }
    await once(winners[0]!.proc, "exit");
  }
  t.diagnostic(`6 rounds of 3 daemons started at once (3 after a SIGKILL): 6 served, ${refused} refused naming the first's pid`);
});

test("a daemon.pid naming a live process that is no daemon (a pid reused after a reboot) does not block the start", { timeout: 30_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "mvm-lock-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  // As a daemon killed by a host reboot leaves it: its pid now belongs to another process (here, this one).
  writeFileSync(join(dir, "daemon.pid"), String(process.pid));
  const d = spawnDaemon(t, dir, { MVM_CACHE: join(dir, "cache") });
  const o = await d.outcome;
  assert.equal(o.ready, true, o.line);
  assert.equal(Number(readFileSync(join(dir, "daemon.pid"), "utf8")), d.proc.pid);
  d.proc.kill("SIGTERM");
  await once(d.proc, "exit");
});

test("a daemon does not steal the socket of one that serves it without the lock (an older mvm)", { timeout: 30_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "mvm-lock-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const { createServer } = await import("node:net");
  const other = createServer().listen(join(dir, "mvm.sock"));
  await once(other, "listening");
  t.after(() => other.close());
  writeFileSync(join(dir, "daemon.pid"), String(process.pid));
  const o = await spawnDaemon(t, dir, { MVM_CACHE: join(dir, "cache") }).outcome;
  assert.equal(o.ready, false);
  assert.match(o.line, /DAEMON_ALREADY_RUNNING.*serves .*mvm\.sock \(pid \d+\) without holding the home's lock/);
  assert.ok(existsSync(join(dir, "mvm.sock")));
});

// --- the host's disk full ---------------------------------------------------------------------------------

/** A size-limited $MVM_HOME: a tmpfs mounted for the test, unmounted after it. */
function smallHome(t: TestContext, size = "64m"): string {
  const dir = mkdtempSync(join(tmpdir(), "mvm-full-"));
  execFileSync("mount", ["-t", "tmpfs", "-o", `size=${size},mode=0700`, "tmpfs", dir]);
  t.after(() => {
    execFileSync("umount", ["-l", dir]);
    rmSync(dir, { recursive: true, force: true });
  });
  return dir;
}


type ErrorLike = Error & { code?: string; hint?: string; details?: Record<string, unknown> };

test("the host's disk full under $MVM_HOME: creating a VM and importing an image fail clearly, register nothing, and a running VM runs on", { timeout: 90_000, skip: !root && "mounting a size-limited tmpfs as $MVM_HOME needs root" }, async (t) => {
  const home = smallHome(t);
  t.after(() => {
    const survivors = fakeQemuPids(home);
    survivors.forEach((p) => process.kill(p, "SIGKILL"));
    assert.deepEqual(survivors, [], "fake QEMUs survived the test");
  });
  const d = spawnDaemon(t, home);
  assert.deepEqual(await d.outcome, { ready: true, line: "ready", code: null });
  t.after(async () => {
    if (d.proc.exitCode !== null) return;
    d.proc.kill("SIGTERM");
    await once(d.proc, "exit");
  });
  const c = await connect({ home, autoStart: false });
  const work = mkdtempSync(join(tmpdir(), "mvm-full-src-"));
  t.after(() => rmSync(work, { recursive: true, force: true }));
  const ext4 = join(work, "root.ext4");
  execFileSync("mkfs.ext4", ["-q", "-F", "-L", "mvm-root", ext4, "16M"]);
  await c.importImage(ext4, "base");
  const keeper = await c.start((await c.create({ name: "keeper" })).id);
  assert.equal(keeper.state, "running");
  const filler = fillDisk(home);
  const freeBytes = () => statfsSync(home).bavail * statfsSync(home).bsize;
  assert.ok(freeBytes() < 4096, "the home is full");
  const dirsBefore = readdirSync(join(home, "vms")).sort();
  const imagesBefore = readdirSync(join(home, "images")).sort();

  const said: string[] = [];
  const clear = (what: string) => (e: ErrorLike) => {
    said.push(`${what}: ${e.code} ${e.message}`);
    assert.equal(e.code, "HOST_DISK_FULL", `${what}: ${e.code} ${e.message}`);
    assert.match(e.message, /no space left/i, what);
    assert.match(e.hint ?? "", /free space/i, what);
    return true;
  };
  // Full to the last byte: the database cannot take the record.
  await assert.rejects(c.create({ name: "overlay-vm", image: "base" }), clear("create, the record"));
  await assert.rejects(c.importImage(ext4, "second"), clear("image import, full"));
  // Room for the record but not for the VM's disk overlay (qemu-img create): the record goes again.
  filler.shrink(128 * 1024);
  await assert.rejects(c.create({ name: "overlay-vm", image: "base" }), clear("create, the overlay"));
  await assert.rejects(c.importImage(ext4, "second"), clear("image import, 128 KiB free"));
  assert.match(said[2]!, /qemu-img failed/, "the overlay, not the record, is what did not fit");
  t.diagnostic(said.join("\n"));
  assert.deepEqual((await c.list()).map((v) => v.name), ["keeper"], "no VM record half-made");
  assert.deepEqual((await c.images()).map((i) => i.name), ["base"], "no image record half-made");
  assert.deepEqual(readdirSync(join(home, "vms")).sort(), dirsBefore, "no VM directory left");
  assert.deepEqual(readdirSync(join(home, "images")).sort(), imagesBefore, "no image file or temporary folder left");
  let out = "";
  assert.equal((await c.exec("keeper", ["echo", "still here"], { onStdout: (b) => (out += b.toString()) })).status, 0);
  assert.equal(out, "still here\n");
  assert.equal((await c.get("keeper")).state, "running");

  filler.free();
  // Nothing was left to get in the way: the same names work once there is room.
  assert.equal((await c.create({ name: "overlay-vm", image: "base" })).state, "created");
  assert.equal((await c.importImage(ext4, "second")).name, "second");
  await c.kill("keeper");
});
