// The daemon, its API and the CLI, booting real guests under TCG.
import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { cgroupDirs } from "../support/host-state.js";
import { connect } from "../../src/client/client.js";
import { processStartTime } from "../../src/vm/qemu-process.js";
import { killDaemon, qemuPidsOf, startTestDaemon, waitGone } from "../support/daemon.js";

test("run: the command's output, streams apart, and its exit code; --rm leaves nothing", { timeout: 180_000 }, async (t) => {
  const d = await startTestDaemon(t);
  const ok = await d.cli(["run", "--rm", "--", "sh", "-c", "echo out; echo err >&2; uname -r"]);
  assert.equal(ok.code, 0, ok.stderr);
  assert.match(ok.stdout, /^out\n6\.1\.\d+-mvm\n$/);
  assert.equal(ok.stderr, "err\n");
  assert.equal((await d.cli(["run", "--rm", "--", "sh", "-c", "exit 3"])).code, 3);
  const missing = await d.cli(["run", "--rm", "--", "no-such-thing"]);
  assert.equal(missing.code, 127);
  assert.match(missing.stderr, /no-such-thing: No such file or directory/);
  assert.equal((await d.cli(["run", "--rm", "--", "sh", "-c", "kill -9 $$"])).code, 137);
  assert.deepEqual(await d.client.list(), []);
});

test("bad input is refused with a clear error and creates nothing", { timeout: 60_000 }, async (t) => {
  const d = await startTestDaemon(t);
  const cases: Array<[string[], RegExp]> = [
    [["run", "--memory", "-5", "--", "true"], /memory/],
    [["run", "--name", "Bad,Name", "--", "true"], /name/],
    [["run", "--cpus", "0", "--", "true"], /cpus/],
    [["run", "--kernel", "/etc/hostname", "--", "true"], /not a Linux kernel/],
    [["run", "--initrd", "/nonexistent", "--", "true"], /cannot read initrd/],
    [["run", "--accel", "warp", "--", "true"], /accel/],
  ];
  for (const [args, why] of cases) {
    const r = await d.cli(args);
    assert.equal(r.code, 125, args.join(" "));
    assert.match(r.stderr, why);
    assert.match(r.stderr, /hint|must|needs|expected/i);
  }
  const json = await d.cli(["run", "--json", "--memory", "huge", "--", "true"]);
  assert.equal((JSON.parse(json.stdout) as { error: string }).error, "INVALID_SIZE");
  assert.deepEqual(await d.client.list(), []);
});

test("lifecycle: every transition, and wrong-state calls name both states", { timeout: 180_000 }, async (t) => {
  const d = await startTestDaemon(t);
  const c = d.client;
  const vm = await c.create({ name: "life" });
  assert.equal(vm.state, "created");
  await assert.rejects(c.stop("life"), (e: Error & { code?: string }) => e.code === "WRONG_STATE" && /created/.test(e.message) && /running or paused/.test(e.message));
  const running = await c.start("life");
  assert.equal(running.state, "running");
  assert.ok(running.pid && running.argv?.some((a) => a.startsWith("microvm")) && running.timings?.helloMs);
  assert.equal((await c.pause("life")).state, "paused");
  await assert.rejects(c.exec("life", ["true"]), (e: Error & { code?: string }) => e.code === "WRONG_STATE" && /paused/.test(e.message));
  await assert.rejects(c.remove("life"), /stop it first|running|paused/);
  assert.equal((await c.resume("life")).state, "running");
  assert.equal((await c.exec("life", ["echo", "back"])).status, 0);
  const stopped = await c.stop("life");
  assert.equal(stopped.state, "stopped");
  assert.equal(stopped.lastExit?.reason, "stopped on request");
  assert.equal((await c.start("life")).state, "running");
  assert.equal((await c.kill("life")).state, "stopped");
  await c.remove("life");
  await assert.rejects(c.get("life"), (e: Error & { code?: string }) => e.code === "NOT_FOUND");
});

test("a VM with a command powers off when it ends; start runs it again; wait and logs", { timeout: 180_000 }, async (t) => {
  const d = await startTestDaemon(t);
  const c = d.client;
  await c.create({ name: "job", command: ["sh", "-c", "echo run at $(cat /proc/uptime | cut -d. -f1); exit 5"] });
  const first = await c.startAttached("job", () => {});
  assert.equal(first.commandExit?.status, 5);
  assert.equal(first.state, "stopped");
  await c.start("job");
  assert.equal((await c.wait("job")).commandExit?.status, 5);
  const logs = await d.cli(["logs", "job"]);
  assert.equal(logs.stdout.match(/run at/g)?.length, 2, logs.stdout);
  const consoleLog = await d.cli(["logs", "--console", "job"]);
  assert.match(consoleLog.stdout, /mvm-init: started/);
  const ps = await d.cli(["ps", "-a"]);
  // Columns are two or more spaces apart (a cell such as "tcg (no KVM)" holds single spaces).
  const [head = [], ...rows] = ps.stdout.trimEnd().split("\n").map((l) => l.trim().split(/\s{2,}/));
  const job = rows.find((r) => r[0] === "job");
  assert.ok(job, ps.stdout);
  assert.equal(job[head.indexOf("STATE")], "stopped", ps.stdout);
  assert.equal(job[head.indexOf("EXIT")], "5", ps.stdout);
});


