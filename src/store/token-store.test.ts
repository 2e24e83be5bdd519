import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import Database from "better-sqlite3";
import { NameTakenError, NotFoundError } from "../errors.js";
import { hashToken } from "../auth/tokens.js";
import { TokenStore } from "./token-store.js";
import { VmStore } from "./vm-store.js";
import { checkSpec } from "../vmspec/vm-spec.js";

const withDb = (fn: (path: string) => void) => {
  const dir = mkdtempSync(join(tmpdir(), "mvm-tokens-"));
  try {
    fn(join(dir, "mvm.db"));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
};

test("create prints a token once, keeps only its SHA-256; verify finds it, a wrong one finds nothing; rm forgets it", () =>
  withDb((path) => {
    const s = new TokenStore(path);
    const { token, record } = s.create("ci", "user", { maxVms: 3, maxMemoryMiB: 4096 });
    assert.deepEqual([record.name, record.role, record.quota, record.lastUsedAt], ["ci", "user", { maxVms: 3, maxMemoryMiB: 4096 }, undefined]);
    s.create("ops", "admin");
    assert.throws(() => s.create("ci", "read"), NameTakenError);
    // The database holds the hash, and nowhere the token.
    const raw = new Database(path);
    const rows = raw.prepare("SELECT * FROM tokens").all() as Array<Record<string, unknown>>;
    raw.close();
    assert.ok(!JSON.stringify(rows).includes(token.slice(4)));
    assert.ok(rows.some((r) => Buffer.isBuffer(r.hash) && (r.hash).equals(hashToken(token))));
    const found = s.verify(token);
    assert.equal(found?.name, "ci");
    assert.equal(typeof found?.lastUsedAt, "string", "the last use is noted");
    assert.equal(s.verify(`${token}x`), undefined);
    assert.equal(s.verify(""), undefined);
    assert.deepEqual(s.list().map((t) => [t.name, t.role]), [["ci", "user"], ["ops", "admin"]]);
    assert.equal(typeof s.get("ci").lastUsedAt, "string");
    s.remove("ci");
    assert.equal(s.verify(token), undefined, "a removed token is refused");
    assert.throws(() => s.remove("ci"), NotFoundError);
    s.close();
  }));

test("a home made before tokens gains the table and keeps its VMs; an old VM record has no owner", () =>
  withDb((path) => {
    const vms = new VmStore(path);
    const old = vms.create(checkSpec({ name: "old" }));
    vms.close();
    const s = new TokenStore(path);
    s.create("a", "read");
    s.close();
    const again = new VmStore(path);
    assert.deepEqual(again.list().map((r) => [r.name, r.owner]), [["old", undefined]]);
    const mine = again.create(checkSpec({ name: "mine" }), { owner: "a" });
    assert.equal(again.get(mine.id).owner, "a");
    assert.equal(again.get(old.id).owner, undefined);
    again.close();
    assert.deepEqual(new TokenStore(path).list().map((t) => t.name), ["a"]);
  }));
