// Each sandbox's envd access token, which the SDK sends as X-Access-Token on every envd request (and signs
// download/upload URLs with). It is an HMAC of the sandbox id under a key of the daemon's home, made once
// (0600): nothing per sandbox to store, the same after a daemon restart, and no one without the key (or
// the create answer) can reach a sandbox's envd by knowing its id.

import { createHash, createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";

export class AccessTokens {
  private readonly key: Buffer;

  constructor(home: string) {
    const path = join(home, "e2b.key");
    let key: Buffer;
    try {
      key = readFileSync(path);
    } catch {
      key = randomBytes(32);
      try {
        writeFileSync(path, key, { mode: 0o600, flag: "wx" });
      } catch {
        key = readFileSync(path); // another process of this home made it first
      }
    }
    this.key = key;
  }

  tokenOf(sandboxId: string): string {
    return createHmac("sha256", this.key).update(`envd:${sandboxId}`).digest("base64url");
  }

  verify(sandboxId: string, token: string | undefined): boolean {
    if (!token) return false;
    const a = Buffer.from(this.tokenOf(sandboxId));
    const b = Buffer.from(token);
    return a.length === b.length && timingSafeEqual(a, b);
  }
}

/** The SDK's URL signature: "v1_" + base64(sha256("path:op:user:token[:expiration]")), no '=' padding. */
export function urlSignature(path: string, op: "read" | "write", user: string, token: string, expiration?: number): string {
  const raw = `${path}:${op}:${user}:${token}${expiration === undefined ? "" : `:${expiration}`}`;
  return `v1_${createHash("sha256").update(raw).digest("base64").replace(/=+$/, "")}`;
}

/** A signed URL's check: the signature matches, and its expiration (unix seconds), if any, has not passed. */
export function signatureValid(q: { path: string; op: "read" | "write"; user: string; signature?: string; expiration?: string }, token: string, nowS = Date.now() / 1000): boolean {
  if (!q.signature) return false;
  const exp = q.expiration === undefined || q.expiration === "" ? undefined : Number(q.expiration);
  if (exp !== undefined && (!Number.isInteger(exp) || exp < nowS)) return false;
  const want = Buffer.from(urlSignature(q.path, q.op, q.user, token, exp));
  const got = Buffer.from(q.signature);
  return want.length === got.length && timingSafeEqual(want, got);
}
