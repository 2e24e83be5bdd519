import assert from "node:assert/strict";
import { test } from "node:test";
import { checkSpec } from "../vmspec/vm-spec.js";
import type { VmRecord } from "../store/vm-store.js";
import { E2bError } from "./errors.js";
import { metrics, parseMetadataFilter } from "./sandboxes.js";

const rec = (cpus: number): VmRecord => ({ id: "abc", name: "i0", spec: checkSpec({ name: "i0", cpus, memory: "512M" }), state: "running", createdAt: "t", updatedAt: "t" });
const samples = [
  { at: "2026-12-02T10:00:00.000Z", cpuSeconds: 1, rssBytes: 100 << 20 },
  { at: "2026-12-02T10:00:05.000Z", cpuSeconds: 2, cpuPercent: 20, rssBytes: 110 << 20 },
  { at: "2026-12-02T10:00:10.400Z", cpuSeconds: 12, cpuPercent: 200, rssBytes: 120 << 20 },
];
const unix = (iso: string) => String(Date.parse(iso) / 1000);

test("getMetrics: the daemon's samples in E2B's shape, CPU in % of the sandbox's vCPUs", () => {
  const m = metrics(rec(2), samples, new URLSearchParams()) as Array<Record<string, unknown>>;
  assert.equal(m.length, 3);
  assert.deepEqual(m[2], { timestamp: "2026-12-02T10:00:10.400Z", timestampUnix: Math.floor(Date.parse("2026-12-02T10:00:10.400Z") / 1000), cpuUsedPct: 100, cpuCount: 2, memUsed: 120 << 20, memTotal: 512 << 20, memCache: 0, diskUsed: 0, diskTotal: 0 });
  assert.equal(m[0]?.cpuUsedPct, 0, "the first sample has no rate yet");
  assert.equal(m[1]?.cpuUsedPct, 10);
});

test("getMetrics: start and end in whole seconds, the end second included; bad bounds refused", () => {
  const q = (start?: string, end?: string) => new URLSearchParams({ ...(start ? { start } : {}), ...(end ? { end } : {}) });
  const at = (p: URLSearchParams) => (metrics(rec(1), samples, p) as Array<{ timestamp: string }>).map((s) => s.timestamp.slice(17, 19));
  assert.deepEqual(at(q(unix("2026-12-02T10:00:05Z"))), ["05", "10"]);
  assert.deepEqual(at(q(undefined, unix("2026-12-02T10:00:10Z"))), ["00", "05", "10"], "10.400 is within the end second");
  assert.deepEqual(at(q(unix("2026-12-02T10:00:01Z"), unix("2026-12-02T10:00:09Z"))), ["05"]);
  for (const bad of ["x", "-1", "Infinity"]) assert.throws(() => metrics(rec(1), samples, q(bad)), (e: unknown) => e instanceof E2bError && e.status === 400, bad);
});

test("Sandbox.list's metadata filter (the query value, decoded once): k=v pairs, each part URI-encoded once more", () => {
  assert.deepEqual(parseMetadataFilter("app=e2b&run=1"), { app: "e2b", run: "1" });
  assert.deepEqual(parseMetadataFilter("k%2520x=a%2526b"), { "k x": "a&b" });
  assert.deepEqual(parseMetadataFilter(null), {});
});
