// Resource limits through the HTTP API (the daemon's real routes, its VM manager and the fake QEMU): what
// a start applies over QMP, live changes, and every refusal a clear 4xx in mvm's error shape — a bad value,
// an unknown key, a limit the VM cannot have, an unknown VM, and a VM in the wrong state (409). CPU and
// memory limits without control groups (the jail off) are refused at create, PATCH and start (422); with
// the jail on (root), they are written into the fake QEMU's real control group.

import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test, type TestContext } from "node:test";
import type { FastifyInstance } from "fastify";
import { buildServer } from "../../src/daemon/server.js";
import type { VmManager } from "../../src/daemon/vm-manager.js";
import { FakeHome, waitFor } from "./harness.js";

const T = { timeout: 20000 };

function setup(t: TestContext, knobs: { jail?: boolean } = {}): { h: FakeHome; m: VmManager; app: FastifyInstance; disk: (name: string) => string } {
  const h = new FakeHome();
  const m = h.manager(knobs);
  const app = buildServer(m, { version: "test", home: h.home });
  t.after(async () => {
    await app.close();
    await h.close();
  });
  const disk = (name: string) => {
    const path = join(h.home, `${name}.img`);
    writeFileSync(path, Buffer.alloc(65536));
    return path;
  };
  return { h, m, app, disk };
}

interface Answer {
  status: number;
  body: Record<string, unknown> & { error?: string; message?: string; hint?: string };
}

async function call(app: FastifyInstance, method: "GET" | "POST" | "PATCH", url: string, payload?: unknown): Promise<Answer> {
  const r = await app.inject({ method, url, ...(payload === undefined ? {} : { payload: JSON.stringify(payload), headers: { "content-type": "application/json" } }) });
  return { status: r.statusCode, body: r.body ? r.json<Answer["body"]>() : {} };
}

/** What the fake QEMU says its virtio-blk devices are throttled to. */
async function throttles(m: VmManager, id: string): Promise<Record<string, { bps: number; iops: number; group?: string }>> {
  const blocks = await FakeHome.guestOf(m, id).qmp.execute<Array<{ qdev: string; inserted: { bps: number; iops: number; group?: string } }>>("query-block");
  return Object.fromEntries(blocks.map((b) => [b.qdev, b.inserted]));
}

const refused = (a: Answer, status: number, code: string, message: RegExp) => {
  assert.equal(a.status, status, JSON.stringify(a.body));
  assert.equal(a.body.error, code, JSON.stringify(a.body));
  assert.match(a.body.message ?? "", message);
  assert.ok(a.body.hint, "every refusal has a hint");
};

test("a start applies the spec's disk limits to every disk, in one group; a live change and a removal reach QEMU and the view", T, async (t) => {
  const { m, app, disk } = setup(t);
  const created = await call(app, "POST", "/v1/vms", { name: "a", disks: [disk("one"), `${disk("two")}:ro`], diskBps: "5M", diskIops: 300 });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  const id = created.body.id as string;
  const started = await call(app, "POST", "/v1/vms/a/start");
  assert.equal(started.status, 200, JSON.stringify(started.body));
  const group = `vm-${id}`;
  assert.deepEqual(await throttles(m, id), { vd0: { bps: 5242880, iops: 300, group }, vd1: { bps: 5242880, iops: 300, group } });
  const inEffect = started.body.limits as Record<string, unknown>;
  assert.deepEqual({ ...inEffect, appliedAt: undefined }, { diskBps: 5242880, diskIops: 300, disks: ["vd0", "vd1"], group, appliedAt: undefined });
  assert.ok((started.body.argv as string[]).includes("virtio-blk-device,id=vd1,drive=disk1"));

  // Live: the new value at once, the other one kept; then removed, which takes the devices out of the group.
  const changed = await call(app, "PATCH", "/v1/vms/a/limits", { diskBps: "50M" });
  assert.equal(changed.status, 200, JSON.stringify(changed.body));
  assert.deepEqual(await throttles(m, id), { vd0: { bps: 52428800, iops: 300, group }, vd1: { bps: 52428800, iops: 300, group } });
  assert.equal((changed.body.spec as { diskBps: number }).diskBps, 52428800, "kept for the next start");
  assert.equal((changed.body.limits as { diskBps: number }).diskBps, 52428800);
  const paused = await call(app, "POST", "/v1/vms/a/pause");
  assert.equal(paused.status, 200);
  const cleared = await call(app, "PATCH", "/v1/vms/a/limits", { diskBps: null, diskIops: null });
  assert.equal(cleared.status, 200, "a paused VM's limits change too");
  assert.deepEqual(await throttles(m, id), { vd0: { bps: 0, iops: 0 }, vd1: { bps: 0, iops: 0 } });
  assert.equal(cleared.body.limits, undefined, "nothing in effect");
  assert.equal((cleared.body.spec as { diskBps?: number }).diskBps, undefined);
  await m.kill("a");
});

