// The API over TCP with tokens (issue 13), against a real daemon over the fake QEMU: 401s, ownership across
// two user tokens, a read token, an admin, quotas, a removed token's streams ending, a TLS listener with a
// certificate made here, 50 concurrent create/delete calls, slow clients cut off, and the real CLI: mvm
// daemon --listen refusing a non-loopback address without TLS, mvm config set listen for the daemon the CLI
// starts on demand, mvm token create|ls|rm.

import assert from "node:assert/strict";
import { execFile, execFileSync, spawn } from "node:child_process";
import { once } from "node:events";
import { readFileSync } from "node:fs";
import { request, type IncomingHttpHeaders } from "node:http";
import { createConnection, createServer } from "node:net";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { test, type TestContext } from "node:test";
import { MvmClient, connect } from "../../src/client/client.js";
import { MvmError } from "../../src/errors.js";
import { FAKE_QEMU, FakeHome, waitFor } from "./harness.js";
import { startTcpDaemon, type TcpDaemon } from "./tcp-daemon.js";

const T = { timeout: 60_000 };
const CLI = fileURLToPath(new URL("../../src/cli/main.js", import.meta.url));

async function setup(t: TestContext, ...args: Parameters<typeof startTcpDaemon> extends [unknown, ...infer R] ? R : never): Promise<{ h: FakeHome; d: TcpDaemon }> {
  const h = new FakeHome();
  const d = await startTcpDaemon(h, ...args);
  t.after(async () => {
    await d.stop();
    await h.close();
  });
  return { h, d };
}

interface Raw {
  status: number;
  headers: IncomingHttpHeaders;
  body: Record<string, unknown>;
}

/** A request as any HTTP client would send it. */
function raw(url: string, method: string, path: string, headers: Record<string, string> = {}, body?: unknown): Promise<Raw> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const req = request(new URL(path, url), { method, headers: { ...headers, ...(payload ? { "content-type": "application/json" } : {}) } }, (res) => {
      let text = "";
      res.on("data", (b: Buffer) => (text += b.toString()));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text ? (JSON.parse(text) as Record<string, unknown>) : {} }));
    });
    req.on("error", reject);
    req.end(payload);
  });
}

/** An upgrade request's answer: the status line and body when refused, "101" when taken. */
function upgrade(port: number, path: string, protocol: string, token?: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const s = createConnection({ port, host: "127.0.0.1" }, () => {
      s.write(`GET ${path} HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: ${protocol}\r\n${token ? `Authorization: Bearer ${token}\r\n` : ""}\r\n`);
    });
    let text = "";
    s.on("data", (b: Buffer) => {
      text += b.toString();
      if (text.startsWith("HTTP/1.1 101")) {
        s.destroy();
        resolve({ status: 101, body: "" });
      }
    });
    s.on("end", () => resolve({ status: Number(text.slice(9, 12)), body: text.slice(text.indexOf("\r\n\r\n") + 4) }));
    s.on("error", reject);
  });
}

const code = (c: string) => (e: unknown) => e instanceof MvmError && e.code === c;

