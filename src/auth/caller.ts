// Who is asking. Every request the daemon serves carries a caller: over the Unix socket (mode 0600, so only
// the daemon's user reaches it) that is the host's root; on the network listener it is the bearer token's
// (src/daemon/access.ts). Library use (a VmManager called in-process) is the host's root too. What a caller
// may do is decided from this alone: which host paths it may name (host-paths.ts), which VMs it sees and
// what its role allows (ownership.ts), how much it may make (quotas.ts).

import { ForbiddenError } from "../errors.js";

export type TokenRole = "admin" | "user" | "read";

/** A token's limits over the VMs it owns (src/auth/quotas.ts); a limit left out is none. */
export interface Quota {
  maxVms?: number;
  maxCpus?: number;
  maxMemoryMiB?: number;
}

export type Caller = { kind: "host-root" } | { kind: "token"; name: string; role: TokenRole; quota?: Quota };

/** The host's root: the daemon's own user, on the Unix socket or in-process. */
export const HOST_ROOT: Caller = Object.freeze({ kind: "host-root" });

/** For messages: "the host's root", "token ci (role user)". */
export const describeCaller = (c: Caller): string => (c.kind === "host-root" ? "the host's root" : `token ${c.name} (role ${c.role})`);

/** The host's root and admin tokens may name any host path, and register named volumes. */
export const mayNameAnyHostPath = (c: Caller): boolean => c.kind === "host-root" || c.role === "admin";

/** A read-only caller sees, and makes nothing (no VM, no image): ForbiddenError otherwise. */
export function requireMayCreate(c: Caller, what: string): void {
  if (c.kind === "token" && c.role === "read") {
    throw new ForbiddenError(`${describeCaller(c)} cannot ${what}: a read token only sees`, { hint: "use a user or admin token", details: { caller: c.name, role: c.role } });
  }
}

/** Registering and removing named volumes is for callers who may name any host path anyway. */
export function requireHostPathAdmin(c: Caller, what: string): void {
  if (!mayNameAnyHostPath(c)) {
    throw new ForbiddenError(`${describeCaller(c)} cannot ${what}: only the host's root (or an admin token) registers host folders`, {
      hint: "ask the host's root to run mvm volume create NAME PATH; any caller may then share it with -v NAME:/guest/dir",
      details: { caller: c.kind === "token" ? c.name : c.kind, role: c.kind === "token" ? c.role : undefined },
    });
  }
}