test("limits set on a stopped VM are kept and applied at its next start; a VM without limits gets no throttle at all", T, async (t) => {
  const { m, app, disk } = setup(t);
  const { id } = await m.create({ name: "b", disks: [disk("b")] });
  await m.start("b");
  assert.deepEqual(await throttles(m, id), { vd0: { bps: 0, iops: 0 } }, "no QMP throttle for a VM without limits");
  assert.equal(m.get("b").limits, undefined);
  await m.stop("b");
  const set = await call(app, "PATCH", "/v1/vms/b/limits", { diskIops: 50 });
  assert.equal(set.status, 200, JSON.stringify(set.body));
  assert.equal(set.body.state, "stopped");
  assert.equal(set.body.limits, undefined, "not in effect while stopped");
  await m.start("b");
  assert.deepEqual(await throttles(m, id), { vd0: { bps: 0, iops: 50, group: `vm-${id}` } });
  assert.deepEqual(m.get("b").limits?.disks, ["vd0"]);
  await m.stop("b");
  assert.equal(m.get("b").limits, undefined, "a stopped VM has no limits in effect");
});

test("refusals: bad values, unknown keys, limits a VM cannot have, an unknown VM (4xx, mvm's error shape)", T, async (t) => {
  const { m, app, disk } = setup(t);
  await m.create({ name: "c", disks: [disk("c")] });
  await m.create({ name: "slirp", network: "user" });
  await m.start("c");
  for (const [body, code, message] of [
    [{ diskBps: "0" }, "INVALID_SIZE", /diskBps 0 is out of range/],
    [{ diskBps: -5 }, "INVALID_SIZE", /diskBps: cannot read "-5"/],
    [{ diskBps: "5X" }, "INVALID_SIZE", /cannot read "5X" as a rate/],
    [{ diskBps: "2T" }, "INVALID_SIZE", /out of range/],
    [{ diskBps: 2 ** 60 }, "INVALID_SIZE", /out of range/],
    [{ diskIops: 0 }, "INVALID_SIZE", /diskIops 0 is out of range/],
    [{ diskIops: "100" }, "BAD_REQUEST", /diskIops/],
    [{ diskIops: 1.5 }, "BAD_REQUEST", /diskIops/],
    [{ cpuWeight: 2 }, "BAD_REQUEST", /cpuWeight/],
    [{ cpuShare: 0 }, "INVALID_SIZE", /cpuShare 0 is out of range/],
    [{ cpuShare: "100" }, "BAD_REQUEST", /cpuShare/],
    [{ cpuMax: "2.5" }, "INVALID_SIZE", /cpuMax 2.5 is out of range/],
    [{ cpuMax: "half" }, "INVALID_SIZE", /cpuMax: cannot read "half"/],
    [{ memoryMax: "300M" }, "INVALID_SIZE", /memoryMax 300M is below what the VM needs/],
    [{ memoryMax: true }, "BAD_REQUEST", /memoryMax/],
    [{}, "BAD_REQUEST", /invalid request/],
    [{ netBps: "10M" }, "INVALID_SPEC", /network none/],
  ] as const) {
    refused(await call(app, "PATCH", "/v1/vms/c/limits", body), 400, code, message);
  }
  refused(await call(app, "PATCH", "/v1/vms/slirp/limits", { netBps: "10M" }), 400, "INVALID_SPEC", /slirp runs inside QEMU/);
  refused(await call(app, "PATCH", "/v1/vms/slirp/limits", { diskBps: "10M" }), 400, "INVALID_SPEC", /VM slirp has none/);
  refused(await call(app, "POST", "/v1/vms", { name: "d", network: "user", netBps: "1M" }), 400, "INVALID_SPEC", /user network/);
  refused(await call(app, "POST", "/v1/vms", { name: "d", diskBps: "1M" }), 400, "INVALID_SPEC", /has none/);
  refused(await call(app, "PATCH", "/v1/vms/nosuch/limits", { diskBps: "5M" }), 404, "NOT_FOUND", /nosuch/);
  const raw = await app.inject({ method: "PATCH", url: "/v1/vms/c/limits", payload: "null", headers: { "content-type": "application/json" } });
  assert.equal(raw.statusCode, 400);
  // Nothing refused was applied or kept.
  assert.equal(m.get("c").spec.diskBps, undefined);
  assert.equal(m.get("c").limits, undefined);
  assert.deepEqual(await throttles(m, m.get("c").id), { vd0: { bps: 0, iops: 0 } });
  assert.ok(!m.list().some((v) => v.name === "d"));
  await m.kill("c");
});

