// The official E2B SDK (e2b 2.51.0, unchanged) against mvm's E2B backend on a real daemon's TCP listener,
// with real guests under TCG booted from the Debian image (template base). One sandbox serves most
// subtests (they only add files and processes to it); a second, of another API key, shows isolation and
// its end at its timeout. Every subtest has a deadline; the daemon's teardown removes what is left.

import assert from "node:assert/strict";
import { once } from "node:events";
import { request as httpRequest } from "node:http";
import { createServer } from "node:net";
import { test } from "node:test";
import { CommandExitError, Sandbox, TimeoutError, type SandboxOpts } from "e2b";
import { startTestDaemon } from "../support/daemon.js";

test("the E2B SDK against mvm: sandboxes, commands, files, isolation", { timeout: 900_000 }, async (t) => {
  const probe = createServer().listen(0, "127.0.0.1");
  await once(probe, "listening");
  const port = (probe.address() as { port: number }).port;
  probe.close();
  process.env.MVM_LISTEN = `127.0.0.1:${port}`;
  // The daemon samples its VMs' figures every second (not 5 s): getMetrics has points within the test's time.
  process.env.MVM_STATS_HISTORY_MS = "1000";
  let d;
  try {
    d = await startTestDaemon(t);
  } finally {
    delete process.env.MVM_LISTEN;
    delete process.env.MVM_STATS_HISTORY_MS;
  }
  const built = await d.cli(["image", "build", "debian"]);
  assert.equal(built.code, 0, built.stderr.slice(-2000));
  const url = `http://127.0.0.1:${port}`;
  const ann: SandboxOpts = { apiUrl: url, sandboxUrl: url, apiKey: (await d.client.createToken("ann", { role: "user", maxVms: 1 })).token };
  const bob: SandboxOpts = { apiUrl: url, sandboxUrl: url, apiKey: (await d.client.createToken("bob", { role: "user" })).token };

  const t0 = Date.now();
  const sbx = await Sandbox.create("base", { ...ann, envs: { SBX_ENV: "from-create" }, metadata: { app: "e2b-test", run: "1" }, timeoutMs: 600_000 });
  t.diagnostic(`Sandbox.create took ${Date.now() - t0} ms`);
  assert.match(sbx.sandboxId, /^[a-z0-9]+$/);

  await t.test("mvm ps shows the sandbox with its metadata and time to live", async () => {
    const vm = await d.client.get(sbx.sandboxId);
    assert.equal(vm.owner, "ann");
    assert.equal(vm.spec.labels?.app, "e2b-test");
    assert.ok(vm.expiresAt && Date.parse(vm.expiresAt) - Date.now() > 500_000);
    const info = await sbx.getInfo();
    assert.deepEqual([info.templateId, info.state, info.metadata], ["base", "running", { app: "e2b-test", run: "1" }]);
    assert.equal(await sbx.isRunning(), true);
  });

  await t.test("commands.run: output streamed, envs of the sandbox and the command, cwd, user", { timeout: 60_000 }, async () => {
    const out: string[] = [];
    const err: string[] = [];
    const r = await sbx.commands.run('echo "$SBX_ENV $CMD_ENV $(pwd) $(id -un)"; echo to-err >&2', { envs: { CMD_ENV: "from-run" }, cwd: "/tmp", user: "root", onStdout: (s) => void out.push(s), onStderr: (s) => void err.push(s) });
    assert.equal(r.exitCode, 0);
    assert.equal(r.stdout, "from-create from-run /tmp root\n");
    assert.equal(out.join(""), r.stdout);
    assert.equal(err.join(""), "to-err\n");
    assert.equal((await sbx.commands.run("echo $HOME; test -x /bin/bash && echo bash")).stdout, "/root\nbash\n");
  });

  await t.test("a failing command is CommandExitError with its exit code; timeoutMs is TimeoutError and the process is gone", { timeout: 60_000 }, async () => {
    await assert.rejects(sbx.commands.run("echo partial; exit 3"), (e: unknown) => e instanceof CommandExitError && e.exitCode === 3 && e.stdout === "partial\n");
    await assert.rejects(sbx.commands.run("sleep 30; echo never", { timeoutMs: 1500 }), (e: unknown) => e instanceof TimeoutError);
    await new Promise((r) => setTimeout(r, 1000));
    const left = await sbx.commands.run("ps -eo args | grep -c '^sleep 30' || true");
    assert.equal(left.stdout.trim(), "0", "the timed-out command was killed");
  });

  await t.test("background with stdin: sendStdin, list, disconnect, connect by pid, kill", { timeout: 60_000 }, async () => {
    const h = await sbx.commands.run("while read line; do echo got-$line; done", { background: true, stdin: true });
    await sbx.commands.sendStdin(h.pid, "one\n");
    await waitUntil(() => h.stdout.includes("got-one"), "the first line echoed");
    const listed = await sbx.commands.list();
    assert.ok(listed.some((p) => p.pid === h.pid && p.args.join(" ").includes("while read")), JSON.stringify(listed));
    await h.disconnect();
    const again = await sbx.commands.connect(h.pid);
    await sbx.commands.sendStdin(h.pid, "two\n");
    await waitUntil(() => again.stdout.includes("got-two"), "the second line, seen by the new connection");
    assert.ok(!again.stdout.includes("got-one"), "connect streams from now on");
    assert.equal(await sbx.commands.kill(h.pid), true);
    await assert.rejects(again.wait(), (e: unknown) => e instanceof CommandExitError);
    assert.equal(await sbx.commands.kill(h.pid), false, "an ended process is not found");
  });

  await t.test("files: write and read (string, bytes, several), list, makeDir twice, exists, getInfo, rename, remove", { timeout: 60_000 }, async () => {
    const w = await sbx.files.write("/tmp/e2b/hello.txt", "hello from the SDK\n");
    assert.equal(w.path, "/tmp/e2b/hello.txt");
    assert.equal(await sbx.files.read("/tmp/e2b/hello.txt"), "hello from the SDK\n");
    const bytes = Buffer.from(Array.from({ length: 70_000 }, (_, i) => i % 251));
    await sbx.files.write("/tmp/e2b/data.bin", new Uint8Array(bytes).buffer);
    assert.ok(Buffer.from(await sbx.files.read("/tmp/e2b/data.bin", { format: "bytes" })).equals(bytes));
    const many = await sbx.files.write([{ path: "/tmp/e2b/a/one.txt", data: "1" }, { path: "/tmp/e2b/b/two.txt", data: "2" }]);
    assert.deepEqual(many.map((f) => f.path), ["/tmp/e2b/a/one.txt", "/tmp/e2b/b/two.txt"]);
    assert.equal((await sbx.commands.run("cat /tmp/e2b/a/one.txt /tmp/e2b/b/two.txt")).stdout, "12");
    const names = (await sbx.files.list("/tmp/e2b")).map((e) => `${e.name}:${e.type}`).sort();
    assert.deepEqual(names, ["a:dir", "b:dir", "data.bin:file", "hello.txt:file"]);
    assert.equal(await sbx.files.makeDir("/tmp/e2b/new"), true);
    assert.equal(await sbx.files.makeDir("/tmp/e2b/new"), false, "already there");
    assert.equal(await sbx.files.exists("/tmp/e2b/hello.txt"), true);
    assert.equal(await sbx.files.exists("/tmp/e2b/nope"), false);
    const info = await sbx.files.getInfo("/tmp/e2b/data.bin");
    assert.deepEqual([info.name, info.type, info.size, info.path], ["data.bin", "file", 70_000, "/tmp/e2b/data.bin"]);
    const moved = await sbx.files.rename("/tmp/e2b/hello.txt", "/tmp/e2b/new/moved.txt");
    assert.equal(moved.path, "/tmp/e2b/new/moved.txt");
    assert.equal(await sbx.files.exists("/tmp/e2b/hello.txt"), false);
    await sbx.files.remove("/tmp/e2b/new");
    assert.equal(await sbx.files.exists("/tmp/e2b/new/moved.txt"), false);
    // Signed URLs carry no sandbox id: the signature finds the sandbox; a changed path or a past expiration is refused.
    const up = await sbx.uploadUrl("/tmp/e2b/signed.txt", { useSignatureExpiration: 60 });
    const form = new FormData();
    form.append("file", new Blob(["via a signed URL"]), "/tmp/e2b/signed.txt");
    assert.equal((await fetch(up, { method: "POST", body: form })).status, 200);
    const down = await sbx.downloadUrl("/tmp/e2b/signed.txt");
    assert.equal(await (await fetch(down)).text(), "via a signed URL");
    assert.equal((await fetch(down.replace("signed.txt", "data.bin"))).status, 401, "the signature is for one path");
    const stale = await sbx.downloadUrl("/tmp/e2b/signed.txt", { useSignatureExpiration: -10 });
    assert.equal((await fetch(stale)).status, 401, "expired");
    await assert.rejects(sbx.files.read("/tmp/e2b/nope"), (e: unknown) => (e as Error).name === "FileNotFoundError" || (e as Error).name === "NotFoundError");
  });

  await t.test("pty: create, input, resize, kill", { timeout: 60_000 }, async () => {
    const seen: Buffer[] = [];
    const pty = await sbx.pty.create({ cols: 80, rows: 24, onData: (b) => void seen.push(Buffer.from(b)) });
    const text = () => Buffer.concat(seen).toString();
    await sbx.pty.sendInput(pty.pid, new TextEncoder().encode("stty size; echo tty-$((6*7))\n"));
    await waitUntil(() => text().includes("tty-42") && text().includes("24 80"), "the shell's answer on the pty");
    await sbx.pty.resize(pty.pid, { cols: 100, rows: 30 });
    await sbx.pty.sendInput(pty.pid, new TextEncoder().encode("stty size\n"));
    await waitUntil(() => text().includes("30 100"), "the new size");
    assert.equal(await sbx.pty.kill(pty.pid), true);
    await assert.rejects(pty.wait());
  });

  await t.test("files: a streamed write (octet-stream) and a gzip one", { timeout: 60_000 }, async () => {
    const big = Buffer.alloc(3 * 1024 * 1024, "x");
    const stream = new ReadableStream<Uint8Array>({ start: (c) => (c.enqueue(new Uint8Array(big)), c.close()) });
    await sbx.files.write("/tmp/e2b/streamed.bin", stream);
    assert.equal((await sbx.files.getInfo("/tmp/e2b/streamed.bin")).size, big.length);
    await sbx.files.write("/tmp/e2b/zipped.txt", "compressed on the way\n", { gzip: true });
    assert.equal(await sbx.files.read("/tmp/e2b/zipped.txt"), "compressed on the way\n");
  });

  await t.test("hostile envd requests: unknown sandbox 502, no access token 401, malformed and oversize envelopes refused, the sandbox unaffected", { timeout: 60_000 }, async () => {
    const envd = (id: string, path: string, init: RequestInit & { headers?: Record<string, string> } = {}) =>
      fetch(`${url}${path}`, { method: "POST", ...init, headers: { "e2b-sandbox-id": id, "e2b-sandbox-port": "49983", ...(init.headers ?? {}) } });
    const unknown = await envd("nosuchsandbox", "/health", { method: "GET" });
    assert.equal(unknown.status, 502);
    assert.equal(((await unknown.json()) as { message: string }).message, "The sandbox was not found");
    const noToken = await envd(sbx.sandboxId, "/filesystem.Filesystem/Stat", { body: JSON.stringify({ path: "/" }), headers: { "content-type": "application/json" } });
    assert.equal(noToken.status, 401);
    const token = (sbx as unknown as { envdAccessToken?: string }).envdAccessToken!;
    assert.ok(token, "the create answer gave an access token");
    const auth = { "x-access-token": token, "connect-protocol-version": "1" };
    const cut = await envd(sbx.sandboxId, "/process.Process/Start", { body: Buffer.from([0, 0, 0, 0, 50, 123]), headers: { ...auth, "content-type": "application/connect+json" } });
    assert.equal(cut.status, 200);
    const body = Buffer.from(await cut.arrayBuffer());
    assert.equal(body[0], 2, "one end-stream envelope");
    assert.equal((JSON.parse(body.subarray(5).toString()) as { error: { code: string } }).error.code, "invalid_argument");
    const huge = await envd(sbx.sandboxId, "/process.Process/Start", { body: Buffer.from([0, 0x7f, 0xff, 0xff, 0xff]), headers: { ...auth, "content-type": "application/connect+json" } });
    const hb = Buffer.from(await huge.arrayBuffer());
    assert.equal((JSON.parse(hb.subarray(5).toString()) as { error: { code: string } }).error.code, "resource_exhausted");
    const notJson = await envd(sbx.sandboxId, "/filesystem.Filesystem/Stat", { body: "{nope", headers: { ...auth, "content-type": "application/json" } });
    assert.equal(notJson.status, 400);
    assert.equal(((await notJson.json()) as { code: string }).code, "invalid_argument");
    assert.equal((await sbx.commands.run("echo still-fine")).stdout, "still-fine\n");
  });

  await t.test("files.watchDir sees a file written; getHost(port) reaches a guest HTTP server over the agent's forward", { timeout: 60_000 }, async (st) => {
    await sbx.files.makeDir("/tmp/watched");
    let watcher;
    try {
      const events: string[] = [];
      watcher = await sbx.files.watchDir("/tmp/watched", (e) => void events.push(`${e.type}:${e.name}`));
      await sbx.files.write("/tmp/watched/new.txt", "x");
      await waitUntil(() => events.some((e) => /create:new\.txt/i.test(e)), "the create event");
    } catch (e) {
      if (/capability/.test((e as Error).message)) return st.skip(`this guest's agent has no watch: ${(e as Error).message}`);
      throw e;
    } finally {
      await watcher?.stop();
    }
    const server = "perl -MIO::Socket::INET -e '$s=IO::Socket::INET->new(LocalAddr=>\"127.0.0.1:8000\",Listen=>5,ReuseAddr=>1) or die; while($c=$s->accept){ while(<$c>){ last if /^\\r?$/ } print $c \"HTTP/1.0 200 OK\\r\\nContent-Length: 9\\r\\n\\r\\nfrom-perl\"; close $c }'";
    const srv = await sbx.commands.run(server, { background: true });
    await new Promise((r) => setTimeout(r, 1500));
    assert.match(sbx.getHost(8000), new RegExp(`^8000-${sbx.sandboxId}\\.`));
    const get = (headers: Record<string, string>) =>
      new Promise<{ status: number; body: string }>((resolve, reject) => {
        const r = httpRequest(`${url}/any/path`, { headers }, (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => chunks.push(c));
          res.on("end", () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
        });
        r.on("error", reject);
        r.end();
      });
    const byHost = await get({ host: sbx.getHost(8000) });
    if (byHost.status === 502 && /capability/.test(byHost.body)) return st.skip(`this guest's agent has no forward: ${byHost.body}`);
    assert.deepEqual(byHost, { status: 200, body: "from-perl" });
    assert.deepEqual(await get({ "e2b-sandbox-id": sbx.sandboxId, "e2b-sandbox-port": "8000" }), { status: 200, body: "from-perl" });
    const closed = await get({ host: `8001-${sbx.sandboxId}.e2b.app` });
    assert.equal(closed.status, 502, "nothing listens on 8001");
    await srv.kill();
  });

  await t.test("getMetrics has the daemon's samples; pause saves the sandbox with its memory (mvm suspend), without an end time; connect resumes it with its processes and files", { timeout: 120_000 }, async () => {
    // The sandbox has run for a while by now, sampled every second.
    await waitUntil(async () => (await sbx.getMetrics()).length >= 2, "two samples of the sandbox", 10_000);
    const m = await sbx.getMetrics();
    const last = m.at(-1)!;
    assert.deepEqual([last.cpuCount, last.memTotal], [1, 512 << 20]);
    assert.ok(last.memUsed > 16 << 20 && last.cpuUsedPct >= 0 && last.timestamp instanceof Date, JSON.stringify(last));
    const bg = await sbx.commands.run("sleep 1000", { background: true, timeoutMs: 0 });
    await bg.disconnect();
    await sbx.files.write("/root/before-pause.txt", "kept");
    assert.equal(await sbx.pause(), true);
    assert.equal(await sbx.pause(), false, "already paused");
    const vm = await d.client.get(sbx.sandboxId);
    assert.deepEqual([vm.state, vm.expiresAt], ["suspended", undefined]);
    assert.equal((await sbx.getInfo()).state, "paused");
    assert.deepEqual((await Sandbox.list({ ...ann, query: { state: ["paused"] } }).nextItems()).map((s) => s.sandboxId), [sbx.sandboxId]);
    assert.deepEqual(await Sandbox.list({ ...ann, query: { state: ["running"] } }).nextItems(), []);
    const back = await Sandbox.connect(sbx.sandboxId, { ...ann, timeoutMs: 600_000 });
    assert.equal((await back.getInfo()).state, "running");
    assert.ok((await back.getInfo()).endAt.getTime() - Date.now() > 500_000, "an end time again, from the connect");
    assert.equal(await back.files.read("/root/before-pause.txt"), "kept");
    assert.ok((await back.commands.list()).some((p) => p.pid === bg.pid), "the background process lived through the pause");
    assert.equal(await back.commands.kill(bg.pid), true);
  });

  await t.test("two API keys: each lists only its own; another's sandbox is not found; setTimeout ends a sandbox at its time", { timeout: 240_000 }, async () => {
    const other = await Sandbox.create("base", { ...bob, metadata: { app: "e2b-test", run: "2" } });
    const annSees = (await Sandbox.list({ ...ann, query: { metadata: { app: "e2b-test" } } }).nextItems()).map((s) => s.sandboxId);
    assert.deepEqual(annSees, [sbx.sandboxId]);
    const bobSees = (await Sandbox.list(bob).nextItems()).map((s) => s.sandboxId);
    assert.deepEqual(bobSees, [other.sandboxId]);
    assert.deepEqual((await Sandbox.list({ ...ann, query: { metadata: { run: "nope" } } }).nextItems()), []);
    assert.equal(await Sandbox.kill(other.sandboxId, ann), false, "ann cannot kill bob's sandbox");
    await assert.rejects(Sandbox.connect(other.sandboxId, ann));
    await assert.rejects(Sandbox.create("base", ann), (e: unknown) => (e as Error).name === "RateLimitError" && /quota of 1/.test((e as Error).message), "ann's token holds one VM");
    const connected = await Sandbox.connect(other.sandboxId, bob);
    assert.equal((await connected.commands.run("echo bob")).stdout, "bob\n");
    const running = await connected.commands.run("sleep 100", { background: true });
    await connected.setTimeout(2000);
    await waitUntil(async () => (await d.client.list()).every((v) => v.name !== other.sandboxId), "bob's sandbox removed at its end time", 30_000);
    assert.equal(await connected.isRunning(), false);
    await assert.rejects(running.wait(), "a command of a sandbox killed under it ends with an error, not a hang");
  });

  await t.test("kill: true, then false", { timeout: 60_000 }, async () => {
    assert.equal(await Sandbox.kill(sbx.sandboxId, ann), true);
    assert.equal(await Sandbox.kill(sbx.sandboxId, ann), false, "again: gone");
    assert.deepEqual(await d.client.list(), []);
    await assert.rejects(Sandbox.create("no-such-template", ann), /not found/);
    await assert.rejects(Sandbox.create("base", { ...ann, apiKey: "not-a-token" }), (e: unknown) => (e as Error).name === "AuthenticationError");
  });
});

async function waitUntil(cond: () => boolean | Promise<boolean>, what: string, timeoutMs = 20_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
