// The OpenAPI document (GET /v1/openapi.json) against what really goes over the wire, on a real daemon
// (http-daemon.ts, the fake QEMU): every method of the typed client (MvmClient, GuestFiles, Command) is
// called, each request it sends must be a route the document has with that method (and only documented
// query parameters), and every answer the daemon gave must match the document (openapi-check.ts, which
// the daemon of every process test runs: its stop() fails on a mismatch). A method added to the client
// without a call here fails the coverage check.

import assert from "node:assert/strict";
import { createRequire, syncBuiltinESMExports } from "node:module";
import type { ClientRequest, RequestOptions } from "node:http";
import { after, before, test } from "node:test";
import { Command, GuestFiles, MvmClient } from "../../src/client/client.js";
import { FakeHome } from "./harness.js";
import { startHttpDaemon, type HttpDaemon } from "./http-daemon.js";
import { responseChecker, type OpenApiDoc } from "./openapi-check.js";

const T = { timeout: 60_000 };

// Every request the client sends, as it sends it: http.request wrapped, and the ESM bindings synced to it.
const http = createRequire(import.meta.url)("node:http") as typeof import("node:http");
const sent: Array<{ method: string; path: string }> = [];
const original = http.request;
(http as { request: unknown }).request = (o: RequestOptions, ...rest: unknown[]): ClientRequest => {
  sent.push({ method: (o.method ?? "GET").toUpperCase(), path: o.path ?? "/" });
  return (original as (...a: unknown[]) => ClientRequest)(o, ...rest);
};
syncBuiltinESMExports();

let h: FakeHome;
let d: HttpDaemon;
let doc: OpenApiDoc & { paths: Record<string, Record<string, { parameters?: Array<{ name: string; in: string }> }>> };

before(async () => {
  h = new FakeHome();
  d = await startHttpDaemon(h, { netns: true });
});

after(async () => {
  (http as { request: unknown }).request = original;
  syncBuiltinESMExports();
  await d?.stop();
  await h?.close();
});

