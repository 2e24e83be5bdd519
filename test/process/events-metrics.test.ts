// GET /v1/events, GET /metrics and GET /v1/vms/:ref/stats of a real daemon (http-daemon.ts: the HTTP API
// over the fake QEMU), as clients see them: the library's event iterator, raw sockets, the text format.

import assert from "node:assert/strict";
import { execFile, spawn } from "node:child_process";
import { writeFileSync } from "node:fs";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { request } from "node:http";
import { connect } from "node:net";
import { join } from "node:path";
import { test, type TestContext } from "node:test";
import { Value } from "@sinclair/typebox/value";
import { VmStatsSchema } from "../../src/api/event-schemas.js";
import { MvmClient, type StreamedEvent } from "../../src/client/client.js";
import { parseMetrics } from "../support/prom-text.js";
import { FakeHome, waitFor } from "./harness.js";
import { startHttpDaemon, type HttpDaemon } from "./http-daemon.js";

const T = { timeout: 60_000 };
const CLI = fileURLToPath(new URL("../../src/cli/main.js", import.meta.url));

async function setup(t: TestContext, env: Record<string, string> = {}): Promise<{ h: FakeHome; d: HttpDaemon; client: MvmClient }> {
  const h = new FakeHome();
  const old = Object.fromEntries(Object.keys(env).map((k) => [k, process.env[k]]));
  Object.assign(process.env, env); // the daemon child inherits them
  let d: HttpDaemon;
  try {
    d = await startHttpDaemon(h);
  } finally {
    for (const [k, v] of Object.entries(old)) if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
  const client = new MvmClient(d.socket);
  t.after(async () => {
    for (const vm of await client.list().catch(() => [])) await client.remove(vm.id, { force: true }).catch(() => undefined);
    await d.stop();
    await h.close();
  });
  return { h, d, client };
}

/** Follows the stream in the background; `until` waits for an event that matches. */
function follow(client: MvmClient, o: { since?: number; vm?: string; types?: string[] } = {}) {
  const abort = new AbortController();
  const seen: StreamedEvent[] = [];
  const done = (async () => {
    for await (const e of client.events({ ...o, signal: abort.signal })) seen.push(e);
  })().catch((e: Error) => (e.name === "AbortError" ? undefined : Promise.reject(e)));
  return {
    seen,
    until: async (match: (e: StreamedEvent) => boolean, what: string) => {
      await waitFor(() => seen.some(match), what, 10_000);
    },
    stop: async () => {
      abort.abort();
      await done;
    },
  };
}

const states = (seen: StreamedEvent[], id: string) => seen.flatMap((e) => (e.type === "vm.state" && e.vm.id === id ? [`${e.from}→${e.to}`] : []));

async function get(socketPath: string, path: string): Promise<{ status: number; type: string; body: string }> {
  return new Promise((resolve, reject) => {
    request({ socketPath, path }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (d: string) => (body += d));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, type: String(res.headers["content-type"]), body }));
    })
      .on("error", reject)
      .end();
  });
}

test("a VM's life as events: created, each state change in order with increasing ids, its commands, removed", T, async (t) => {
  const { client } = await setup(t);
  const f = follow(client);
  // The stream is open once the daemon has answered its headers; a create just after must be in it.
  await new Promise((r) => setTimeout(r, 200));
  const vm = await client.create({ name: "ev" });
  await client.start("ev");
  const r = await client.exec("ev", ["sh", "-c", "exit 3"]);
  assert.equal(r.status, 3);
  await client.stop("ev");
  await client.remove("ev");
  await f.until((e) => e.type === "vm.removed" && e.vm.id === vm.id, "vm.removed");
  await f.stop();
  const mine = f.seen.filter((e) => "vm" in e && e.vm?.id === vm.id);
  assert.equal(mine[0]?.type, "vm.created");
  assert.deepEqual(states(mine, vm.id), ["created→starting", "starting→running", "running→stopping", "stopping→stopped"]);
  const start = mine.find((e) => e.type === "command.start");
  const exit = mine.find((e) => e.type === "command.exit");
  assert.ok(start?.type === "command.start" && exit?.type === "command.exit");
  assert.deepEqual(start.argv, ["sh", "-c", "exit 3"]);
  assert.equal(exit.session, start.session);
  assert.equal(exit.status, 3);
  assert.equal(mine.at(-1)?.type, "vm.removed");
  const ids = f.seen.map((e) => e.id!);
  assert.ok(ids.every((id, i) => i === 0 || id === ids[i - 1]! + 1), `ids increase by one: ${ids.join(",")}`);
  assert.ok(mine.every((e) => "vm" in e && e.vm?.name === "ev"));
});