test("a VM that is starting cannot have its limits changed: 409 naming its state", T, async (t) => {
  const { m, app, disk } = setup(t);
  // A QEMU that never answers keeps the VM starting until it is killed.
  await m.create({ name: "e", disks: [disk("e")], append: "fake_qemu.mode=hang" });
  const starting = m.start("e").catch((e: unknown) => e);
  await waitFor(() => m.get("e").state === "starting", "the VM to be starting");
  const r = await call(app, "PATCH", "/v1/vms/e/limits", { diskBps: "5M" });
  refused(r, 409, "WRONG_STATE", /cannot change the limits of VM e: it is starting/);
  assert.deepEqual((r.body.details as { allowed: string[] }).allowed.includes("running"), true);
  await m.kill("e");
  await starting;
  assert.equal(m.get("e").spec.diskBps, undefined);
});

test("CPU and memory limits without control groups (the jail off): refused at create, PATCH and start with why and how; removing them works", T, async (t) => {
  const { h, m, app } = setup(t);
  const noCgroups = (a: Answer, keys: RegExp) => {
    refused(a, 422, "CGROUPS_UNAVAILABLE", /the jail is off \(turned off by MVM_JAIL=0\)/);
    assert.match(a.body.message ?? "", keys);
    assert.match(a.body.hint ?? "", /without MVM_JAIL=0/);
  };
  noCgroups(await call(app, "POST", "/v1/vms", { name: "f", cpuMax: 0.5, memoryMax: "1G" }), /asks for cpuMax, memoryMax, which mvm applies through the control group/);
  assert.ok(!m.list().some((v) => v.name === "f"), "nothing was created");
  await m.create({ name: "g" });
  await m.start("g");
  noCgroups(await call(app, "PATCH", "/v1/vms/g/limits", { cpuShare: 50 }), /cpuShare/);
  assert.equal(m.get("g").spec.cpuShare, undefined, "nothing kept");
  await m.kill("g");

  // A VM given them under a daemon with control groups, started by one without: refused, never run unlimited.
  if (process.getuid?.() === 0) {
    const withJail = h.manager({ jail: true });
    if (withJail.jail.cgroups.mode !== "none") {
      await withJail.setLimits("g", { cpuMax: "0.5" });
      const r = await m.start("g").then(() => undefined, (e: unknown) => e as { code?: string; message: string; hint?: string });
      assert.equal(r?.code, "CGROUPS_UNAVAILABLE", "the start is refused");
      assert.match(r?.hint ?? "", /mvm limits g --cpu-max none/);
      const removed = await call(app, "PATCH", "/v1/vms/g/limits", { cpuMax: null });
      assert.equal(removed.status, 200, "removing one needs no control group");
      await m.start("g");
      assert.equal(m.get("g").state, "running");
      await m.kill("g");
    }
  }
});

