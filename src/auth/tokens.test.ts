import assert from "node:assert/strict";
import { test } from "node:test";
import { bearerToken, checkRole, checkTokenName, generateToken, hashToken, matchToken } from "./tokens.js";
import { checkQuota } from "./quotas.js";
import { mayUseVm, requireAdmin, requireHostRoot, requireMethodAllowed } from "./ownership.js";
import type { Caller } from "./caller.js";
import { ForbiddenError, InvalidArgumentError, QuotaExceededError } from "../errors.js";

test("a token is mvm_ and 43 base64url characters (256 random bits), never the same twice", () => {
  const seen = new Set<string>();
  for (let i = 0; i < 200; i++) {
    const t = generateToken();
    assert.match(t, /^mvm_[A-Za-z0-9_-]{43}$/);
    assert.equal(Buffer.from(t.slice(4), "base64url").length, 32);
    seen.add(t);
  }
  assert.equal(seen.size, 200);
});

test("the hash is SHA-256 of the token; only the exact token matches, whatever its length", () => {
  const t = generateToken();
  assert.equal(hashToken(t).toString("hex"), "" + hashToken(t).toString("hex"));
  assert.equal(hashToken("abc").toString("hex"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  const stored = [{ name: "a", hash: hashToken(generateToken()) }, { name: "b", hash: hashToken(t) }, { name: "c", hash: hashToken(generateToken()) }];
  assert.equal(matchToken(t, stored)?.name, "b");
  for (const wrong of [t.slice(0, -1), `${t}x`, t.toUpperCase(), "", "mvm_", t.replace(/.$/, (c) => (c === "A" ? "B" : "A"))]) assert.equal(matchToken(wrong, stored), undefined, wrong);
  // A stored value that is not a 32-byte hash never matches (and never throws, as timingSafeEqual would).
  assert.equal(matchToken(t, [{ hash: Buffer.from("short") }]), undefined);
});

test("Authorization: Bearer TOKEN, the scheme in any case; anything else is no token", () => {
  assert.equal(bearerToken("Bearer mvm_abc-_"), "mvm_abc-_");
  assert.equal(bearerToken("bearer  mvm_x "), "mvm_x");
  for (const h of [undefined, "", "Basic dXNlcjpwdw==", "Bearer", "Bearer a b", "mvm_abc", ["Bearer a", "Bearer b"]]) assert.equal(bearerToken(h as string | undefined), undefined, String(h));
});

test("token names and roles are checked", () => {
  assert.equal(checkTokenName("ci-1.a_b"), "ci-1.a_b");
  for (const n of ["", "Ci", "-a", "a b", "a/b", "x".repeat(64)]) assert.throws(() => checkTokenName(n), InvalidArgumentError, n);
  assert.equal(checkRole("read"), "read");
  assert.throws(() => checkRole("root"), InvalidArgumentError);
});

const user: Caller = { kind: "token", name: "a", role: "user", quota: { maxVms: 2, maxCpus: 3, maxMemoryMiB: 1024 } };
const vm = (cpus: number, memoryMiB: number) => ({ spec: { cpus, memoryMiB } });

test("quotas: VMs, vCPUs and memory summed over the VMs the token owns; the message says the quota and the use", () => {
  checkQuota(user, { cpus: 1, memoryMiB: 256 }, [vm(1, 256)]);
  checkQuota(user, { cpus: 2, memoryMiB: 768 }, [vm(1, 256)]); // exactly at every limit
  const refused = (spec: { cpus: number; memoryMiB: number }, owned: Array<ReturnType<typeof vm>>, re: RegExp) =>
    assert.throws(() => checkQuota(user, spec, owned), (e: unknown) => e instanceof QuotaExceededError && re.test(e.message) && (e.details.quota as { maxVms: number }).maxVms === 2 && typeof (e.details.use as { vms: number }).vms === "number");
  refused({ cpus: 1, memoryMiB: 64 }, [vm(1, 64), vm(1, 64)], /quota of 2 VMs: it has 2 in 2 VMs/);
  refused({ cpus: 3, memoryMiB: 64 }, [vm(1, 64)], /quota of 3 vCPUs: it has 1 in 1 VM, and this VM asks for 3 more/);
  refused({ cpus: 1, memoryMiB: 1024 }, [vm(1, 256)], /quota of 1024 MiB of memory: it has 256 MiB/);
  // No quota, no limit; the host's root has none.
  checkQuota({ kind: "token", name: "b", role: "user" }, { cpus: 64, memoryMiB: 1 << 20 }, Array.from({ length: 100 }, () => vm(64, 1 << 20)));
  checkQuota({ kind: "host-root" }, { cpus: 64, memoryMiB: 1 << 20 }, []);
});

test("ownership: user tokens their own VMs, read and admin tokens and the host's root every VM; read only GETs", () => {
  const root: Caller = { kind: "host-root" };
  const admin: Caller = { kind: "token", name: "ops", role: "admin" };
  const read: Caller = { kind: "token", name: "dash", role: "read" };
  assert.deepEqual([mayUseVm(user, "a"), mayUseVm(user, "b"), mayUseVm(user, undefined)], [true, false, false]);
  for (const c of [root, admin, read]) assert.deepEqual([mayUseVm(c, "a"), mayUseVm(c, undefined)], [true, true]);
  for (const m of ["GET", "HEAD"]) requireMethodAllowed(read, m);
  for (const m of ["POST", "PUT", "PATCH", "DELETE"]) {
    assert.throws(() => requireMethodAllowed(read, m), ForbiddenError);
    requireMethodAllowed(user, m);
    requireMethodAllowed(root, m);
  }
  assert.throws(() => requireAdmin(user, "create networks"), ForbiddenError);
  requireAdmin(admin, "x");
  requireAdmin(root, "x");
  assert.throws(() => requireHostRoot(admin, "manage tokens"), ForbiddenError);
  requireHostRoot(root, "x");
});
