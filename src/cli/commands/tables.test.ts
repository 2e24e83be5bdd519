import assert from "node:assert/strict";
import { test } from "node:test";
import type { VmView } from "../../daemon/views.js";
import { checkSpec } from "../../vmspec/vm-spec.js";
import { specFromFlags } from "../vm-flags.js";
import { psTable } from "./inspect.js";
import { snapshotTable } from "./snapshot.js";

const vm = (name: string, o: Partial<VmView>): VmView => ({ id: name, name, spec: checkSpec({ name }), state: "running", createdAt: "t", updatedAt: "t", ...o });

test("ps shows each VM's state, how its last start went and how fast it was ready", () => {
  const rows = psTable([
    vm("web", { boot: { how: "clone", reason: "a matching memory template", readyMs: 41.6 }, bootMs: 30, uptimeMs: 5000 }),
    vm("db", { state: "suspended", boot: { how: "cold", reason: "asked for (boot: cold)", readyMs: 2400 } }),
    vm("old", { state: "stopped", bootMs: 650 }),
  ])
    .trimEnd()
    .split("\n")
    .map((l) => l.split(/\s{2,}/));
  assert.deepEqual(rows[0], ["NAME", "STATE", "CPUS", "MEMORY", "ACCEL", "UPTIME", "BOOT", "READY", "EXIT", "TTL", "LABELS"]);
  assert.deepEqual(rows[1], ["web", "running", "1", "256M", "-", "5s", "clone", "42ms", "-", "-", "-"]);
  assert.deepEqual(rows[2], ["db", "suspended", "1", "256M", "-", "-", "cold", "2.4s", "-", "-", "-"]);
  assert.deepEqual(rows[3], ["old", "stopped", "1", "256M", "-", "-", "-", "650ms", "-", "-", "-"], "a record from before boot info: QEMU's start to the hello");
});

test("ps shows a VM's time left and its labels", () => {
  const spec = checkSpec({ name: "sbx", labels: { app: "e2b", user: "ann" } });
  const rows = psTable([vm("sbx", { spec, expiresAt: new Date(Date.now() + 599_800).toISOString() })]).trimEnd().split("\n").map((l) => l.split(/\s{2,}/));
  assert.deepEqual(rows[1]!.slice(-2), ["10m", "app=e2b,user=ann"]);
});

test("--ttl and -l go into the spec as ttl and labels", () => {
  const spec = specFromFlags({ env: [], publish: [], disk: [], volume: [], ttl: "10m", label: ["a=1", "b=x=y"] }, undefined);
  assert.deepEqual(spec, { ttl: "10m", labels: { a: "1", b: "x=y" } });
  assert.equal(specFromFlags({ env: [], publish: [], disk: [], volume: [], ttl: "600" }, undefined).ttl, 600);
  assert.equal(checkSpec({ ttl: "1h" }).ttlMs, 3_600_000);
});

test("snapshot ls: one row per snapshot, sizes in MiB", () => {
  const table = snapshotTable([
    { name: "base", vm: { id: "abc", name: "web" }, createdAt: "2025-01-01T12:00:00.000Z", qemuBuild: { sha256: "f", version: "7.2.0" }, stateBytes: 300 * 1048576, diskBytes: 20 * 1048576, pausedMs: 812, spec: { memoryMiB: 512, cpus: 2, image: "debian" } },
    { name: "tiny", vm: { id: "def", name: "gone" }, createdAt: "2025-01-02T12:00:00.000Z", qemuBuild: { sha256: "f", version: "7.2.0" }, stateBytes: 4096, pausedMs: 90, spec: { memoryMiB: 256, cpus: 1 } },
  ]);
  const rows = table.trimEnd().split("\n").map((l) => l.split(/\s{2,}/));
  assert.deepEqual(rows[0], ["NAME", "VM", "CPUS", "MEMORY", "IMAGE", "STATE", "DISK", "PAUSED", "CREATED"]);
  assert.deepEqual(rows[1], ["base", "web", "2", "512M", "debian", "300M", "20M", "812ms", "2025-01-01T12:00:00.000Z"]);
  assert.deepEqual(rows[2], ["tiny", "gone", "1", "256M", "-", "1M", "-", "90ms", "2025-01-02T12:00:00.000Z"]);
});

test("--snapshot and --boot go into the spec as the schema's keys", () => {
  const spec = specFromFlags({ env: [], publish: [], disk: [], volume: [], snapshot: "base", name: "w1" }, ["true"]);
  assert.deepEqual(spec, { name: "w1", snapshot: "base", command: ["true"] });
  assert.equal(specFromFlags({ env: [], publish: [], disk: [], volume: [], boot: "cold" }, undefined).boot, "cold");
});