/** The fake QEMU's mvm control group files (v2: one directory; v1: one per controller). */
function groupFile(pid: number, file: string): string {
  const [controller] = file.split(".");
  for (const line of readFileSync(`/proc/${pid}/cgroup`, "utf8").split("\n")) {
    const [, ctrls, path] = line.split(":");
    if (path === undefined || !/\/mvm\/[^/]+$/.test(path)) continue;
    const dir = ctrls === "" ? `/sys/fs/cgroup${path}` : ctrls!.split(",").includes(controller!) ? `/sys/fs/cgroup/${controller}${path}` : undefined;
    if (dir) {
      try {
        return readFileSync(`${dir}/${file}`, "utf8").trim();
      } catch {
        /* the other version's name */
      }
    }
  }
  throw new Error(`no ${file} in the control group of pid ${pid}`);
}

test("with the jail's control groups: a start writes cpuShare, cpuMax and memoryMax into QEMU's group, a live change rewrites them, a removal puts the jail's defaults back", { ...T, skip: process.getuid?.() !== 0 && "needs root" }, async (t) => {
  const { m, app } = setup(t, { jail: true });
  if (m.jail.cgroups.mode === "none") return t.skip(`no control groups: ${m.jail.cgroups.reason}`);
  const v2 = m.jail.cgroups.mode === "v2";
  const created = await call(app, "POST", "/v1/vms", { name: "h", cpus: 2, memory: "256M", cpuShare: 300, cpuMax: "0.5", memoryMax: "1G" });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  const started = await call(app, "POST", "/v1/vms/h/start");
  assert.equal(started.status, 200, JSON.stringify(started.body));
  const pid = started.body.pid as number;
  const cpuMax = () => (v2 ? groupFile(pid, "cpu.max").split(" ")[0] : groupFile(pid, "cpu.cfs_quota_us"));
  const weight = () => (v2 ? groupFile(pid, "cpu.weight") : groupFile(pid, "cpu.shares"));
  const memory = () => groupFile(pid, v2 ? "memory.max" : "memory.limit_in_bytes");
  assert.deepEqual([cpuMax(), weight(), memory()], ["50000", v2 ? "300" : "3072", String(1 << 30)]);
  const inEffect = started.body.limits as Record<string, unknown>;
  assert.deepEqual({ ...inEffect, appliedAt: undefined, cgroup: undefined }, { cpuShare: 300, cpuMax: 0.5, memoryMax: 1 << 30, disks: [], appliedAt: undefined, cgroup: undefined });
  assert.match(String(inEffect.cgroup), /\/mvm\/mvm-[0-9a-f]+$/);
  const view = await call(app, "GET", "/v1/vms/h");
  assert.deepEqual((view.body.jail as { cgroup: object }).cgroup, { mode: m.jail.cgroups.mode, path: inEffect.cgroup, memoryBytes: 1 << 30, pids: 132, cpuQuotaUs: 50000, cpuWeight: 300 }, "inspect reads the files back");

  const changed = await call(app, "PATCH", "/v1/vms/h/limits", { cpuMax: 1.25, memoryMax: "2G" });
  assert.equal(changed.status, 200, JSON.stringify(changed.body));
  assert.deepEqual([cpuMax(), weight(), memory()], ["125000", v2 ? "300" : "3072", String(2 * 1024 ** 3)]);
  assert.deepEqual([(changed.body.spec as { cpuMax: number }).cpuMax, (changed.body.limits as { memoryMax: number }).memoryMax], [1.25, 2 * 1024 ** 3]);

  const removed = await call(app, "PATCH", "/v1/vms/h/limits", { cpuShare: null, cpuMax: null, memoryMax: null });
  assert.equal(removed.status, 200, JSON.stringify(removed.body));
  assert.deepEqual([cpuMax(), weight(), memory()], ["300000", v2 ? "100" : "1024", String((256 + 256) << 20)], "the jail's defaults: vCPUs + 1 cores, RAM + 256 MiB, the kernel's weight");
  assert.equal(removed.body.limits, undefined, "nothing of the user's in effect");
  await m.kill("h");
});