test("disconnect and resume with Last-Event-ID: what happened meanwhile, once each, then live", T, async (t) => {
  const { client } = await setup(t);
  const first = follow(client);
  await new Promise((r) => setTimeout(r, 200));
  const vm = await client.create({ name: "re" });
  await first.until((e) => e.type === "vm.created", "vm.created");
  await first.stop();
  const last = first.seen.at(-1)!.id!;
  // Meanwhile, with nobody listening:
  await client.start("re");
  await client.pause("re");
  // Resumed through the header, as a browser's EventSource does (the library sends ?since=).
  const raw = await new Promise<string>((resolve, reject) => {
    const req = request({ socketPath: client.socketPath, path: "/v1/events", headers: { "last-event-id": String(last) } }, (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (d: string) => {
        text += d;
        if ((text.match(/\nevent: vm\.state\n/g) ?? []).length >= 3) {
          req.destroy();
          resolve(text);
        }
      });
    });
    req.on("error", reject);
    req.end();
  });
  const ids = [...raw.matchAll(/^id: (\d+)$/gm)].map((m) => Number(m[1]));
  assert.deepEqual(ids, [last + 1, last + 2, last + 3], "the three state changes, nothing twice, nothing missing");
  assert.doesNotMatch(raw, /event: reset/);
  // The library resumes the same way, and then goes on live.
  const second = follow(client, { since: last });
  await second.until((e) => e.type === "vm.state" && e.to === "paused", "the replayed pause");
  await client.resume("re");
  await second.until((e) => e.type === "vm.state" && e.from === "paused" && e.to === "running", "the live resume");
  await second.stop();
  assert.deepEqual(states(second.seen, vm.id), ["created→starting", "starting→running", "running→paused", "paused→running"]);
  assert.deepEqual(second.seen.map((e) => e.id), [last + 1, last + 2, last + 3, last + 4]);
  // An id from long ago (or another daemon): reset first.
  const old = follow(client, { since: 5 });
  await old.until((e) => e.type === "vm.state", "the replay after the reset");
  await old.stop();
  assert.equal(old.seen[0]?.type, "reset");
  await client.kill("re");
});

test("?vm= and ?types= filter the stream", T, async (t) => {
  const { client } = await setup(t);
  await client.create({ name: "fa" });
  const b = await client.create({ name: "fb" });
  await client.start("fb");
  const f = follow(client, { since: 0, vm: "fb", types: ["vm.state"] });
  await f.until((e) => e.type === "vm.state" && e.to === "running", "fb running");
  await f.stop();
  const real = f.seen.filter((e) => e.type !== "reset");
  assert.ok(real.length >= 2);
  assert.ok(real.every((e) => e.type === "vm.state" && e.vm.id === b.id), JSON.stringify(real));
  await client.kill("fb");
});

test("a client that stops reading is cut off; one that reads gets everything", T, async (t) => {
  const { client, d } = await setup(t, { MVM_EVENTS_CLIENT_BYTES: String(64 * 1024) });
  await client.create({ name: "slow" });
  await client.start("slow");
  const slow = connect(d.socket);
  slow.write("GET /v1/events HTTP/1.1\r\nHost: mvm\r\n\r\n");
  slow.pause();
  let closed = false;
  slow.on("close", () => (closed = true));
  slow.on("error", () => undefined);
  const fast = follow(client, { types: ["command.start"] });
  await new Promise((r) => setTimeout(r, 200));
  // Each command.start is ~4 KB (its argv, cut to 16 words of 256 characters): 300 of them, ~1.2 MB, are
  // far beyond the socket buffers and the 64 KiB limit.
  const argv = ["true", ...Array.from({ length: 15 }, () => "x".repeat(256))];
  for (let i = 0; i < 300; i += 6) await Promise.all(Array.from({ length: 6 }, () => client.exec("slow", argv)));
  await fast.until(() => fast.seen.length >= 300, "300 command.start events");
  await fast.stop();
  assert.equal(fast.seen.length, 300);
  slow.resume();
  let tail = "";
  slow.setEncoding("utf8");
  slow.on("data", (s: string) => (tail = (tail + s).slice(-2000)));
  await waitFor(() => closed, "the daemon to close the slow client's connection", 10_000);
  assert.match(tail, /event: overflow\ndata: .*fell behind/);
  assert.ok(d.running(), "the daemon is fine");
  await client.kill("slow");
});