test("without a token, with a wrong or malformed one: 401 in mvm's shape with WWW-Authenticate; the socket needs none", T, async (t) => {
  const { d } = await setup(t);
  const good = await d.token("ci");
  for (const headers of [{} as Record<string, string>, { authorization: "Bearer mvm_wrong" }, { authorization: `Bearer ${good}x` }, { authorization: `Basic ${Buffer.from("a:b").toString("base64")}` }, { authorization: good }]) {
    for (const [method, path] of [["GET", "/v1/vms"], ["GET", "/v1/info"], ["POST", "/v1/vms"], ["GET", "/v1/nope"]] as const) {
      const r = await raw(d.url, method, path, headers, method === "POST" ? { name: "x" } : undefined);
      assert.equal(r.status, 401, `${method} ${path} ${JSON.stringify(headers)}: ${JSON.stringify(r.body)}`);
      assert.deepEqual(Object.keys(r.body).sort(), ["details", "error", "hint", "message"]);
      assert.equal(r.body.error, "UNAUTHORIZED");
      assert.match(String(r.headers["www-authenticate"]), /^Bearer/);
    }
  }
  // The upgrades too, before anything about the VM is said.
  const up = await upgrade(d.port, "/v1/vms/x/exec", "mvm-exec");
  assert.equal(up.status, 401);
  assert.equal((JSON.parse(up.body) as { error: string }).error, "UNAUTHORIZED");
  assert.equal((await upgrade(d.port, "/v1/vms/x/console", "mvm-console", "mvm_nope")).status, 401);
  // The library says the same, as its class.
  await assert.rejects(d.as(undefined).list(), code("UNAUTHORIZED"));
  await assert.rejects(d.as("mvm_nope").info(), code("UNAUTHORIZED"));
  assert.deepEqual(await d.as(good).list(), []);
  assert.deepEqual(await d.root.list(), []);
  assert.equal((await d.as(good).info()).version, "process-test");
  // Tokens are the host's root's: no token manages them, not even an admin's.
  const admin = await d.token("ops", { role: "admin" });
  await assert.rejects(d.as(admin).tokens(), code("FORBIDDEN"));
  await assert.rejects(d.as(admin).createToken("more", { role: "admin" }), code("FORBIDDEN"));
  assert.deepEqual((await d.tokens()).map((x) => x.name), ["ci", "ops"]);
});

test("two user tokens: each sees and acts on its own VMs only (another's is 404 as if absent); read only GETs; admin and the host's root see all", T, async (t) => {
  const { d } = await setup(t);
  const [a, b, read, admin] = await Promise.all([d.token("a"), d.token("b"), d.token("dash", { role: "read" }), d.token("ops", { role: "admin" })]);
  const A = d.as(a);
  const B = d.as(b);
  const a1 = await A.create({ name: "a1" });
  const b1 = await B.create({ name: "b1" });
  assert.equal(a1.owner, "a");
  assert.equal(b1.owner, "b");
  await A.start("a1");
  await B.start("b1");
  assert.deepEqual((await A.list()).map((v) => v.name), ["a1"]);
  assert.deepEqual((await B.list()).map((v) => v.name), ["b1"]);
  assert.equal((await A.exec("a1", ["echo", "mine"])).exitCode, 0);

  // B's VM, by name, id or id prefix, through every kind of route: NOT_FOUND, word for word as a VM that is not there.
  const absent = await raw(d.url, "GET", "/v1/vms/zz-none", { authorization: `Bearer ${a}` });
  for (const ref of ["b1", b1.id, b1.id.slice(0, 6)]) {
    const r = await raw(d.url, "GET", `/v1/vms/${ref}`, { authorization: `Bearer ${a}` });
    assert.equal(r.status, 404, ref);
    assert.deepEqual(r.body, { ...absent.body, message: `no VM named ${ref}`, details: { vm: ref } });
  }
  for (const [method, path, body] of [["POST", "/v1/vms/b1/stop"], ["POST", "/v1/vms/b1/exec", { argv: ["true"] }], ["DELETE", "/v1/vms/b1?force=true"], ["GET", "/v1/vms/b1/sessions"], ["POST", "/v1/vms/b1/files/stat", { path: "/" }], ["GET", "/v1/vms/b1/logs"], ["POST", "/v1/vms/b1/snapshots", {}], ["PATCH", "/v1/vms/b1/limits", { cpuShare: 100 }]] as Array<[string, string, unknown?]>) {
    const r = await raw(d.url, method, path, { authorization: `Bearer ${a}` }, body);
    assert.deepEqual([r.status, r.body.error], [404, "NOT_FOUND"], `${method} ${path}: ${JSON.stringify(r.body)}`);
  }
  for (const kind of ["exec", "console"]) {
    const r = await upgrade(d.port, `/v1/vms/b1/${kind}`, `mvm-${kind}`, a);
    assert.equal(r.status, 404, kind);
  }
  await assert.rejects(A.execStream("b1", ["true"]), code("NOT_FOUND"));
  await assert.rejects(A.remove("b1", { force: true }), code("NOT_FOUND"));
  // A's prune leaves B's ended VM; B's own prune takes it.
  await B.stop("b1");
  assert.deepEqual(await A.prune(), { removed: [] });
  assert.equal((await d.root.get("b1")).state, "stopped");

  // read: sees everything, changes nothing, opens no stream.
  const R = d.as(read);
  assert.deepEqual((await R.list()).map((v) => v.name), ["a1", "b1"]);
  for (const [method, path, body] of [["POST", "/v1/vms", { name: "r" }], ["POST", "/v1/vms/a1/stop"], ["DELETE", "/v1/vms/b1"], ["POST", "/v1/vms/a1/exec", { argv: ["true"] }], ["POST", "/v1/prune"]] as Array<[string, string, unknown?]>) {
    const r = await raw(d.url, method, path, { authorization: `Bearer ${read}` }, body);
    assert.deepEqual([r.status, r.body.error], [403, "FORBIDDEN"], `${method} ${path}`);
  }
  assert.equal((await upgrade(d.port, "/v1/vms/a1/exec", "mvm-exec", read)).status, 403);
  // Users use networks and images but do not make or remove them.
  await assert.rejects(A.createNetwork("n1"), code("FORBIDDEN"));
  await assert.rejects(A.removeImage("debian"), code("FORBIDDEN"));

  // admin: every VM, every action.
  const O = d.as(admin);
  assert.deepEqual((await O.list()).map((v) => [v.name, v.owner]), [["a1", "a"], ["b1", "b"]]);
  assert.equal((await O.exec("a1", ["echo", "ops"])).exitCode, 0);
  assert.equal((await upgrade(d.port, "/v1/vms/a1/console", "mvm-console", admin)).status, 101);
  // The host's root, on the socket: every VM too, with its owner; a VM it makes has none.
  assert.equal((await d.root.create({ name: "r1" })).owner, undefined);
  assert.deepEqual((await d.root.list()).map((v) => v.name), ["a1", "b1", "r1"]);
  assert.deepEqual((await A.list()).map((v) => v.name), ["a1"]);
  assert.deepEqual(await B.prune(), { removed: ["b1"] });
  await O.remove("a1", { force: true });
  assert.deepEqual((await d.root.list()).map((v) => v.name), ["r1"]);
});

