// The ownership hooks (access.ts) on a stand-in manager: what the process tier cannot reach with the fake
// QEMU (snapshots, which it cannot save), and the lists a user token reads.
import assert from "node:assert/strict";
import { test } from "node:test";
import type { Caller } from "../auth/caller.js";
import { NotFoundError, UnauthorizedError } from "../errors.js";
import type { VmRecord } from "../store/vm-store.js";
import { checkSpec } from "../vmspec/vm-spec.js";
import { resolveVm, upgradeGuard } from "./access.js";
import { buildServer } from "./server.js";
import type { Snapshot } from "./snapshots.js";
import type { VmManager } from "./vm-manager.js";

const rec = (name: string, id: string, owner?: string, state: VmRecord["state"] = "stopped"): VmRecord => ({ id, name, owner, state, spec: checkSpec({ name }), createdAt: "2026-01-01T00:00:00.000Z", updatedAt: "2026-01-01T00:00:00.000Z" });
const snap = (name: string, owner?: string): Snapshot => ({ name, owner, vm: { id: "x", name: "x" }, spec: checkSpec({ name: "x" }), qemuBuild: { sha256: "f".repeat(64), version: "7.2.0" }, createdAt: "2026-01-01T00:00:00.000Z", stateBytes: 1, pausedMs: 1, dir: "/d", stateFile: "/d/state" });

function fake() {
  const vms = [rec("a1", "aaa111", "a"), rec("b1", "aaa222", "b"), rec("r1", "ccc333")];
  const snaps = [snap("sa", "a"), snap("sb", "b"), snap("sr")];
  const removed: string[] = [];
  const created: unknown[] = [];
  const notFound = (what: string, n: string) => new NotFoundError(`no ${what} named ${n}`, { hint: what === "VM" ? "list VMs with mvm ps -a" : "list them with mvm snapshot ls", ...(what === "VM" ? { details: { vm: n } } : {}) });
  const m = {
    list: () => vms.filter((v) => !removed.includes(v.id)),
    get: (ref: string) => m.list().find((v) => v.name === ref || v.id === ref) ?? (() => { throw notFound("VM", ref); })(),
    remove: (id: string) => Promise.resolve(void removed.push(id)),
    create: (body: unknown) => {
      created.push(body);
      return Promise.resolve(rec("new", "ddd444", "a"));
    },
    networks: { list: () => [{ name: "n", id: "1", bridge: "mvb", subnet: "10.0.0.0/24", nat: false, createdAt: "x", vms: ["a1", "b1", "r1"] }] },
    snapshots: {
      list: () => Promise.resolve(snaps),
      get: (n: string) => { const s = snaps.find((x) => x.name === n); return s ? Promise.resolve(s) : Promise.reject(notFound("snapshot", n)); },
    },
    removeSnapshot: () => Promise.resolve(),
  };
  return { m: m as unknown as VmManager, removed, created };
}

const callers: Record<string, Caller> = { a: { kind: "token", name: "a", role: "user" }, read: { kind: "token", name: "ro", role: "read" }, admin: { kind: "token", name: "ops", role: "admin" } };
const serve = (m: VmManager) => buildServer(m, { version: "t", home: "/nonexistent" }, { callerOf: (req) => callers[String(req.headers["x-as"])] ?? { kind: "host-root" } });

test("a user token: its own snapshots listed; another's is NOT_FOUND to get, remove or make a VM of, as one that does not exist", async () => {
  const { m, created } = fake();
  const app = serve(m);
  const as = (who: string, method: "GET" | "POST" | "DELETE", url: string, payload?: object) => app.inject({ method, url, payload, headers: { "x-as": who } });
  assert.deepEqual((await as("a", "GET", "/v1/snapshots")).json<Array<{ name: string }>>().map((s) => s.name), ["sa"]);
  assert.deepEqual((await as("read", "GET", "/v1/snapshots")).json<Array<{ name: string }>>().map((s) => s.name), ["sa", "sb", "sr"]);
  const absent = await as("a", "GET", "/v1/snapshots/nope");
  for (const [method, url] of [["GET", "/v1/snapshots/sb"], ["DELETE", "/v1/snapshots/sr"]] as const) {
    const r = await as("a", method, url);
    assert.equal(r.statusCode, 404, `${method} ${url}`);
    assert.deepEqual(r.json(), { ...absent.json<object>(), message: `no snapshot named ${url.split("/").pop()}` });
  }
  assert.equal((await as("a", "GET", "/v1/snapshots/sa")).statusCode, 200);
  const fromOthers = await as("a", "POST", "/v1/vms", { name: "c", snapshot: "sb" });
  assert.deepEqual([fromOthers.statusCode, fromOthers.json<{ message: string }>().message], [404, "no snapshot named sb"]);
  assert.deepEqual(created, [], "nothing was asked of the manager");
  assert.equal((await as("admin", "GET", "/v1/snapshots/sb")).statusCode, 200);
});

test("a user token's lists name its own VMs only, its prune removes its own ended ones; id prefixes resolve among its own", async () => {
  const { m, removed } = fake();
  const app = serve(m);
  const as = (who: string, method: "GET" | "POST", url: string) => app.inject({ method, url, headers: { "x-as": who } });
  assert.deepEqual((await as("a", "GET", "/v1/vms")).json<Array<{ name: string }>>().map((v) => v.name), ["a1"]);
  assert.deepEqual((await as("a", "GET", "/v1/networks")).json<Array<{ vms: string[] }>>()[0]!.vms, ["a1"]);
  assert.deepEqual((await as("root", "GET", "/v1/networks")).json<Array<{ vms: string[] }>>()[0]!.vms, ["a1", "b1", "r1"]);
  // "aaa" starts both a1's id and b1's (the store would say neither): among a's own it is a1's alone.
  assert.equal(resolveVm(m, callers.a!, "aaa").id, "aaa111");
  assert.throws(() => resolveVm(m, callers.a!, "aaa2"), (e: unknown) => e instanceof NotFoundError && e.message === "no VM named aaa2");
  assert.equal(resolveVm(m, callers.admin!, "b1").id, "aaa222");
  assert.deepEqual((await as("a", "POST", "/v1/prune")).json(), { removed: ["a1"] });
  assert.deepEqual(removed, ["aaa111"]);
});

test("the upgrade guard: the caller's rules before a stream opens, the VM's id when it may", () => {
  const { m } = fake();
  const refused: string[] = [];
  const socket = { end: (s: string) => void refused.push(s) } as unknown as import("node:stream").Duplex;
  const req = (who: string) => ({ headers: { "x-as": who }, socket: {} }) as unknown as import("node:http").IncomingMessage;
  const guard = upgradeGuard(m, (r) => callers[String(r.headers["x-as"])] ?? { kind: "host-root" });
  assert.equal(guard(req("a"), socket, "a1"), "aaa111");
  assert.equal(guard(req("a"), socket, "b1"), undefined);
  assert.match(refused.pop()!, /^HTTP\/1\.1 404 .*"NOT_FOUND"/s);
  assert.equal(guard(req("read"), socket, "a1"), undefined);
  assert.match(refused.pop()!, /^HTTP\/1\.1 403 .*"FORBIDDEN"/s);
  assert.equal(guard(req("root"), socket, "b1"), "aaa222");
  const unauthorized = upgradeGuard(m, () => {
    throw new UnauthorizedError("no token");
  });
  assert.equal(unauthorized(req("a"), socket, "a1"), undefined);
  assert.match(refused.pop()!, /^HTTP\/1\.1 401 .*www-authenticate: Bearer.*"UNAUTHORIZED"/s);
});
