// Commands beyond the basic exec: background commands with handles, ptys, big binary output, and the
// failures around them (a vanished client, a crashed agent, wrong VM states). Real TCG guests.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { execFileSync } from "node:child_process";
import { test } from "node:test";
import { connect } from "../../src/client/client.js";
import type { MvmError } from "../../src/errors.js";
import { killDaemon, startTestDaemon, type TestDaemon } from "../support/daemon.js";

const code = (e: unknown) => (e as MvmError).code;

async function runningVm(d: TestDaemon, name: string, memory = "256M") {
  await d.client.start((await d.client.create({ name, memory })).id);
}

/** Runs a command and returns its stdout (asserting it succeeded). */
async function sh(d: TestDaemon, vm: string, script: string): Promise<string> {
  let out = "";
  const r = await d.client.exec(vm, ["sh", "-c", script], { onStdout: (b) => (out += b.toString()) });
  assert.equal(r.status, 0, `${script} failed with ${r.status}`);
  return out;
}

test("background commands outlive their client: list, re-attach from the start, stdin, signals, wait, remove", { timeout: 300_000 }, async (t) => {
  const d = await startTestDaemon(t);
  await runningVm(d, "bg");
  const cmd = await d.client.spawn("bg", ["sh", "-c", "echo started; echo to-err >&2; read line; echo got:$line; read rest; exit 7"], { stdin: true });

  // A different client (as after the first one went away) finds it and reads its output from the start.
  const other = await connect({ home: d.home });
  const listed = await other.sessions("bg");
  assert.deepEqual(listed.map((s) => [s.id, s.state, s.background]), [[cmd.id, "running", true]]);
  const again = other.command("bg", cmd.id);
  await again.write("hello\n");
  // stdout and stderr are two pipes: their order relative to each other is not kept, each one's is.
  const seen = { stdout: "", stderr: "" };
  const reader = (async () => {
    for await (const c of again.output()) {
      seen[c.stream] += c.data.toString();
      if (c.data.toString().includes("got:hello")) await again.closeStdin();
    }
  })();
  await reader;
  assert.deepEqual(seen, { stdout: "started\ngot:hello\n", stderr: "to-err\n" });
  const r = await cmd.wait();
  assert.equal(r.status, 7);
  assert.ok(r.durationMs > 0);
  await assert.rejects(cmd.wait({ check: true }), (e) => code(e) === "COMMAND_FAILED" && /status 7/.test((e as Error).message));
  // Ended, it stays listed with its result until removed; its output can still be read.
  assert.equal((await d.client.sessions("bg"))[0]?.state, "exited");
  let replay = "";
  for await (const chunk of cmd.stdout()) replay += chunk.toString();
  assert.equal(replay, "started\ngot:hello\n");
  await cmd.remove();
  assert.deepEqual(await d.client.sessions("bg"), []);
  await assert.rejects(cmd.info(), (e) => code(e) === "NOT_FOUND");

  // Signals, timeouts and the CLI.
  const sleeper = await d.client.spawn("bg", ["sleep", "300"]);
  await sleeper.kill(15);
  assert.equal((await sleeper.wait()).status, 143);
  const timed = await d.client.spawn("bg", ["sleep", "300"], { timeoutMs: 500 });
  await assert.rejects(timed.wait({ check: true }), (e) => code(e) === "COMMAND_TIMED_OUT");
  const started = await d.cli(["exec", "-d", "bg", "--", "sh", "-c", "sleep 0.3; echo cli-bg; exit 3"]);
  assert.equal(started.code, 0, started.stderr);
  const id = started.stdout.trim();
  assert.match((await d.cli(["session", "ls", "bg"])).stdout, new RegExp(`^${id}\\s+\\d+\\s+(running|exited 3)\\s`, "m"));
  const attached = await d.cli(["session", "attach", "bg", id]);
  assert.deepEqual([attached.code, attached.stdout], [3, "cli-bg\n"]);
  assert.equal((await d.cli(["session", "wait", "bg", id])).stdout, "3\n");
  const long = (await d.cli(["exec", "-d", "bg", "--", "sleep", "300"])).stdout.trim();
  assert.equal((await d.cli(["session", "kill", "-s", "KILL", "bg", long])).code, 0);
  assert.equal((await d.cli(["session", "wait", "bg", long])).stdout, "137\n");
  assert.equal((await d.cli(["session", "kill", "-s", "NOPE", "bg", long])).code, 125);
  assert.equal((await d.cli(["session", "rm", "bg", id, long])).code, 0);
  assert.equal((await d.cli(["session", "attach", "bg", id])).code, 125);

  // The VM going away ends its background commands with an error that says so.
  const orphan = await d.client.spawn("bg", ["sleep", "300"]);
  await d.client.kill("bg");
  await assert.rejects(orphan.wait(), (e) => code(e) === "VM_GONE");
});