test("quotas: VMs, vCPUs and memory over the token's VMs: QUOTA_EXCEEDED (429) with the quota and the use; removing a VM makes room", T, async (t) => {
  const { d } = await setup(t);
  const q = d.as(await d.token("q", { maxVms: 2, maxCpus: 3, maxMemory: "1G" }));
  const other = d.as(await d.token("other"));
  await q.create({ name: "q1", cpus: 2, memory: "256M" });
  const cpus = await raw(d.url, "POST", "/v1/vms", { authorization: `Bearer ${(await d.token("q2", { maxCpus: 1 }))}` }, { name: "big", cpus: 2 });
  assert.equal(cpus.status, 429);
  assert.equal(cpus.body.error, "QUOTA_EXCEEDED");
  assert.match(String(cpus.body.message), /quota of 1 vCPUs: it has 0 in 0 VMs, and this VM asks for 2 more/);
  assert.match(String(cpus.body.hint), /remove one of this token's VMs/);
  await assert.rejects(q.create({ name: "q2", cpus: 2 }), (e: unknown) => code("QUOTA_EXCEEDED")(e) && /quota of 3 vCPUs: it has 2/.test((e as Error).message));
  await assert.rejects(q.create({ name: "q2", memory: "800M" }), (e: unknown) => code("QUOTA_EXCEEDED")(e) && /1024 MiB of memory: it has 256 MiB/.test((e as Error).message));
  await q.create({ name: "q2", cpus: 1, memory: "512M" });
  await assert.rejects(q.create({ name: "q3" }), (e: unknown) => code("QUOTA_EXCEEDED")(e) && /quota of 2 VMs/.test((e as Error).message) && (e as MvmError).details.status === 429);
  // Nothing was made for a refused create; another token's VMs do not count.
  await other.create({ name: "o1", cpus: 4 });
  assert.deepEqual((await d.root.list()).map((v) => v.name), ["q1", "q2", "o1"]);
  // Ten at once against one free place: exactly one is made.
  await q.remove("q2");
  const tries = await Promise.allSettled(Array.from({ length: 10 }, (_, i) => q.create({ name: `race-${i}`, cpus: 1 })));
  assert.equal(tries.filter((r) => r.status === "fulfilled").length, 1);
  assert.ok(tries.every((r) => r.status === "fulfilled" || code("QUOTA_EXCEEDED")(r.reason)));
  assert.equal((await q.list()).length, 2);
});

test("a token removed while its client streams: its exec and console streams end at once, its next request is 401", T, async (t) => {
  const { d } = await setup(t);
  const token = await d.token("gone");
  const keep = await d.token("kept");
  const c = d.as(token);
  await c.create({ name: "s1" });
  await c.start("s1");
  const stream = await c.execStream("s1", ["cat"]);
  stream.write("hello\n");
  const kept = d.as(keep);
  await kept.create({ name: "k1" });
  await kept.start("k1");
  const other = await kept.execStream("k1", ["cat"]);
  const console = await c.console("s1");
  const consoleClosed = once(console, "close");
  const follow = c.logs("s1", { follow: true, onData: () => undefined, onEvent: () => undefined }).catch((e: unknown) => e);
  // The exec and console sockets and the log stream's connection.
  for (let i = 0; (await d.tokens()).find((x) => x.name === "gone")!.connections! < 3; i++) {
    assert.ok(i < 100, "the token's three connections are open");
    await new Promise((r) => setTimeout(r, 20));
  }
  const streamEnded = assert.rejects(stream.result, code("DAEMON_DISCONNECTED"));
  const t0 = Date.now();
  await d.root.removeToken("gone");
  await streamEnded;
  await consoleClosed;
  await follow;
  assert.ok(Date.now() - t0 < 2000, `the streams took ${Date.now() - t0} ms to end`);
  await assert.rejects(c.list(), code("UNAUTHORIZED"));
  // Another token's stream goes on; the VM is there for the host's root (its command was killed with the stream).
  other.write("still\n");
  other.end();
  assert.equal((await other.result).exitCode, 0);
  assert.equal((await d.root.get("s1")).state, "running");
  await d.root.remove("s1", { force: true });
  await d.root.remove("k1", { force: true });
});

test("a TLS listener with a certificate made here: the library over https with a token, exec streaming included; an untrusted certificate is refused", T, async (t) => {
  const dir = new FakeHome();
  t.after(() => dir.close());
  const key = join(dir.home, "key.pem");
  const cert = join(dir.home, "cert.pem");
  execFileSync("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"], { stdio: "ignore" });
  const { d } = await setup(t, { listen: "127.0.0.1:0", tlsCert: cert, tlsKey: key }, { handshakeMs: 1000, headersMs: 1000 });
  assert.match(d.url, /^https:\/\/127\.0\.0\.1:\d+$/);
  const token = await d.token("tls");
  const ca = readFileSync(cert);
  const c = await connect({ url: d.url, token, ca });
  await c.create({ name: "t1" });
  await c.start("t1");
  const out: Buffer[] = [];
  const s = await c.execStream("t1", ["cat"], { onStdout: (b) => out.push(b) });
  s.write("over tls\n");
  s.end();
  assert.equal((await s.result).exitCode, 0);
  assert.equal(Buffer.concat(out).toString(), "over tls\n");
  assert.equal((await c.exec("t1", ["echo", "hi"])).exitCode, 0);
  await assert.rejects(connect({ url: d.url, token }), (e: unknown) => /self[- ]signed|unable to verify|certificate/i.test(String((e as Error).message)));
  await assert.rejects(connect({ url: d.url.replace("https", "http"), token }));
  await assert.rejects(connect({ url: d.url, ca }), code("UNAUTHORIZED"));
  // The CLI over https: MVM_URL, MVM_TOKEN and MVM_CA.
  const ps = await cli(dir.home, ["ps", "-a", "--json"], { MVM_URL: d.url, MVM_TOKEN: token, MVM_CA: cert });
  assert.equal(ps.code, 0, ps.stderr);
  assert.deepEqual((JSON.parse(ps.stdout) as Array<{ name: string }>).map((v) => v.name), ["t1"]);
  const untrusted = await cli(dir.home, ["ps", "--json"], { MVM_URL: d.url, MVM_TOKEN: token });
  assert.equal(untrusted.code, 125);
  // A client that opens a connection and never begins its handshake is cut off.
  const silent = createConnection({ port: d.port, host: "127.0.0.1" });
  silent.on("error", () => undefined);
  await once(silent, "connect");
  const t0 = Date.now();
  await new Promise((r) => silent.once("close", r));
  assert.ok(Date.now() - t0 < 4000, `cut after ${Date.now() - t0} ms`);
  await c.remove("t1", { force: true });
});