/** Each step's name is the method it covers ("client.exec", "files.stat", "command.wait"). Errors are answers too. */
async function exercise(c: MvmClient): Promise<Set<string>> {
  const covered = new Set<string>();
  const step = async (name: string, fn: () => Promise<unknown>, o: { mayFail?: boolean } = { mayFail: true }) => {
    covered.add(name);
    const timer = new AbortController();
    const t = setTimeout(() => timer.abort(), 10_000);
    try {
      await Promise.race([fn(), new Promise((_, reject) => timer.signal.addEventListener("abort", () => reject(new Error(`${name} took over 10 s`))))]);
    } catch (e) {
      if (!o.mayFail || /took over/.test(String(e))) throw e;
    } finally {
      clearTimeout(t);
    }
  };
  const ok = { mayFail: false };
  await step("client.info", () => c.info(), ok);
  await step("client.create", () => c.create({ name: "oa" }), ok);
  await step("client.start", () => c.start("oa"), ok);
  await step("client.list", () => c.list(), ok);
  await step("client.get", () => c.get("oa"), ok);
  await step("client.exec", () => c.exec("oa", ["sh", "-c", "echo hi; echo oops >&2"]), ok);
  await step("client.execStream", async () => {
    const s = await c.execStream("oa", ["cat"]);
    s.write("x\n");
    s.resize(24, 80);
    s.end();
    await s.result;
    s.close();
  }, ok);
  await step("client.console", async () => {
    const con = await c.console("oa");
    con.write("echo\r");
    con.destroy();
  }, ok);
  let cmd: Command | undefined;
  await step("client.spawn", async () => void (cmd = await c.spawn("oa", ["cat"], { stdin: true })), ok);
  await step("client.command", () => Promise.resolve(void (cmd = c.command("oa", cmd!.id))), ok);
  await step("command.info", () => cmd!.info(), ok);
  await step("command.write", () => cmd!.write("line\n"), ok);
  await step("command.closeStdin", () => cmd!.closeStdin(), ok);
  await step("command.wait", () => cmd!.wait(), ok);
  await step("command.output", async () => {
    for await (const _ of cmd!.output()) void _;
  }, ok);
  await step("command.stdout", async () => {
    for await (const _ of cmd!.stdout()) void _;
  }, ok);
  await step("command.stderr", async () => {
    for await (const _ of cmd!.stderr()) void _;
  }, ok);
  await step("command.kill", () => cmd!.kill()); // it has ended: NOT_FOUND
  await step("command.remove", () => cmd!.remove(), ok);
  await step("client.sessions", () => c.sessions("oa"), ok);
  await step("client.signal", () => c.signal("oa", "job", 15));
  let files: GuestFiles | undefined;
  await step("client.files", () => Promise.resolve(void (files = c.files("oa"))), ok);
  // The fake agent has no file operations: every one is a FILE_ERROR, which is an answer to check too.
  for (const [name, fn] of Object.entries({
    stat: () => files!.stat("/etc"),
    exists: () => files!.exists("/etc"),
    list: () => files!.list("/etc"),
    mkdir: () => files!.mkdir("/tmp/d", { parents: true, mode: 0o755 }),
    rename: () => files!.rename("/tmp/d", "/tmp/e"),
    remove: () => files!.remove("/tmp/e", { recursive: true }),
    chmod: () => files!.chmod("/tmp/e", 0o700),
    chown: () => files!.chown("/tmp/e", "root"),
    symlink: () => files!.symlink("/tmp/l", "/etc"),
    readTo: () => files!.readTo("/etc/hostname", () => undefined),
    read: () => files!.read("/etc/hostname"),
    readText: () => files!.readText("/etc/hostname"),
    write: () => files!.write("/tmp/f", "data", { mode: 0o600, parents: true }),
    // The fake agent has no "watch" (nor "forward"): AGENT_CAPABILITY, a 409 the document names.
    watch: () => files!.watch("/tmp"),
  })) await step(`files.${name}`, fn);
  await step("client.forward", () => c.forward("oa", 80));
  await step("client.portForward", async () => (await c.portForward("oa", { guestPort: 80 })).close(), ok);
  await step("client.logs", () => c.logs("oa", { onData: () => undefined }), ok);
  await step("client.logs", () => c.logs("oa", { console: true, onData: () => undefined }), ok);
  await step("client.setLimits", () => c.setLimits("oa", { diskBps: "5M" }));
  await step("client.setTtl", () => c.setTtl("oa", "1h"));
  await step("client.pause", () => c.pause("oa"), ok);
  await step("client.resume", () => c.resume("oa"), ok);
  await step("client.suspend", () => c.suspend("oa")); // the fake cannot save a state
  await step("client.createSnapshot", () => c.createSnapshot("oa", { name: "oa-snap" }));
  await step("client.snapshots", () => c.snapshots(), ok);
  await step("client.getSnapshot", () => c.getSnapshot("nope"));
  await step("client.removeSnapshot", () => c.removeSnapshot("nope"));
  await step("client.networks", () => c.networks(), ok);
  await step("client.createNetwork", () => c.createNetwork("oanet", { subnet: "10.231.7.0/24" }));
  await step("client.removeNetwork", () => c.removeNetwork("oanet"));
  await step("client.volumes", () => c.volumes(), ok);
  await step("client.createVolume", () => c.createVolume("oavol", h.home, { readOnly: true }), ok);
  await step("client.removeVolume", () => c.removeVolume("oavol"), ok);
  await step("client.images", () => c.images(), ok);
  await step("client.removeImage", () => c.removeImage("nope"));
  await step("client.importImage", () => c.importImage("/nonexistent/disk.qcow2", "nope"));
  await step("client.buildImage", () => c.buildImage({ name: "nope", suite: "no such suite!" }));
  // What other parts of issue 13 add to the client (stats, events, tokens), called where this client has them.
  const more = c as unknown as Record<string, ((...a: unknown[]) => unknown) | undefined>;
  const maybe = async (name: string, fn: () => Promise<unknown>) => {
    if (typeof more[name] === "function") await step(`client.${name}`, fn);
  };
  await maybe("stats", () => Promise.resolve(more.stats!("oa")));
  await step("client.statsHistory", () => c.statsHistory("oa"), ok);
  await step("client.hostStatsHistory", () => c.hostStatsHistory(), ok);
  await maybe("events", async () => {
    for await (const e of more.events!({ signal: AbortSignal.timeout(300) }) as AsyncIterable<unknown>) if (e) break;
  });
  await maybe("tokens", () => Promise.resolve(more.tokens!()));
  await maybe("createToken", () => Promise.resolve(more.createToken!("oa-token", { role: "read" })));
  await maybe("removeToken", () => Promise.resolve(more.removeToken!("oa-token")));
  await step("client.stop", () => c.stop("oa"), ok);
  await step("client.create", () => c.create({ name: "ob", command: ["sh", "-c", "echo job"] }), ok);
  await step("client.startAttached", () => c.startAttached("ob", () => undefined), ok);
  await step("client.wait", () => c.wait("ob"), ok);
  await step("client.attach", () => c.attach("ob", () => undefined));
  await step("client.kill", () => c.kill("ob")); // stopped already: WRONG_STATE
  await step("client.remove", () => c.remove("ob"), ok);
  await step("client.run", async () => {
    const vm = await c.run({ name: "oc" });
    await c.kill(vm.id);
  }, ok);
  await step("client.remove", () => c.remove("oa", { force: true }), ok);
  await step("client.prune", () => c.prune(), ok);
  await step("client.createToken", () => c.createToken("oa-token", { role: "user", maxVms: 2, maxMemory: "1G" }), ok);
  await step("client.tokens", () => c.tokens(), ok);
  await step("client.removeToken", () => c.removeToken("oa-token"), ok);
  return covered;
}

