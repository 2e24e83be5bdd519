// API tokens (issue 13): what a network client shows in `Authorization: Bearer TOKEN`. A token is 32 random
// bytes, printed once as `mvm_` + base64url; the daemon keeps only its SHA-256 (src/store/token-store.ts), so
// a copy of mvm.db does not hand out access. A presented token is hashed and its hash compared with every
// stored hash with crypto.timingSafeEqual, each one, no early exit: how long the check takes says nothing
// about how much of a guess was right. Roles: admin (everything a network caller may do), user (its own
// VMs, within its quotas), read (GET only).

import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import type { TokenRole } from "./caller.js";
import { InvalidArgumentError } from "../errors.js";

export const TOKEN_PREFIX = "mvm_";
export const TOKEN_ROLES: readonly TokenRole[] = ["admin", "user", "read"];
/** Token names: like VM names (they appear as owners in records and messages). */
export const TOKEN_NAME_PATTERN = "^[a-z0-9][a-z0-9_.-]{0,62}$";

/** A new token: `mvm_` and 43 base64url characters (256 random bits). */
export const generateToken = (): string => `${TOKEN_PREFIX}${randomBytes(32).toString("base64url")}`;

/** What is stored of a token: its SHA-256, 32 bytes. */
export const hashToken = (token: string): Buffer => createHash("sha256").update(token, "utf8").digest();

/**
 * The entry whose hash is the presented token's, comparing every stored hash in constant time (a token
 * of any length hashes to 32 bytes, so the lengths always agree), or undefined.
 */
export function matchToken<T extends { hash: Buffer }>(presented: string, stored: readonly T[]): T | undefined {
  const h = hashToken(presented);
  let found: T | undefined;
  for (const s of stored) {
    if (s.hash.length === h.length && timingSafeEqual(s.hash, h) && !found) found = s;
  }
  return found;
}

/** The token in an Authorization header (`Bearer TOKEN`, the scheme in any case), or undefined. */
export function bearerToken(header: string | string[] | undefined): string | undefined {
  if (typeof header !== "string") return undefined;
  const m = /^Bearer[ \t]+([A-Za-z0-9._~+/=-]+)[ \t]*$/i.exec(header);
  return m?.[1];
}

export function checkTokenName(name: string): string {
  if (!new RegExp(TOKEN_NAME_PATTERN).test(name)) throw new InvalidArgumentError(`invalid token name ${JSON.stringify(name)}`, { hint: "lower-case letters, digits, '.', '_' and '-', starting with a letter or digit, at most 63" });
  return name;
}

export function checkRole(role: string): TokenRole {
  if (!(TOKEN_ROLES as readonly string[]).includes(role)) throw new InvalidArgumentError(`invalid token role ${JSON.stringify(role)}`, { hint: `one of ${TOKEN_ROLES.join(", ")}` });
  return role as TokenRole;
}