test("/metrics holds the VM with its state, QEMU's CPU and memory and its disks; a hung QMP does not hang it; stats has its shape", T, async (t) => {
  const { h, d, client } = await setup(t);
  const disk = join(h.home, "data.raw");
  writeFileSync(disk, Buffer.alloc(1024 * 1024));
  const vm = await client.create({ name: "met", disks: [disk] });
  await client.start("met");
  await client.create({ name: "hung", append: "fake_qemu.blockstats=hang" });
  await client.start("hung");
  await client.create({ name: "idle" });
  const t0 = performance.now();
  const res = await get(d.socket, "/metrics");
  const took = performance.now() - t0;
  assert.equal(res.status, 200);
  assert.match(res.type, /^text\/plain; version=0\.0\.4/);
  const samples = parseMetrics(res.body).samples;
  const one = (name: string, labels: Record<string, string>) => samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  assert.equal(one("mvm_vm_state", { id: vm.id, name: "met", state: "running" })[0]?.value, 1);
  assert.equal(one("mvm_vm_state", { name: "idle", state: "created" })[0]?.value, 1);
  assert.ok(one("mvm_vm_cpu_seconds_total", { id: vm.id }).reduce((a, s) => a + s.value, 0) > 0, "the fake QEMU has used CPU");
  assert.ok(one("mvm_vm_memory_rss_bytes", { id: vm.id })[0]!.value > 1048576);
  assert.equal(one("mvm_vm_block_read_bytes_total", { id: vm.id, device: "vd0" })[0]?.value, 1048576);
  assert.equal(one("mvm_vm_block_write_ops_total", { id: vm.id, device: "vd0" })[0]?.value, 4);
  assert.ok(one("mvm_vm_ready_seconds", { id: vm.id })[0]!.value > 0);
  assert.equal(one("mvm_vms", { state: "running" })[0]?.value, 2);
  // The hung monitor: reported down, its other figures there, the scrape bounded by the QMP deadline.
  assert.equal(one("mvm_vm_stats_up", { name: "hung", source: "qmp" })[0]?.value, 0);
  assert.ok(one("mvm_vm_memory_rss_bytes", { name: "hung" })[0]!.value > 0);
  assert.ok(took < 3000, `the scrape took ${took} ms`);
  // Requests are counted by route pattern and status.
  await client.get("met");
  const again = parseMetrics((await get(d.socket, "/metrics")).body).samples;
  assert.ok(again.some((s) => s.name === "mvm_http_requests_total" && s.labels.route === "/v1/vms/:ref" && s.labels.status === "200" && s.labels.method === "GET" && s.value >= 1));
  assert.ok(again.some((s) => s.name === "mvm_http_request_duration_seconds_count" && s.labels.route === "/metrics"));

  const stats = await client.stats("met");
  assert.ok(Value.Check(VmStatsSchema, stats), JSON.stringify([...Value.Errors(VmStatsSchema, stats)].slice(0, 3)));
  assert.equal(stats.state, "running");
  assert.ok(stats.cpu!.totalSeconds > 0 && stats.memory!.rssBytes > 0 && stats.uptimeSeconds! >= 0);
  assert.deepEqual(stats.block, [{ device: "vd0", readBytes: 1048576, writeBytes: 65536, readOps: 16, writeOps: 4, flushOps: 2 }]);
  assert.equal(stats.net?.available, false);
  assert.deepEqual(stats.unavailable, []);
  const idle = await client.stats("idle");
  assert.ok(Value.Check(VmStatsSchema, idle));
  assert.equal(idle.cpu, undefined);
  assert.match(idle.unavailable.join(), /created/);
  const hungStats = await client.stats("hung");
  assert.match(hungStats.unavailable.join(), /query-blockstats/);
  const missing = await get(d.socket, "/v1/vms/nope/stats");
  assert.equal(missing.status, 404);
  for (const n of ["met", "hung"]) await client.kill(n);
});