test("50 concurrent create/delete calls over TCP leave exactly the expected VMs and no fake QEMU", T, async (t) => {
  const { h, d } = await setup(t);
  const c = d.as(await d.token("load"));
  const names = Array.from({ length: 50 }, (_, i) => `c${i}`);
  const made = await Promise.allSettled(names.map((n) => c.create({ name: n })));
  assert.deepEqual(made.filter((r) => r.status === "rejected"), []);
  await Promise.all(names.slice(0, 10).map((n) => c.start(n)));
  assert.equal(h.pids().length, 10);
  // Deleting the even ones (five of them running, removed by force) while the odd ones are listed and read.
  const calls: Array<Promise<unknown>> = names.flatMap((n, i): Array<Promise<unknown>> => (i % 2 === 0 ? [c.remove(n, { force: true })] : [c.get(n), c.list()]));
  const settled = await Promise.allSettled(calls);
  assert.deepEqual(settled.filter((r) => r.status === "rejected").map((r) => String((r).reason)), []);
  const left = (await d.root.list()).map((v) => v.name).sort();
  assert.deepEqual(left, names.filter((_, i) => i % 2 === 1).sort());
  await waitFor(() => h.pids().length === 5, "the removed VMs' QEMUs to go", 10_000);
  await Promise.all(left.map((n) => c.remove(n, { force: true })));
  assert.deepEqual(await d.root.list(), []);
  await waitFor(() => h.pids().length === 0, "every fake QEMU to go", 10_000);
});

