// A VM's time to live through the daemon's real routes, its VM manager and the fake QEMU: the end time set
// at create (ttl) and shown in the view with the labels, changed (PUT /v1/vms/:ref/ttl) or taken away,
// bad values refused with a hint, and the VM killed and removed at its end — also by the next daemon when
// the one that armed the timer was killed before it fired.

import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { test, type TestContext } from "node:test";
import { MvmClient } from "../../src/client/client.js";
import { startHttpDaemon } from "./http-daemon.js";
import type { FastifyInstance } from "fastify";
import { buildServer } from "../../src/daemon/server.js";
import type { VmManager } from "../../src/daemon/vm-manager.js";
import { FakeHome, alive, waitFor } from "./harness.js";

const T = { timeout: 20000 };

function setup(t: TestContext): { h: FakeHome; m: VmManager; app: FastifyInstance } {
  const h = new FakeHome();
  const m = h.manager();
  const app = buildServer(m, { version: "test", home: h.home });
  t.after(async () => {
    await app.close();
    await m.close();
    await h.close();
  });
  return { h, m, app };
}

type Body = Record<string, unknown> & { error?: string; message?: string; hint?: string; expiresAt?: string };

async function call(app: FastifyInstance, method: "GET" | "POST" | "PUT", url: string, payload?: unknown): Promise<{ status: number; body: Body }> {
  const r = await app.inject({ method, url, ...(payload === undefined ? {} : { payload: JSON.stringify(payload), headers: { "content-type": "application/json" } }) });
  return { status: r.statusCode, body: r.body ? r.json<Body>() : {} };
}

test("ttl at create: expiresAt and labels in the view; changed, removed, refused when malformed; the VM killed and removed at its end", T, async (t) => {
  const { m, app } = setup(t);
  const before = Date.now();
  const created = await call(app, "POST", "/v1/vms", { name: "a", ttl: "10m", labels: { app: "e2b", "e2b/template": "base" } });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  const left = Date.parse(created.body.expiresAt!) - before;
  assert.ok(left >= 600_000 && left < 602_000, `10 minutes from now, got ${left} ms`);
  assert.deepEqual((created.body.spec as { labels: unknown }).labels, { app: "e2b", "e2b/template": "base" });
  assert.equal((created.body.spec as { ttlMs: unknown }).ttlMs, 600_000);

  for (const bad of [{ ttl: "10x" }, { ttl: 0 }, { ttl: "400d" }]) {
    const r = await call(app, "PUT", "/v1/vms/a/ttl", bad);
    assert.equal(r.status, 400, JSON.stringify(r.body));
    assert.equal(r.body.error, "INVALID_SPEC");
    assert.ok(r.body.hint);
  }
  const unknownKey = await call(app, "PUT", "/v1/vms/a/ttl", { ttl: 5, more: 1 });
  assert.equal(unknownKey.status, 400);
  assert.equal((await call(app, "PUT", "/v1/vms/nope/ttl", { ttl: 5 })).status, 404);
  const badLabel = await call(app, "POST", "/v1/vms", { name: "b", labels: { "no spaces": "x" } });
  assert.equal(badLabel.status, 400, JSON.stringify(badLabel.body));

  const none = await call(app, "PUT", "/v1/vms/a/ttl", { ttl: null });
  assert.equal(none.status, 200, JSON.stringify(none.body));
  assert.equal(none.body.expiresAt, undefined, "no end time any more");

  const started = await call(app, "POST", "/v1/vms/a/start");
  assert.equal(started.status, 200, JSON.stringify(started.body));
  const pid = started.body.pid as number;
  const soon = await call(app, "PUT", "/v1/vms/a/ttl", { ttl: 1 });
  assert.equal(soon.status, 200);
  assert.ok(Date.parse(soon.body.expiresAt!) - Date.now() <= 1000);
  assert.equal(m.get("a").state, "running", "not before its end time");
  await waitFor(() => m.list().length === 0, "the VM to be removed at its end time", 5000);
  assert.ok(!alive(pid), "its QEMU was killed");
  assert.equal((await call(app, "GET", "/v1/vms/a")).status, 404);
});

test("a VM whose end time passed while no daemon ran is removed by the next daemon's reconcile, its QEMU killed", T, async (t) => {
  const h = new FakeHome();
  t.after(() => h.close());
  const first = await h.childDaemon();
  await first.call("create", { name: "late", ttl: 1 });
  await first.call("create", { name: "keep", ttl: "1h" });
  const { pid } = (await first.call("start", "late")) as { pid: number };
  await first.kill();
  await new Promise((r) => setTimeout(r, 1200));
  assert.ok(alive(pid), "the QEMU outlived its daemon");

  const next = h.manager();
  t.after(() => next.close());
  await next.reconcile();
  await waitFor(() => next.list().length === 1, "the expired VM to be removed", 5000);
  assert.equal(next.list()[0]!.name, "keep", "the one with time left stays");
  assert.ok(!alive(pid));
});

const CLI = fileURLToPath(new URL("../../src/cli/main.js", import.meta.url));

test("the CLI: create --ttl -l, ps shows TTL and LABELS, mvm ttl shows, sets and takes away the end time (--json too), a bad duration is exit 125 with a hint", T, async (t) => {
  const h = new FakeHome();
  const d = await startHttpDaemon(h);
  const client = new MvmClient(d.socket);
  t.after(async () => {
    for (const vm of await client.list().catch(() => [])) await client.remove(vm.id, { force: true }).catch(() => undefined);
    await d.stop();
    await h.close();
  });
  const env = { ...process.env, MVM_HOME: h.home };
  const cli = (args: string[]) => new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    execFile(process.execPath, [CLI, ...args], { env }, (err, stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }));
  });
  const made = await cli(["create", "--name", "c", "--ttl", "10m", "-l", "team=ml", "--json"]);
  assert.equal(made.code, 0, made.stderr);
  const ps = await cli(["ps", "-a"]);
  assert.match(ps.stdout, /^c +created .* (10m|9m\d+s) +team=ml\n/m);
  const shown = JSON.parse((await cli(["ttl", "c", "--json"])).stdout) as { expiresAt: string; remainingMs: number };
  assert.ok(shown.remainingMs > 590_000 && shown.remainingMs <= 600_000, JSON.stringify(shown));
  const set = JSON.parse((await cli(["ttl", "c", "1h", "--json"])).stdout) as { remainingMs: number };
  assert.ok(set.remainingMs > 3_590_000);
  assert.match((await cli(["ttl", "c", "90"])).stdout, /^c: removed at \S+ \(in 1m30s\)\n$/);
  const none = await cli(["ttl", "c", "none", "--json"]);
  assert.equal((JSON.parse(none.stdout) as { expiresAt: unknown }).expiresAt, null);
  assert.match((await cli(["ttl", "c"])).stdout, /no time to live/);
  const bad = await cli(["ttl", "c", "5x"]);
  assert.equal(bad.code, 125);
  assert.match(bad.stderr, /invalid ttl "5x"[\s\S]*90s, 10m, 1h30m/);
});