test("mvm events prints each event as it comes (NDJSON with --json, --vm filters) and ends on SIGINT; mvm stats", T, async (t) => {
  const { h, client } = await setup(t);
  const env = { ...process.env, MVM_HOME: h.home };
  await client.create({ name: "other" });
  const cli = (json: boolean) => {
    const child = spawn(process.execPath, [CLI, "events", "--vm", "cli", "--since", "0", ...(json ? ["--json"] : [])], { env, stdio: ["ignore", "pipe", "pipe"] });
    const lines: string[] = [];
    createInterface({ input: child.stdout }).on("line", (l) => lines.push(l));
    let err = "";
    child.stderr.on("data", (b: Buffer) => (err += b.toString()));
    const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
    return { child, lines, exited, err: () => err };
  };
  const vm = await client.create({ name: "cli" });
  await client.start("cli");
  const json = cli(true);
  const human = cli(false);
  const wanted = (l: string[]) => l.some((x) => x.includes("running"));
  await waitFor(() => wanted(json.lines) && wanted(human.lines), `both CLIs to print cli's start (${json.err()}${human.err()})`, 10_000);
  for (const c of [json, human]) c.child.kill("SIGINT");
  assert.deepEqual(await Promise.all([json.exited, human.exited]), [0, 0]);
  const parsed = json.lines.map((l) => JSON.parse(l) as StreamedEvent).filter((e) => e.type !== "reset");
  assert.ok(parsed.every((e) => "vm" in e && e.vm?.id === vm.id), "--vm cli: only its events");
  assert.deepEqual(states(parsed, vm.id), ["created→starting", "starting→running"]);
  assert.ok(parsed.every((e) => typeof e.id === "number"));
  assert.ok(human.lines.some((l) => /^\d{4}-\d\d-\d\dT\S+ {2}vm\.state +cli \([0-9a-f]+\) {2}starting → running$/.test(l)), human.lines.join("\n"));

  const run = promisify(execFile);
  const out = await run(process.execPath, [CLI, "stats", "cli", "--json"], { env });
  const st = JSON.parse(out.stdout) as { name: string; cpu?: { totalSeconds: number } };
  assert.equal(st.name, "cli");
  assert.ok(st.cpu!.totalSeconds > 0);
  assert.match((await run(process.execPath, [CLI, "stats", "cli"], { env })).stdout, /^cpu +\d+\.\d\d s \(user/m);
  await client.kill("cli");
});

test("image imports as events: progress and done; a damaged image's error", T, async (t) => {
  const { h, client } = await setup(t);
  const run = promisify(execFile);
  const good = join(h.home, "good.qcow2");
  const bad = join(h.home, "bad.qcow2");
  await run("qemu-img", ["create", "-q", "-f", "qcow2", good, "16M"]);
  // A qcow2 header over garbage: qemu-img check refuses it once the import has started.
  await run("qemu-img", ["create", "-q", "-f", "qcow2", bad, "16M"]);
  const { openSync, writeSync, closeSync } = await import("node:fs");
  const fd = openSync(bad, "r+");
  writeSync(fd, Buffer.alloc(4096, 0xff), 0, 4096, 65536 * 3);
  writeSync(fd, Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]), 0, 8, 40); // l1_table_offset
  closeSync(fd);
  const f = follow(client, { types: ["image."] });
  await new Promise((r) => setTimeout(r, 200));
  await client.importImage(good, "good");
  await assert.rejects(client.importImage(bad, "bad"));
  await f.until((e) => e.type === "image.error", "the damaged image's error");
  await f.stop();
  const about = (image: string) => f.seen.filter((e) => "image" in e && e.image === image).map((e) => e.type);
  assert.deepEqual(about("good").slice(0, 1), ["image.progress"]);
  assert.equal(about("good").at(-1), "image.done");
  assert.equal(about("bad").at(-1), "image.error");
  const err = f.seen.find((e) => e.type === "image.error");
  assert.ok(err?.type === "image.error" && err.op === "import" && err.error === "INVALID_IMAGE", JSON.stringify(err));
});