test("slow clients are cut off: headers that trickle in, a connection that sends nothing", T, async (t) => {
  const { d } = await setup(t, { listen: "127.0.0.1:0" }, { headersMs: 1000, keepAliveMs: 1000 });
  const token = await d.token("slow");
  const cutAfter = async (start: (s: ReturnType<typeof createConnection>) => void): Promise<number> => {
    const s = createConnection({ port: d.port, host: "127.0.0.1" });
    s.on("error", () => undefined);
    await once(s, "connect");
    const t0 = Date.now();
    const closed = new Promise((r) => s.once("close", r));
    start(s);
    await closed;
    return Date.now() - t0;
  };
  // One header byte every 200 ms: never a complete head.
  const trickle = await cutAfter((s) => {
    s.write(`GET /v1/vms HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token}\r\n`);
    const timer = setInterval(() => s.writable && s.write("X"), 200);
    s.once("close", () => clearInterval(timer));
  });
  assert.ok(trickle >= 900 && trickle < 4000, `cut after ${trickle} ms`);
  const silent = await cutAfter(() => undefined);
  assert.ok(silent < 4000, `a silent connection was cut after ${silent} ms`);
  // The daemon serves on meanwhile.
  assert.deepEqual(await d.as(token).list(), []);
});

// The real CLI and daemon (src/daemon/main.ts) with the fake QEMU: nothing boots, nothing needs guest artefacts.
function cli(home: string, args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  const e: NodeJS.ProcessEnv = { ...process.env, MVM_HOME: home, MVM_QEMU: FAKE_QEMU, MVM_QEMU_MICROVM: "/nonexistent", MVM_TEMPLATES: "0", MVM_JAIL: "0", MVM_POOL_SIZE: "0", ...env };
  if (!env.MVM_URL) delete e.MVM_URL;
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { env: e, timeout: 30_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof (err as { code?: unknown }).code === "number" ? (err as { code: number }).code : -1) : 0, stdout, stderr });
    });
  });
}