async function until(cond: () => boolean, timeoutMs = 5000): Promise<boolean> {
  for (const end = Date.now() + timeoutMs; !cond() && Date.now() < end; ) await new Promise((r) => setTimeout(r, 50));
  return cond();
}

test("QEMU killed while running: crashed, with the signal, logs kept, sockets and control group gone, starts again", { timeout: 180_000 }, async (t) => {
  const d = await startTestDaemon(t);
  const vm = await d.client.start((await d.client.create({ name: "victim" })).id);
  const dir = join(d.home, "vms", vm.id);
  const sockets = () => readdirSync(dir).filter((f) => f.endsWith(".sock"));
  assert.deepEqual(sockets().sort(), ["agent.sock", "console.sock", "qmp.sock"]);
  // A root daemon jails QEMU in a control group of its own (src/jail/jail.ts); without root there is none.
  const { jail } = await d.client.get(vm.id);
  const jailed = jail?.enabled === true && jail.cgroup?.mode !== "none";
  const groups = cgroupDirs(vm.pid!);
  assert.equal(groups.length > 0, jailed, `QEMU's control groups: ${groups.join(", ") || "none"} (jail ${JSON.stringify(jail)})`);
  assert.ok(groups.every(existsSync));
  process.kill(vm.pid!, "SIGKILL");
  let after = await d.client.get("victim");
  for (let i = 0; i < 50 && after.state !== "crashed"; i++) {
    await new Promise((r) => setTimeout(r, 100));
    after = await d.client.get("victim");
  }
  assert.equal(after.state, "crashed");
  assert.equal(after.lastExit?.signal, "SIGKILL");
  assert.match(after.lastExit?.reason ?? "", /unasked.*SIGKILL/);
  assert.equal(after.pid, undefined);
  assert.match((await d.cli(["logs", "--console", "victim"])).stdout, /mvm-init: started/);
  assert.ok(existsSync(join(dir, "console.log")) && existsSync(join(dir, "qemu.log")), "its logs are kept");
  assert.ok(await until(() => sockets().length === 0), `its sockets are removed: ${sockets().join(", ")}`);
  assert.ok(await until(() => !groups.some(existsSync)), `its control group is removed: ${groups.filter(existsSync).join(", ")}`);
  t.diagnostic(`jail ${jailed ? `on, control groups ${groups.join(", ")} removed` : "off (no control group)"}; sockets removed; logs kept`);
  const again = await d.client.start("victim");
  assert.equal(again.state, "running", "a crashed VM starts again");
  assert.notEqual(again.pid, vm.pid);
  assert.equal(cgroupDirs(again.pid!).length > 0, jailed, "in a control group again");
  assert.equal((await d.client.exec("victim", ["true"])).status, 0);
});

test("QEMU dying during boot: the start fails with its console, the VM is crashed, nothing runs", { timeout: 180_000 }, async (t) => {
  const d = await startTestDaemon(t);
  await d.client.create({ name: "doomed", append: "rdinit=/no/such/init" });
  await assert.rejects(d.client.start("doomed"), (e: Error & { code?: string; details?: Record<string, unknown> }) => {
    assert.equal(e.code, "BOOT_FAILED");
    assert.match(String(e.details?.consoleTail), /Kernel panic|No working init/);
    return true;
  });
  const vm = await d.client.get("doomed");
  assert.equal(vm.state, "crashed");
  assert.match(vm.lastExit?.reason ?? "", /boot failed/);
  assert.deepEqual(qemuPidsOf(d.home), []);
});

test("six concurrent creates of one name: exactly one wins", { timeout: 60_000 }, async (t) => {
  const d = await startTestDaemon(t);
  const results = await Promise.allSettled(Array.from({ length: 6 }, () => d.cli(["create", "--name", "same"])));
  const codes = results.map((r) => (r.status === "fulfilled" ? r.value.code : -1)).sort();
  assert.deepEqual(codes, [0, 125, 125, 125, 125, 125]);
  assert.equal((await d.client.list()).length, 1);
});