test("pty: exec -t gets a terminal of the asked size, resizes reach it; mvm exec -it and run -it in a real terminal", { timeout: 300_000 }, async (t) => {
  const d = await startTestDaemon(t);
  await runningVm(d, "tty");
  let out = "";
  const s = await d.client.execStream("tty", ["sh", "-c", "tty; stty size; read x; echo got:$x; stty size; echo $TERM"], {
    tty: { rows: 33, cols: 101 },
    onStdout: (b) => (out += b.toString()),
  });
  const waitFor = async (text: string) => {
    for (let i = 0; i < 300 && !out.includes(text); i++) await new Promise((r) => setTimeout(r, 50));
    assert.ok(out.includes(text), `no ${JSON.stringify(text)} in ${JSON.stringify(out)}`);
  };
  await waitFor("33 101");
  s.resize(50, 120);
  s.write("typed\r");
  assert.equal((await s.result).status, 0);
  assert.match(out, /^\/dev\/pts\/\d+\r\n33 101\r\ntyped\r\ngot:typed\r\n50 120\r\nxterm-256color\r\n$/);

  // The CLI in tmux: a shell on a terminal, its size from the window, Ctrl-C reaching the guest's tty.
  const session = `mvm-tty-${process.pid}`;
  const cli = new URL("../../src/cli/main.js", import.meta.url).pathname;
  execFileSync("tmux", ["new-session", "-d", "-s", session, "-x", "90", "-y", "25", "-e", `MVM_HOME=${d.home}`, `${process.execPath} ${cli} exec -it tty -- sh; echo cli-exit=$?; sleep 30`]);
  t.after(() => execFileSync("tmux", ["kill-session", "-t", session]));
  const pane = () => execFileSync("tmux", ["capture-pane", "-p", "-t", session]).toString();
  const waitPane = async (text: RegExp) => {
    for (let i = 0; i < 300 && !text.test(pane()); i++) await new Promise((r) => setTimeout(r, 50));
    assert.match(pane(), text);
  };
  await waitPane(/\/ #$/m);
  execFileSync("tmux", ["send-keys", "-t", session, "stty size; sleep 100", "Enter"]);
  await waitPane(/^25 90$/m);
  execFileSync("tmux", ["send-keys", "-t", session, "C-c"]);
  execFileSync("tmux", ["send-keys", "-t", session, "echo after-interrupt; exit 5", "Enter"]);
  await waitPane(/cli-exit=5/);
  assert.match(pane(), /after-interrupt/);

  // mvm run -it: a fresh VM with a shell on a terminal; its status is ours, --rm removes it.
  const runSession = `${session}-run`;
  execFileSync("tmux", ["new-session", "-d", "-s", runSession, "-x", "80", "-y", "20", "-e", `MVM_HOME=${d.home}`, `${process.execPath} ${cli} run --rm -it; echo run-exit=$?; sleep 30`]);
  t.after(() => execFileSync("tmux", ["kill-session", "-t", runSession]));
  const runPane = () => execFileSync("tmux", ["capture-pane", "-p", "-t", runSession]).toString();
  for (let i = 0; i < 400 && !/\/ #$/m.test(runPane()); i++) await new Promise((r) => setTimeout(r, 50));
  execFileSync("tmux", ["send-keys", "-t", runSession, "stty size; exit 3", "Enter"]);
  for (let i = 0; i < 400 && !/run-exit=/.test(runPane()); i++) await new Promise((r) => setTimeout(r, 50));
  assert.match(runPane(), /^20 80$/m);
  assert.match(runPane(), /run-exit=3/);
  assert.deepEqual((await d.client.list()).map((v) => v.name), ["tty"]);

  // mvm run -i (no terminal): Ctrl-C reaches the command, which may handle it; the VM is not killed for it.
  const intSession = `${session}-int`;
  const script = "trap 'echo got-int; exit 9' INT; echo armed; sleep 100 & wait";
  execFileSync("tmux", ["new-session", "-d", "-s", intSession, "-x", "80", "-y", "20", "-e", `MVM_HOME=${d.home}`, `${process.execPath} ${cli} run --rm -i -- sh -c "${script}"; echo int-exit=$?; sleep 30`]);
  t.after(() => execFileSync("tmux", ["kill-session", "-t", intSession]));
  const intPane = () => execFileSync("tmux", ["capture-pane", "-p", "-t", intSession]).toString();
  for (let i = 0; i < 400 && !/armed/.test(intPane()); i++) await new Promise((r) => setTimeout(r, 50));
  execFileSync("tmux", ["send-keys", "-t", intSession, "C-c"]);
  for (let i = 0; i < 400 && !/int-exit=/.test(intPane()); i++) await new Promise((r) => setTimeout(r, 50));
  assert.match(intPane(), /got-int/);
  assert.match(intPane(), /int-exit=9/);
});

test("exec: many MB of binary output arrive intact; a vanished client kills its command; a crashed agent fails only its commands", { timeout: 300_000 }, async (t) => {
  const d = await startTestDaemon(t);
  await runningVm(d, "out", "384M");
  await sh(d, "out", "dd if=/dev/urandom of=/root/r.bin bs=1M count=24 2>/dev/null");
  const chunks: Buffer[] = [];
  const r = await d.client.exec("out", ["cat", "/root/r.bin"], { onStdout: (b) => chunks.push(b) });
  assert.equal(r.status, 0);
  const got = Buffer.concat(chunks);
  assert.equal(got.length, 24 * 1024 * 1024);
  assert.deepEqual(got, await d.client.files("out").read("/root/r.bin"));
  const guestSum = (await sh(d, "out", "sha256sum /root/r.bin")).split(" ")[0];
  assert.equal(createHash("sha256").update(got).digest("hex"), guestSum);

  // A client that goes away mid-stream: its command is killed, nothing stays listed or running.
  const ac = new AbortController();
  const gone = d.client.exec("out", ["sh", "-c", "echo $$ > /root/victim; while :; do head -c 65536 /dev/zero; done"], { onStdout: () => ac.abort(), signal: ac.signal });
  await assert.rejects(gone);
  const victim = (await d.client.files("out").readText("/root/victim")).trim();
  for (let i = 0; i < 100 && (await d.client.sessions("out")).length > 0; i++) await new Promise((r) => setTimeout(r, 50));
  assert.deepEqual(await d.client.sessions("out"), []);
  assert.equal(await d.client.files("out").exists(`/proc/${victim}`), false, "the command was killed");

  // The agent killed under a running command: that command fails saying so; init restarts the agent and the VM goes on.
  const doomed = d.client.exec("out", ["sh", "-c", "sleep 0.3; kill -9 $PPID; sleep 30"]);
  await assert.rejects(doomed, (e) => code(e) === "AGENT_RESTARTED" && /restarted/.test((e as Error).message));
  let after = "";
  for (let i = 0; i < 50; i++) {
    try {
      after = await sh(d, "out", "echo still-here");
      break;
    } catch {
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  assert.equal(after, "still-here\n");
  assert.equal((await d.client.get("out")).state, "running");

  // Wrong states and missing commands.
  assert.equal((await d.client.exec("out", ["no-such-command"])).status, 127);
  await d.client.pause("out");
  await assert.rejects(d.client.exec("out", ["true"]), (e) => code(e) === "WRONG_STATE");
  await assert.rejects(d.client.spawn("out", ["true"]), (e) => code(e) === "WRONG_STATE");
  await d.client.resume("out");
  await d.client.stop("out");
  const stopped = await d.cli(["exec", "out", "--", "true"]);
  assert.equal(stopped.code, 125);
  assert.match(stopped.stderr, /it is stopped/);
});

test("daemon killed with -9: the next one adopts the commands it started, and the VM's own command still ends the VM", { timeout: 300_000 }, async (t) => {
  const d = await startTestDaemon(t);
  const waitFile = (f: string, code: number, say: string) => ["sh", "-c", `echo before; while [ ! -f ${f} ]; do sleep 0.1; done; echo ${say}; exit ${code}`];
  await d.client.start((await d.client.create({ name: "re", command: waitFile("/tmp/go", 6, "job-done") })).id);
  const bg = await d.client.spawn("re", waitFile("/tmp/more", 4, "after"));
  const sleeper = await d.client.spawn("re", ["sleep", "300"]);
  await sh(d, "re", "sleep 0.5"); // both have started and printed
  await killDaemon(d);
  const c = await d.restart();
  const listed = await c.sessions("re");
  assert.deepEqual(listed.map((s) => s.id).sort(), ["job", bg.id, sleeper.id].sort());
  assert.deepEqual(listed.find((s) => s.id === bg.id)?.argv, waitFile("/tmp/more", 4, "after"));
  // New commands get ids the adopted ones do not use.
  for (let i = 0; i < 4; i++) assert.equal((await c.exec("re", ["true"])).status, 0);
  const cmd = c.command("re", bg.id);
  await c.files("re").write("/tmp/more", "");
  let out = "";
  for await (const chunk of cmd.stdout()) out += chunk.toString();
  assert.equal(out, "after\n");
  assert.equal((await cmd.wait()).status, 4);
  await c.command("re", sleeper.id).kill(9);
  assert.equal((await c.command("re", sleeper.id).wait()).status, 137);
  await c.files("re").write("/tmp/go", "");
  const exit = await c.wait("re");
  assert.deepEqual([exit.commandExit?.status, exit.state], [6, "stopped"]);

  // The command ends while no daemon is there: the next one learns its status and powers the VM off.
  await c.start((await c.create({ name: "late", command: ["sh", "-c", "sleep 2; echo late-out; exit 5"] })).id);
  await killDaemon(d);
  await new Promise((r) => setTimeout(r, 3000));
  const c2 = await d.restart();
  const exit2 = await c2.wait("late");
  assert.deepEqual([exit2.commandExit?.status, exit2.state], [5, "stopped"]);
});

test("while no daemon is connected the agent goes on: timeouts are enforced and children reaped on time", { timeout: 180_000 }, async (t) => {
  const d = await startTestDaemon(t);
  await runningVm(d, "away");
  const a = await d.client.spawn("away", ["sleep", "300"], { timeoutMs: 1500 });
  const b = await d.client.spawn("away", ["sleep", "301"], { timeoutMs: 2500 });
  const [pa, pb] = [(await a.info()).pid, (await b.info()).pid];
  // A watcher notes (in guest uptime) when each is gone; a zombie the agent has not reaped still counts as there.
  const died = (pid: number | undefined, f: string) => `while kill -0 ${pid} 2>/dev/null; do sleep 0.05; done; cut -d' ' -f1 /proc/uptime > ${f}`;
  await d.client.spawn("away", ["sh", "-c", `${died(pa, "/root/a.died")}; ${died(pb, "/root/b.died")}`]);
  const t0 = Number((await sh(d, "away", "cut -d' ' -f1 /proc/uptime")).trim());
  await killDaemon(d);
  await new Promise((r) => setTimeout(r, 6000));
  const c = await d.restart();
  const gone = async (f: string) => Number((await c.files("away").readText(f)).trim()) - t0;
  assert.ok((await gone("/root/a.died")) < 3, "the first timeout was enforced while no daemon ran");
  assert.ok((await gone("/root/b.died")) < 4, "and the second: the agent did not block on the first one's exit");
  assert.equal((await c.exec("away", ["true"])).status, 0);
});