const freePort = async (): Promise<number> => {
  const s = createServer().listen(0, "127.0.0.1");
  await once(s, "listening");
  const port = (s.address() as { port: number }).port;
  s.close();
  await once(s, "close");
  return port;
};

test("mvm daemon --listen: a non-loopback address without TLS is refused with the reason; the kept setting serves the on-demand daemon; mvm token create|ls|rm", T, async (t) => {
  const h = new FakeHome();
  t.after(async () => {
    try {
      process.kill(Number(readFileSync(join(h.home, "daemon.pid"), "utf8")), "SIGTERM");
    } catch {
      /* not running */
    }
    await waitFor(() => h.pids().length === 0, "the VMs to go");
    await h.close();
  });
  const refused = await cli(h.home, ["daemon", "--listen", "0.0.0.0:0"]);
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /refusing to listen on 0\.0\.0\.0:0 without TLS/);
  assert.match(refused.stderr, /hint: give --tls-cert FILE --tls-key FILE/);
  assert.match(refused.stdout, /^error \{"error":"INVALID_ARGUMENT"/);
  // The foreground daemon with a loopback listener, stopped by SIGTERM (its stream ends, it exits 0).
  const port = await freePort();
  const fg = spawn(process.execPath, [CLI, "daemon", "--listen", `127.0.0.1:${port}`], { env: { ...process.env, MVM_HOME: h.home, MVM_QEMU: FAKE_QEMU, MVM_JAIL: "0", MVM_TEMPLATES: "0" }, stdio: ["ignore", "pipe", "pipe"] });
  let err = "";
  fg.stderr.on("data", (b: Buffer) => (err += b.toString()));
  await new Promise<void>((r) => fg.stdout.on("data", (b: Buffer) => b.toString().includes("ready") && r()));
  assert.match(err, new RegExp(`serving on http://127\\.0\\.0\\.1:${port} for tokens`));
  assert.equal((await raw(`http://127.0.0.1:${port}`, "GET", "/v1/vms")).status, 401);
  // A stream open on each listener (a log follow) does not hold the shutdown up for more than its grace.
  const fgToken = JSON.parse((await cli(h.home, ["token", "create", "fg", "--json"])).stdout) as { token: string };
  const fgRemote = new MvmClient({ url: `http://127.0.0.1:${port}`, token: fgToken.token });
  await fgRemote.create({ name: "follow" });
  const following = [fgRemote, new MvmClient(join(h.home, "mvm.sock"))].map((c) => c.logs("follow", { follow: true, onData: () => undefined }).then(() => "ended", () => "cut"));
  await new Promise((r) => setTimeout(r, 300));
  const t0 = Date.now();
  fg.kill("SIGTERM");
  const [exitCode] = (await once(fg, "exit")) as [number];
  assert.equal(exitCode, 0);
  assert.ok(Date.now() - t0 < 8000, `the daemon took ${Date.now() - t0} ms to stop`);
  assert.deepEqual((await Promise.all(following)).length, 2);

  // Kept: config set/get/unset, validated.
  const port2 = await freePort();
  assert.equal((await cli(h.home, ["config", "set", "listen", "nope"])).code, 125);
  assert.equal((await cli(h.home, ["config", "set", "colour", "blue"])).code, 125);
  assert.equal((await cli(h.home, ["config", "set", "listen", `127.0.0.1:${port2}`])).code, 0);
  assert.equal((await cli(h.home, ["config", "get", "listen"])).stdout, `127.0.0.1:${port2}\n`);
  assert.deepEqual(JSON.parse((await cli(h.home, ["config", "get", "--json"])).stdout), { listen: `127.0.0.1:${port2}` });
  // (The first command from here starts the daemon on demand, with the kept setting.)
  assert.equal((await cli(h.home, ["token", "rm", "fg"])).code, 0);
  assert.equal((await cli(h.home, ["rm", "follow"])).code, 0);
  // The daemon the CLI starts on demand listens there; the token made through the CLI works on it.
  const made = await cli(h.home, ["token", "create", "ci", "--role", "user", "--max-vms", "1", "--json"]);
  assert.equal(made.code, 0, made.stderr);
  const tok = JSON.parse(made.stdout) as { token: string; name: string; role: string; quota: { maxVms: number } };
  assert.deepEqual([tok.name, tok.role, tok.quota.maxVms], ["ci", "user", 1]);
  const plain = await cli(h.home, ["token", "create", "ro", "--role", "read"]);
  assert.match(plain.stdout, /^mvm_[A-Za-z0-9_-]{43}\n$/);
  const remote = new MvmClient({ url: `http://127.0.0.1:${port2}`, token: tok.token });
  await remote.create({ name: "from-afar" });
  await assert.rejects(remote.create({ name: "second" }), code("QUOTA_EXCEEDED"));
  // Through the CLI too, with MVM_URL and MVM_TOKEN.
  const ps = await cli(h.home, ["ps", "-a", "--json"], { MVM_URL: `http://127.0.0.1:${port2}`, MVM_TOKEN: tok.token });
  assert.deepEqual((JSON.parse(ps.stdout) as Array<{ name: string }>).map((v) => v.name), ["from-afar"]);
  const ls = await cli(h.home, ["token", "ls", "--json"]);
  const listed = JSON.parse(ls.stdout) as Array<Record<string, unknown>>;
  assert.deepEqual(listed.map((x) => [x.name, x.role]), [["ci", "user"], ["ro", "read"]]);
  assert.ok(!ls.stdout.includes(tok.token.slice(4)), "ls never shows a token");
  assert.equal(typeof listed[0]!.lastUsedAt, "string");
  assert.match((await cli(h.home, ["token", "ls"])).stdout, /^NAME\s+ROLE\s+QUOTA\s+CREATED\s+LAST USED\nci\s+user\s+1 VMs\s+\S+\s+\S+\nro\s+read\s+-\s+\S+\s+never\n$/);
  const rm = await cli(h.home, ["token", "rm", "ci", "--json"]);
  assert.deepEqual(JSON.parse(rm.stdout), { removed: ["ci"] });
  await assert.rejects(remote.list(), code("UNAUTHORIZED"));
  assert.equal((JSON.parse((await cli(h.home, ["token", "rm", "ci", "--json"])).stdout) as { error: string }).error, "NOT_FOUND");
  assert.equal((await cli(h.home, ["config", "unset", "listen"])).code, 0);
  assert.deepEqual(JSON.parse((await cli(h.home, ["config", "get", "--json"])).stdout), {});
  assert.equal((await cli(h.home, ["rm", "-f", "from-afar"])).code, 0);
});

