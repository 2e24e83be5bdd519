// User-mode networking: no NIC by default, published ports, restrict. Traffic stays on this machine:
// the guest talks to servers on the host's loopback (slirp's 10.0.2.2), the host to 127.0.0.1.
import assert from "node:assert/strict";
import { createServer as createHttpServer, get } from "node:http";
import { createServer, type AddressInfo } from "node:net";
import { test } from "node:test";
import { startTestDaemon } from "../support/daemon.js";

/** A port nothing listens on right now. */
async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  const port = (s.address() as AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

function httpGet(url: string): Promise<string> {
  return new Promise((resolve, reject) => {
    get(url, (res) => {
      let body = "";
      res.on("data", (b: Buffer) => (body += b.toString()));
      res.on("end", () => resolve(body));
    }).on("error", reject);
  });
}

test("no network by default: the guest has only loopback", { timeout: 180_000 }, async (t) => {
  const d = await startTestDaemon(t);
  const r = await d.cli(["run", "--rm", "--", "ls", "/sys/class/net"]);
  assert.equal(r.stdout, "lo\n");
});

test("a published port reaches a guest httpd; a port already taken is refused before boot", { timeout: 180_000 }, async (t) => {
  const d = await startTestDaemon(t);
  const port = await freePort();
  await d.client.start((await d.client.create({ name: "web", network: "user", ports: [`${port}:8080`] })).id);
  const up = await d.client.exec("web", ["sh", "-c", "mkdir -p /www && echo hello-from-guest > /www/index.html && httpd -p 8080 -h /www && ip -4 addr show eth0"]);
  assert.equal(up.status, 0);
  let body = "";
  for (let i = 0; i < 20 && !body; i++) {
    body = await httpGet(`http://127.0.0.1:${port}/`).catch(() => "");
    if (!body) await new Promise((r) => setTimeout(r, 250));
  }
  assert.equal(body, "hello-from-guest\n");
  // The same host port for a second VM: a clear error, and that VM stays as it was.
  await d.client.create({ name: "clash", network: "user", ports: [`${port}:80`] });
  const clash = await d.cli(["start", "clash"]);
  assert.equal(clash.code, 125);
  assert.match(clash.stderr, new RegExp(`127\\.0\\.0\\.1:${port}/tcp is already in use`));
  assert.equal((await d.client.get("clash")).state, "created");
});

test("user reaches out; user,restrict does not", { timeout: 180_000 }, async (t) => {
  const d = await startTestDaemon(t);
  const server = createHttpServer((_req, res) => res.end("host-says-hi"));
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  t.after(() => new Promise((r) => server.close(r)));
  const port = (server.address() as AddressInfo).port;
  // busybox wget -T segfaults (Debian 1.35 static); timeout bounds a connection restrict leaves hanging.
  const fetch = ["timeout", "5", "wget", "-q", "-O", "-", `http://10.0.2.2:${port}/`];
  const open = await d.cli(["run", "--rm", "--network", "user", "--", ...fetch]);
  assert.equal(open.code, 0, open.stderr);
  assert.equal(open.stdout, "host-says-hi");
  const closed = await d.cli(["run", "--rm", "--network", "user,restrict", "--", ...fetch]);
  assert.notEqual(closed.code, 0);
  assert.equal(closed.stdout, "");
});
