// Guest ports and directory watches through the daemon, on real TCG guests: vm.forward and portForward
// reaching a guest's busybox httpd and nc, `mvm port-forward`, a refused port, bad ports, a few MB both
// ways, and watch events while the guest writes, renames and removes files.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { once } from "node:events";
import { get } from "node:http";
import type { Duplex } from "node:stream";
import { test } from "node:test";
import { WebSocket } from "ws";
import type { MvmError } from "../../src/errors.js";
import type { MvmClient } from "../../src/client/client.js";
import type { FileWatchEvent } from "../../src/client/ports.js";
import { startTestDaemon } from "../support/daemon.js";

const CLI = new URL("../../src/cli/main.js", import.meta.url).pathname;
const code = (e: unknown) => (e as MvmError).code;
const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex");

async function readAll(s: Duplex): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of s) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

function httpGet(url: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    get(url, (res) => {
      let body = "";
      res.on("data", (c: Buffer) => (body += c.toString()));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
    }).on("error", reject);
  });
}

/** Retries until the guest's server listens (it starts in the background). */
async function forwardWhenListening(client: MvmClient, vm: string, port: number): Promise<Duplex> {
  for (let i = 0; ; i++) {
    try {
      return await client.forward(vm, port);
    } catch (e) {
      if (code(e) !== "GUEST_PORT" || i > 50) throw e;
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}

test("ports: vm.forward and portForward reach a guest httpd; refused and bad ports; 4 MB both ways through nc; mvm port-forward", { timeout: 240_000 }, async (t) => {
  const d = await startTestDaemon(t);
  const vm = await d.client.run({ name: "pf", memory: "256M" });
  await vm.files.write("/tmp/www/index.html", "hello from the guest\n", { parents: true });
  assert.equal((await vm.exec(["httpd", "-p", "8000", "-h", "/tmp/www"])).status, 0);

  // One raw connection: an HTTP/1.0 request, half-closed, answered and closed by the guest.
  const s = await forwardWhenListening(d.client, "pf", 8000);
  s.end("GET /index.html HTTP/1.0\r\n\r\n");
  const answer = (await readAll(s)).toString();
  assert.match(answer, /^HTTP\/1\.[01] 200/);
  assert.match(answer, /hello from the guest/);

  // A local listener, and a real HTTP client through it.
  const pf = await vm.portForward({ guestPort: 8000 });
  try {
    assert.equal(pf.address, "127.0.0.1");
    const r = await httpGet(`http://127.0.0.1:${pf.port}/index.html`);
    assert.deepEqual(r, { status: 200, body: "hello from the guest\n" });
    const again = await httpGet(`http://127.0.0.1:${pf.port}/index.html`); // each connection its own stream
    assert.equal(again.body, "hello from the guest\n");
  } finally {
    await pf.close();
  }

  // The WebSocket variant: bytes in binary messages, 1000 when the guest side closes; a refusal as 4502.
  const ws = new WebSocket(`ws+unix://${d.home}/mvm.sock:/v1/vms/pf/ports/8000/ws`);
  const frames: Buffer[] = [];
  ws.on("message", (m: Buffer) => frames.push(m));
  await once(ws, "open");
  ws.send(Buffer.from("GET /index.html HTTP/1.0\r\n\r\n"));
  const [wsCode] = (await once(ws, "close")) as [number];
  assert.equal(wsCode, 1000);
  assert.match(Buffer.concat(frames).toString(), /hello from the guest/);
  const refusedWs = new WebSocket(`ws+unix://${d.home}/mvm.sock:/v1/vms/pf/ports/8001/ws`);
  refusedWs.on("error", () => undefined);
  assert.equal(((await once(refusedWs, "close")) as [number])[0], 4502);

  // A VM that is not running: 409 in the usual shape.
  await d.client.create({ name: "off" });
  await assert.rejects(d.client.forward("off", 8000), (e) => code(e) === "WRONG_STATE" && /cannot forward a port of VM off: it is created/.test((e as Error).message) && /mvm start off/.test(String((e as { hint?: string }).hint)));

  // Nothing listens: the guest's own words. Bad ports: 400 before anything is asked of the guest.
  await assert.rejects(d.client.forward("pf", 8001), (e) => code(e) === "GUEST_PORT" && /connect 127\.0\.0\.1:8001: Connection refused/.test((e as Error).message));
  for (const bad of [0, 65536, "http" as unknown as number]) await assert.rejects(d.client.forward("pf", bad), (e) => code(e) === "BAD_REQUEST", String(bad));

  // 4 MB to an echo server (cat on the connection) and back, intact, under the windows both ways.
  const big = randomBytes(4 * 1024 * 1024);
  await vm.spawn(["nc", "-l", "-p", "9000", "-e", "cat"]);
  const echo = await forwardWhenListening(d.client, "pf", 9000);
  const back = readAll(echo);
  echo.end(big);
  assert.equal(sha(await back), sha(big));

  // A reader that waits: the guest's sender blocks (the agent stops reading its socket once the window is
  // used up) instead of the bytes piling up anywhere; then all 32 MB arrive.
  const total = 32 * 1024 * 1024;
  await vm.spawn(["nc", "-l", "-p", "9001", "-e", "sh", "-c", `head -c ${total} /dev/zero; touch /tmp/sent-all`]);
  const slow = await forwardWhenListening(d.client, "pf", 9001);
  slow.pause();
  await new Promise((r) => setTimeout(r, 3000));
  assert.equal(await vm.files.exists("/tmp/sent-all"), false, "the guest sent everything to a reader that did not read");
  slow.end();
  slow.resume();
  assert.equal((await readAll(slow)).length, total);

  // mvm port-forward: foreground, prints the bound address as JSON, each connection a stream.
  const child = spawn(process.execPath, [CLI, "port-forward", "pf", "0:8000", "--json"], { env: { ...process.env, MVM_HOME: d.home }, stdio: ["ignore", "pipe", "pipe"] });
  t.after(() => child.kill("SIGKILL"));
  const bound = await new Promise<{ address: string; port: number; guestPort: number }>((resolve, reject) => {
    let out = "";
    child.stdout.on("data", (c: Buffer) => {
      out += c.toString();
      if (out.includes("\n")) resolve(JSON.parse(out.split("\n")[0]!) as { address: string; port: number; guestPort: number });
    });
    child.once("exit", (c) => reject(new Error(`mvm port-forward exited with ${c}`)));
  });
  assert.equal(bound.address, "127.0.0.1");
  assert.equal(bound.guestPort, 8000);
  assert.equal((await httpGet(`http://127.0.0.1:${bound.port}/index.html`)).body, "hello from the guest\n");
  const exited = new Promise<number | null>((r) => child.once("exit", (c) => r(c)));
  child.kill("SIGINT");
  assert.equal(await exited, 0);
  await vm.remove().catch(() => undefined);
});

test("watch: events while the guest creates, writes, renames, chmods and removes files (recursive); a non-directory is refused", { timeout: 180_000 }, async (t) => {
  const d = await startTestDaemon(t);
  const vm = await d.client.run({ name: "wt", memory: "256M" });
  await vm.files.mkdir("/root/w");
  const w = await vm.files.watch("/root/w", { recursive: true });
  const seen: FileWatchEvent[] = [];
  const collected = (async () => {
    for await (const e of w) {
      seen.push(e);
      if (e.type === "remove" && e.name === "sub/h") break;
    }
  })();
  const script = "echo a > /root/w/f; mkdir /root/w/sub; sleep 1; echo b > /root/w/sub/g; mv /root/w/f /root/w/sub/h; chmod 600 /root/w/sub/h; rm /root/w/sub/h";
  assert.equal((await vm.exec(["sh", "-c", script])).status, 0);
  await Promise.race([collected, new Promise((_, rej) => setTimeout(() => rej(new Error(`events so far: ${JSON.stringify(seen)}`)), 30_000))]);
  const names = seen.map((e) => `${e.type}:${"name" in e ? e.name : ""}`);
  for (const want of ["create:f", "write:f", "create:sub", "create:sub/g", "write:sub/g", "rename:f", "create:sub/h", "chmod:sub/h", "remove:sub/h"]) assert.ok(names.includes(want), `${want} in ${names.join(" ")}`);

  // mvm watch --json: one JSON event per line (touched until the watch, started in the background, sees one).
  const cli = spawn(process.execPath, [CLI, "watch", "wt", "/root/w", "--json"], { env: { ...process.env, MVM_HOME: d.home }, stdio: ["ignore", "pipe", "pipe"] });
  t.after(() => cli.kill("SIGKILL"));
  let cliOut = "";
  cli.stdout.on("data", (c: Buffer) => (cliOut += c.toString()));
  for (let i = 0; !cliOut.includes("\n") && i < 100; i++) {
    await vm.exec(["touch", `/root/w/cli-${i}`]);
    await new Promise((r) => setTimeout(r, 200));
  }
  const first = JSON.parse(cliOut.split("\n")[0]!) as FileWatchEvent;
  assert.equal(first.type, "create");
  assert.match((first as { name: string }).name, /^cli-\d+$/);
  const cliExit = new Promise<number | null>((r) => cli.once("exit", (c) => r(c)));
  cli.kill("SIGINT");
  assert.equal(await cliExit, 0);

  await vm.files.write("/root/plain", "x");
  await assert.rejects(vm.files.watch("/root/plain"), (e) => code(e) === "FILE_ERROR" && /Not a directory/.test((e as Error).message));
  await assert.rejects(vm.files.watch("/nope"), (e) => code(e) === "FILE_NOT_FOUND");
  await assert.rejects(vm.files.watch("relative"), (e) => code(e) === "BAD_REQUEST");
  await vm.remove().catch(() => undefined);
});

test("watch: a consumer that does not read loses events to an overflow event, the agent's memory bounded by the kernel's queue", { timeout: 180_000 }, async (t) => {
  const d = await startTestDaemon(t);
  const vm = await d.client.run({ name: "wf", memory: "256M" });
  // A small inotify queue (new instances take it), so that a few thousand events overflow it.
  assert.equal((await vm.exec(["sh", "-c", "echo 64 > /proc/sys/fs/inotify/max_queued_events && mkdir /root/many"])).status, 0);
  const w = await vm.files.watch("/root/many");
  // 200-byte names: the window (1 MiB) holds ~5000 events, the queue 64 more; 8000 files overflow both.
  const script = 'cd /root/many; n=$(printf "%0200d" 0); i=0; while [ $i -lt 8000 ]; do : > "$i$n"; i=$((i+1)); done';
  assert.equal((await vm.exec(["sh", "-c", script], { timeoutMs: 150_000 })).status, 0);
  let creates = 0;
  let overflowed = false;
  const reading = (async () => {
    for await (const e of w) {
      if (e.type === "create") creates++;
      if (e.type === "overflow") {
        overflowed = true;
        break;
      }
    }
  })();
  await Promise.race([reading, new Promise((_, rej) => setTimeout(() => rej(new Error(`no overflow after ${creates} creates`)), 30_000))]);
  assert.ok(overflowed);
  assert.ok(creates < 8000, `${creates} creates`);
  // The watch still works after it: a new file is seen.
  const w2 = await vm.files.watch("/root/many");
  const seen = (async () => {
    for await (const e of w2) if (e.type === "create" && "name" in e && e.name === "after") return true;
    return false;
  })();
  await vm.exec(["touch", "/root/many/after"]);
  assert.equal(await seen, true);
  await vm.remove().catch(() => undefined);
});