test("a user token's event stream carries its own VMs' events only; /metrics is not for user tokens (admin and read tokens read it)", T, async (t) => {
  const { d } = await setup(t);
  const [a, b, read] = await Promise.all([d.token("a"), d.token("b"), d.token("dash", { role: "read" })]);
  await d.as(b).create({ name: "b-1" });
  await d.as(a).create({ name: "a-1" });
  await d.as(b).create({ name: "b-2" });
  await d.as(a).create({ name: "a-2" });
  await d.as(b).remove("b-2");
  await d.as(a).remove("a-2");
  const names = async (token: string): Promise<string[]> => {
    const seen: string[] = [];
    const ac = new AbortController();
    const timer = setTimeout(() => ac.abort(), 5000);
    try {
      for await (const e of d.as(token).events({ since: 0, types: ["vm."], signal: ac.signal })) {
        if ("vm" in e && e.vm) seen.push(`${e.type} ${e.vm.name}`);
        if (seen.length >= 6 || seen.includes("vm.removed a-2")) break;
      }
    } catch {
      /* aborted: what was seen is the answer */
    } finally {
      clearTimeout(timer);
      ac.abort();
    }
    return seen;
  };
  assert.deepEqual(await names(a), ["vm.created a-1", "vm.created a-2", "vm.removed a-2"]);
  const all = await names(read);
  assert.deepEqual(all, ["vm.created b-1", "vm.created a-1", "vm.created b-2", "vm.created a-2", "vm.removed b-2", "vm.removed a-2"]);
  const m = await raw(d.url, "GET", "/metrics", { authorization: `Bearer ${a}` });
  assert.deepEqual([m.status, m.body.error], [403, "FORBIDDEN"]);
  const ok = await new Promise<number>((resolve, reject) => request(new URL("/metrics", d.url), { headers: { authorization: `Bearer ${read}` } }, (res) => {
    res.resume();
    resolve(res.statusCode ?? 0);
  }).on("error", reject).end());
  assert.equal(ok, 200);
});

