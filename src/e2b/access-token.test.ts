import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { statSync } from "node:fs";
import { join } from "node:path";
import { AccessTokens, signatureValid, urlSignature } from "./access-token.js";
import { tempDir } from "../../test/support/temp-dirs.js";

test("access tokens: the same for a sandbox across instances of a home, different between sandboxes and homes; the key is 0600", () => {
  const home = tempDir("mvm-e2b-");
  const a = new AccessTokens(home);
  const b = new AccessTokens(home);
  assert.equal(a.tokenOf("i1"), b.tokenOf("i1"));
  assert.notEqual(a.tokenOf("i1"), a.tokenOf("i2"));
  assert.notEqual(new AccessTokens(tempDir("mvm-e2b-")).tokenOf("i1"), a.tokenOf("i1"));
  assert.ok(a.verify("i1", a.tokenOf("i1")));
  assert.ok(!a.verify("i2", a.tokenOf("i1")));
  assert.ok(!a.verify("i1", undefined));
  assert.equal(statSync(join(home, "e2b.key")).mode & 0o777, 0o600);
});

test("signed URLs: the SDK's formula; a wrong path, op, user or token, or a past expiration, fails", () => {
  const want = `v1_${createHash("sha256").update("/home/f.txt:read::tok:2000000000").digest("base64").replace(/=+$/, "")}`;
  assert.equal(urlSignature("/home/f.txt", "read", "", "tok", 2000000000), want);
  const q = { path: "/home/f.txt", op: "read" as const, user: "", signature: want, expiration: "2000000000" };
  assert.ok(signatureValid(q, "tok"));
  assert.ok(!signatureValid({ ...q, path: "/etc/shadow" }, "tok"));
  assert.ok(!signatureValid({ ...q, op: "write" }, "tok"));
  assert.ok(!signatureValid({ ...q, user: "root" }, "tok"));
  assert.ok(!signatureValid(q, "other"));
  assert.ok(!signatureValid(q, "tok", 2000000001), "expired");
  assert.ok(!signatureValid({ ...q, signature: undefined }, "tok"));
  const noExp = { path: "/f", op: "write" as const, user: "user", signature: urlSignature("/f", "write", "user", "tok") };
  assert.ok(signatureValid(noExp, "tok"));
});