test("daemon killed with -9: the VM keeps running and the next daemon re-adopts it", { timeout: 300_000 }, async (t) => {
  const d = await startTestDaemon(t);
  const vm = await d.client.start((await d.client.create({ name: "survivor" })).id);
  const startTime = processStartTime(vm.pid!);
  await killDaemon(d);
  assert.equal(processStartTime(vm.pid!), startTime, "QEMU outlived the daemon");
  const c2 = await connect({ home: d.home }); // starts a new daemon, which re-adopts
  const adopted = await c2.get("survivor");
  assert.equal(adopted.state, "running");
  assert.equal(adopted.pid, vm.pid);
  const r = await c2.exec("survivor", ["echo", "still here"]);
  assert.equal(r.status, 0);
  // Now QEMU dies while no daemon watches: the next daemon must not believe it is running.
  await killDaemon(d);
  process.kill(vm.pid!, "SIGKILL");
  assert.deepEqual(await waitGone([vm.pid!]), [], "QEMU died of SIGKILL");
  const c3 = await connect({ home: d.home });
  const after = await c3.get("survivor");
  assert.equal(after.state, "crashed");
  assert.match(after.lastExit?.reason ?? "", /while the daemon was away/);
});

test("the API socket is private to the daemon's user", { timeout: 60_000 }, async (t) => {
  const d = await startTestDaemon(t);
  const mode = (await import("node:fs")).statSync(`${d.home}/mvm.sock`).mode & 0o777;
  assert.equal(mode, 0o600);
  assert.ok(readFileSync(`${d.home}/daemon.pid`, "utf8").length > 0);
});

test("library: run, exec with callbacks and input, and await using removes the VM", { timeout: 180_000 }, async (t) => {
  const d = await startTestDaemon(t);
  const mvm = await connect({ home: d.home });
  {
    await using vm = await mvm.run({ memory: "300M", env: { GREETING: "hello" } });
    const chunks: string[] = [];
    const r = await vm.exec(["sh", "-c", "echo $GREETING; cat; exit 2"], { input: "piped\n", onStdout: (b) => chunks.push(b.toString()) });
    assert.equal(r.status, 2);
    assert.equal(chunks.join(""), "hello\npiped\n");
    assert.equal((await vm.inspect()).spec.memoryMiB, 300);
  }
  assert.deepEqual(await mvm.list(), []);
});

test("console: a shell on the serial console answers, and detaching leaves the VM running", { timeout: 180_000 }, async (t) => {
  const d = await startTestDaemon(t);
  await d.client.start((await d.client.create({ name: "con" })).id);
  const stream = await d.client.console("con");
  let seen = "";
  const answered = new Promise<void>((resolve) =>
    stream.on("data", (b: Buffer) => {
      seen += b.toString("latin1");
      if (seen.includes("console-42")) resolve();
    }),
  );
  stream.write("echo console-$((6*7))\n");
  await Promise.race([answered, new Promise((_, reject) => setTimeout(() => reject(new Error(`no answer; console said: ${seen.slice(-500)}`)), 20000))]);
  stream.destroy();
  await new Promise((r) => setTimeout(r, 100));
  assert.equal((await d.client.get("con")).state, "running");
  assert.match((await d.cli(["logs", "--console", "con"])).stdout, /console-42/, "the console log keeps the session");
  await assert.rejects(d.client.console("nope"), (e: Error & { code?: string }) => e.code === "NOT_FOUND");
});

test("daemon killed mid-boot: the next daemon kills the half-booted QEMU and says so", { timeout: 180_000 }, async (t) => {
  const d = await startTestDaemon(t);
  const vm = await d.client.create({ name: "midboot" });
  const starting = d.client.start(vm.id).catch((e: Error) => e);
  let rec = await d.client.get("midboot");
  for (let i = 0; i < 200 && !rec.pid; i++) {
    await new Promise((r) => setTimeout(r, 10));
    rec = await d.client.get("midboot");
  }
  assert.ok(rec.pid, "the record names QEMU's pid while it boots");
  await killDaemon(d);
  await starting;
  const c2 = await connect({ home: d.home });
  const after = await c2.get("midboot");
  assert.equal(after.state, "crashed");
  assert.match(after.lastExit?.reason ?? "", /while the VM was booting/);
  assert.deepEqual(qemuPidsOf(d.home), []);
});

test("asked for KVM where it cannot be used: a clear error, and the VM untouched", { timeout: 60_000 }, async (t) => {
  const d = await startTestDaemon(t);
  const info = await d.client.info();
  if (info.accel.chosen === "kvm") return t.skip("this host has real KVM");
  await d.client.create({ name: "needs-kvm", accel: "kvm" });
  const r = await d.cli(["start", "needs-kvm"]);
  assert.equal(r.code, 125);
  assert.match(r.stderr, /KVM, which cannot be used here: .*PVM|KVM, which cannot be used here/);
  assert.match(r.stderr, /hint: set accel to auto or tcg/);
  assert.equal((await d.client.get("needs-kvm")).state, "created");
});