/** The methods of a class's prototype that are the API (constructor, getters and private helpers left out). */
function methodsOf(cls: { prototype: object }, prefix: string, helpers: string[]): string[] {
  return Object.getOwnPropertyNames(cls.prototype)
    .filter((n) => n !== "constructor" && !helpers.includes(n) && typeof Object.getOwnPropertyDescriptor(cls.prototype, n)?.value === "function")
    .map((n) => `${prefix}.${n}`);
}

test("every client method's requests are routes of the document, with that method; every answer matched it", T, async () => {
  const c = new MvmClient(d.socket);
  doc = (await fetchDoc(d.socket)) as typeof doc;
  const from = sent.length;
  const covered = await exercise(c);

  const all = [
    ...methodsOf(MvmClient, "client", ["http", "followStream", "imageBuild"]),
    ...methodsOf(GuestFiles, "files", ["http", "op"]),
    ...methodsOf(Command, "command", ["http"]),
  ];
  const missing = all.filter((m) => !covered.has(m));
  assert.deepEqual(missing, [], `client methods this test does not call (add each to exercise() in test/process/openapi.test.ts): ${missing.join(", ")}`);

  const templates = Object.entries(doc.paths).map(([p, ops]) => ({ re: new RegExp(`^${p.replace(/[.*+?^$()|[\]\\]/g, "\\$&").replace(/\{(\w+)\}/g, "[^/]+")}$`), path: p, ops }));
  const requests = sent.slice(from);
  assert.ok(requests.length > 60, `the client sent ${requests.length} requests`);
  const wrong: string[] = [];
  for (const r of requests) {
    const [path, query] = r.path.split("?");
    // The most specific path first (files/content before files/{op}), as the router picks.
    const matching = templates.filter((x) => x.re.test(path!)).sort((x, y) => x.path.split("{").length - y.path.split("{").length);
    const t = matching.find((x) => x.ops[r.method.toLowerCase()]) ?? matching[0];
    const op = t?.ops[r.method.toLowerCase()];
    if (!op) {
      wrong.push(`${r.method} ${r.path}: ${t ? `the document has ${t.path} only for ${Object.keys(t.ops).join(", ")}` : "no path of the document"}`);
      continue;
    }
    const known = new Set((op.parameters ?? []).filter((p) => p.in === "query").map((p) => p.name));
    for (const k of new URLSearchParams(query ?? "").keys()) if (!known.has(k)) wrong.push(`${r.method} ${r.path}: query parameter ${k} is not documented for ${t.path}`);
  }
  assert.deepEqual(wrong, []);

  const answers = d.answers();
  assert.ok(answers.length >= requests.length - 5, `the daemon checked ${answers.length} answers for ${requests.length} requests (upgrades are not HTTP answers)`);
  assert.ok(answers.some((a) => a.status >= 400) && answers.some((a) => a.status === 201) && answers.some((a) => a.route === "/v1/vms/:ref/exec"), "errors, creations and NDJSON streams were among them");
  assert.deepEqual(answers.filter((a) => a.problem), [], "answers that do not match the document");
  assert.deepEqual(answers.filter((a) => a.route === null && a.status !== 404), [], "every request found its route");
});

test("the checker finds what does not match: a wrong body, an undocumented status or type, an error in another shape", T, () => {
  const check = responseChecker(doc);
  const base = { method: "GET", route: "/v1/vms", status: 200, contentType: "application/json", complete: true };
  assert.equal(check({ ...base, body: "[]" }), undefined);
  assert.match(check({ ...base, body: JSON.stringify([{ name: "x" }]) }) ?? "", /must have required property/);
  assert.match(check({ ...base, status: 202, body: "[]" }) ?? "", /status 202 is not documented/);
  assert.match(check({ ...base, contentType: "text/html", body: "[]" }) ?? "", /answered text\/html/);
  assert.match(check({ ...base, status: 404, body: JSON.stringify({ message: "no code" }) }) ?? "", /error 404/);
  assert.match(check({ ...base, route: "/v1/nothing", body: "[]" }) ?? "", /not in the document/);
  const stream = { ...base, method: "POST", route: "/v1/vms/:ref/exec", contentType: "application/x-ndjson" };
  assert.equal(check({ ...stream, body: '{"type":"session","id":"1"}\n{"type":"stdout","data":"aGk="}\n' }), undefined);
  assert.match(check({ ...stream, body: '{"type":"session","id":"1"}\n{"type":"stdout"}\n' }) ?? "", /line 2/);
});

async function fetchDoc(socket: string): Promise<unknown> {
  const { requestJson } = await import("../../src/client/http.js");
  return requestJson({ socketPath: socket }, "GET", "/v1/openapi.json");
}