test("request ids and the request log: ids echoed or made, one line per request of either listener, naming the token, no secret", T, async (t) => {
  const { h, d } = await setup(t);
  const token = await d.token("logged");
  const mine = await raw(d.url, "GET", "/v1/vms", { authorization: `Bearer ${token}`, "x-request-id": "client-id-1" });
  assert.deepEqual([mine.status, mine.headers["x-request-id"]], [200, "client-id-1"]);
  const refused = await raw(d.url, "GET", "/v1/vms?token=leaked-secret", { authorization: "Bearer mvm_wrong", "x-request-id": "bad id / with spaces" });
  assert.equal(refused.status, 401);
  const made = String(refused.headers["x-request-id"]);
  assert.match(made, /^[0-9a-f]{16}$/);
  await d.root.list();
  // Upgraded streams too: a refusal (no such VM) and a console taken and closed.
  assert.equal((await upgrade(d.port, "/v1/vms/nope/exec", "mvm-exec", token)).status, 404);
  await d.as(token).create({ name: "logged-vm" });
  await d.as(token).start("logged-vm");
  assert.equal((await upgrade(d.port, "/v1/vms/logged-vm/console", "mvm-console", token)).status, 101);
  await new Promise((r) => setTimeout(r, 200)); // the daemon sees the close
  await d.as(token).remove("logged-vm", { force: true });
  await d.stop(); // the log is written out at shutdown
  const text = readFileSync(join(h.home, "requests.log"), "utf8");
  assert.ok(!text.includes(token) && !text.includes("leaked-secret"), "no token in the log");
  const lines = text.trim().split("\n").map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.msg === "request");
  const byId = (id: string) => lines.find((l) => l.id === id);
  assert.deepEqual([byId("client-id-1")?.listener, byId("client-id-1")?.caller, byId("client-id-1")?.role, byId("client-id-1")?.status], ["tcp", "logged", "user", 200]);
  assert.deepEqual([byId(made)?.status, byId(made)?.caller, byId(made)?.url], [401, undefined, "/v1/vms?token=-"]);
  assert.ok(lines.some((l) => l.listener === "unix" && l.caller === "root" && l.url === "/v1/vms"), text.slice(-1000));
  const upgrades = lines.filter((l) => l.plane === "upgrade").map((l) => [l.listener, l.protocol, l.url, l.status]);
  assert.deepEqual(upgrades, [["tcp", "mvm-exec", "/v1/vms/nope/exec", 404], ["tcp", "mvm-console", "/v1/vms/logged-vm/console", 101]]);
});
