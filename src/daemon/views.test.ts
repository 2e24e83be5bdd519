import assert from "node:assert/strict";
import { test } from "node:test";
import { checkSpec } from "../vmspec/vm-spec.js";
import type { VmRecord } from "../store/vm-store.js";
import { vmListJson, vmView, type VmView } from "./views.js";

const rec = (name: string, over: Partial<VmRecord> = {}): VmRecord =>
  Object.freeze({ id: `id-${name}`, name, spec: checkSpec({ name }), state: "created", createdAt: "t", updatedAt: "t", ...over });

test("GET /v1/vms's body: each record serialized once, the uptime put in per call, the same JSON as its view", () => {
  let calls = 0;
  const serialize = (v: VmView) => (calls++, JSON.stringify(v));
  const stopped = rec("a");
  const running = rec("b", { state: "running", timings: { startedAt: new Date(Date.now() - 5000).toISOString() } });
  const first = JSON.parse(vmListJson([stopped, running], serialize)) as VmView[];
  assert.equal(calls, 2);
  assert.deepEqual(first[0], JSON.parse(JSON.stringify(vmView(stopped))));
  assert.ok(first[1]!.uptimeMs! >= 5000 && first[1]!.uptimeMs! < 60_000, String(first[1]!.uptimeMs));
  assert.deepEqual({ ...first[1], uptimeMs: 0 }, { ...JSON.parse(JSON.stringify(vmView(running))), uptimeMs: 0 });
  // The same record objects again: nothing serialized anew. A written record is a new object: serialized.
  vmListJson([stopped, running], serialize);
  assert.equal(calls, 2);
  const changed = rec("a", { state: "stopped" });
  assert.equal((JSON.parse(vmListJson([changed, running], serialize)) as VmView[])[0]!.state, "stopped");
  assert.equal(calls, 3);
  assert.equal(vmListJson([], serialize), "[]");
});
