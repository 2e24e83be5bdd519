import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { claimId, idRange } from "./ids.js";

test("uid claims: one per label, stable for a label, stale ones taken over, released by their owner only", () => {
  const dir = mkdtempSync(join(tmpdir(), "mvm-ids-"));
  try {
    const r = { base: 0x7a000000, dir };
    const a = claimId(r, "mvm-a")!;
    const b = claimId(r, "mvm-a")!;
    assert.ok(a.uid > r.base && a.uid <= r.base + 65535);
    assert.notEqual(a.uid, b.uid, "the same label twice (a restart racing its old QEMU): two uids");
    a.name(process.pid);
    assert.equal((JSON.parse(readFileSync(join(dir, String(a.uid - r.base)), "utf8")) as { pid: number }).pid, process.pid);
    a.release();
    const again = claimId(r, "mvm-a")!;
    assert.equal(again.uid, a.uid, "a label prefers its own slot");
    // A claim naming a process that is gone is stale; an unnamed one after a minute.
    writeFileSync(join(dir, String(again.uid - r.base)), JSON.stringify({ label: "x", at: 0, pid: 999_999_999, start: "1" }));
    assert.equal(claimId(r, "mvm-a")!.uid, again.uid, "taken over from a dead QEMU");
    writeFileSync(join(dir, "7"), JSON.stringify({ label: "y", at: Date.now() }));
    b.release();
    again.release();
    assert.ok(readdirSync(dir).includes("7"), "someone else's claim is not released by ours");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("the range: MVM_UID_BASE moves it, below 2^31 and above system ids", () => {
  assert.equal(idRange({}).base, 0x7a000000);
  assert.equal(idRange({ MVM_UID_BASE: "300000000" }).base, 300000000);
  assert.throws(() => idRange({ MVM_UID_BASE: "2147480000" }), /2\^31/);
  assert.throws(() => idRange({ MVM_UID_BASE: "12" }), /MVM_UID_BASE/);
});
