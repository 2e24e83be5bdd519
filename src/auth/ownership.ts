// Who sees and acts on which VM (issue 13). A VM belongs to the caller that created it: its record's
// `owner` is the token's name, or absent for the host's root (and for every VM made before tokens). The
// rules, in one place:
//   - the host's root and admin tokens see and act on every VM;
//   - a read token sees every VM and changes nothing (only GET and HEAD pass; FORBIDDEN otherwise);
//   - a user token sees and acts on its own VMs only: another's VM is NOT_FOUND to it, exactly as a VM that
//     does not exist (the same message), and lists leave it out.
// What else a role may change (networks, images, volumes, tokens) is decided here too; the daemon's hooks
// (src/daemon/access.ts) apply it before any route runs.

import { ForbiddenError, NotFoundError } from "../errors.js";
import { describeCaller, type Caller } from "./caller.js";

/** What a new VM's record says of its owner: the token's name, or nothing for the host's root. */
export const ownerFor = (c: Caller): string | undefined => (c.kind === "token" ? c.name : undefined);

/** Whether the caller sees (and, role permitting, acts on) a VM owned by `owner`. */
export const mayUseVm = (c: Caller, owner: string | undefined): boolean => c.kind === "host-root" || c.role !== "user" || owner === c.name;

/** Only reads: a read token's requests other than GET and HEAD are FORBIDDEN. */
export function requireMethodAllowed(c: Caller, method: string): void {
  if (c.kind === "token" && c.role === "read" && method !== "GET" && method !== "HEAD") {
    throw new ForbiddenError(`${describeCaller(c)} cannot ${method}: a read token only sees`, { hint: "use a user or admin token", details: { caller: c.name, role: c.role, method } });
  }
}

/** Shared things every caller uses (networks, images, tokens): only the host's root or an admin changes them. */
export function requireAdmin(c: Caller, what: string): void {
  if (c.kind === "token" && c.role !== "admin") {
    throw new ForbiddenError(`${describeCaller(c)} cannot ${what}: only the host's root or an admin token can`, { hint: "ask the host's root, or use an admin token", details: { caller: c.name, role: c.role } });
  }
}

/** Tokens are made and removed by the host's root alone (over the Unix socket): no token mints another. */
export function requireHostRoot(c: Caller, what: string): void {
  if (c.kind !== "host-root") {
    throw new ForbiddenError(`${describeCaller(c)} cannot ${what}: only the host's root can, on the daemon's Unix socket`, { hint: "run mvm token ... as the daemon's user on its host", details: { caller: c.name, role: c.role } });
  }
}

/** The answer for a VM the caller may not see: word for word the store's for a VM that does not exist. */
export const vmNotFound = (ref: string): NotFoundError => new NotFoundError(`no VM named ${ref}`, { hint: "list VMs with mvm ps -a", details: { vm: ref } });