test("no QEMU installed: start says what to install, and the VM stays as it was", { timeout: 60_000 }, async (t) => {
  const saved = process.env.MVM_QEMU;
  process.env.MVM_QEMU = "/nonexistent/qemu-system-x86_64"; // the daemon this test starts inherits it
  try {
    const d = await startTestDaemon(t);
    await d.client.create({ name: "no-qemu" });
    const r = await d.cli(["start", "no-qemu"]);
    assert.equal(r.code, 125);
    assert.match(r.stderr, /not installed|cannot/);
    assert.match(r.stderr, /qemu-system-x86/);
    assert.equal((await d.client.get("no-qemu")).state, "created");
  } finally {
    if (saved === undefined) delete process.env.MVM_QEMU;
    else process.env.MVM_QEMU = saved;
  }
});

test("signals reach a running exec and the VM's command (Ctrl-C forwarding)", { timeout: 180_000 }, async (t) => {
  const d = await startTestDaemon(t);
  const vm = await d.client.create({ name: "sig", command: ["sh", "-c", "trap 'echo got-int; exit 9' INT; echo ready; while :; do sleep 0.1; done"] });
  const job = d.client.startAttached(vm.id, (e) => {
    if (e.type === "stdout" && Buffer.from(e.data, "base64").toString().includes("ready")) void d.client.signal("sig", "job", 2);
  });
  assert.equal((await job).commandExit?.status, 9);
  await d.client.start("sig").catch(() => undefined); // runs the command again; exec beside it
  const r = await d.client.exec("sig", ["sh", "-c", "echo waiting; sleep 30"], {
    onSession: (c) => setTimeout(() => void c.signal(2), 500),
  });
  assert.equal(r.status, 130);
});

test("interactive exec: stdin streams as it comes, answers come back before it ends; -i through the CLI", { timeout: 180_000 }, async (t) => {
  const d = await startTestDaemon(t);
  await d.client.start((await d.client.create({ name: "talk" })).id);
  let out = "";
  const waitFor = (text: string) =>
    new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no ${text}; got ${out}`)), 15000);
      const check = setInterval(() => out.includes(text) && (clearInterval(check), clearTimeout(timer), resolve()), 20);
    });
  const s = await d.client.execStream("talk", ["sh", "-c", "read a; echo got-$a; read b; echo got-$b >&2; exit 4"], {
    onStdout: (b) => (out += b.toString()),
    onStderr: (b) => (out += b.toString()),
  });
  s.write("one\n");
  await waitFor("got-one"); // answered while stdin is still open: streamed, not buffered
  s.write("two\n");
  s.end();
  assert.equal((await s.result).status, 4);
  assert.match(out, /got-two/);
  const cli = await d.cli(["exec", "-i", "talk", "--", "sh", "-c", "tr a-z A-Z; exit 2"], "piped through\n");
  assert.equal(cli.code, 2);
  assert.equal(cli.stdout, "PIPED THROUGH\n");
  const run = await d.cli(["run", "--rm", "-i", "--", "wc", "-c"], "12345");
  assert.equal(run.code, 0, run.stderr);
  assert.equal(run.stdout.trim(), "5");
});

test("a spec file is the same schema: unknown keys refused, flags override its keys", { timeout: 180_000 }, async (t) => {
  const d = await startTestDaemon(t);
  const { writeFile } = await import("node:fs/promises");
  const good = `${d.home}/good.json`;
  const bad = `${d.home}/bad.json`;
  await writeFile(good, JSON.stringify({ name: "from-file", memory: "300M", env: { FROM: "file" }, command: ["sh", "-c", "echo $FROM"] }));
  await writeFile(bad, JSON.stringify({ name: "x", colour: "red" }));
  const r = await d.cli(["run", "--rm", "-f", good, "--memory", "320M"]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, "file\n");
  const created = await d.cli(["create", "--json", "-f", good, "--memory", "320M"]);
  assert.equal((JSON.parse(created.stdout) as { spec: { memoryMiB: number } }).spec.memoryMiB, 320);
  const refused = await d.cli(["create", "-f", bad]);
  assert.equal(refused.code, 125);
  assert.match(refused.stderr, /colour/);
  assert.equal((await d.cli(["create", "-f", `${d.home}/missing.json`])).code, 125);
});

test("exec --timeout: status 124, the reason on stderr, the VM unaffected", { timeout: 180_000 }, async (t) => {
  const d = await startTestDaemon(t);
  await d.client.start((await d.client.create({ name: "slow" })).id);
  const r = await d.cli(["exec", "--timeout", "1s", "slow", "--", "sleep", "30"]);
  assert.equal(r.code, 124);
  assert.match(r.stderr, /timed out after 1000 ms/);
  assert.equal((await d.cli(["exec", "slow", "--", "true"])).code, 0);
  assert.equal((await d.cli(["exec", "--timeout", "soon", "slow", "--", "true"])).code, 125);
});
