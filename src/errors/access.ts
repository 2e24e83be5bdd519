// Who may do what: a caller (src/auth/caller.ts) asking for something its role does not allow. 403: the
// same request from the host's root (or an admin token) would be taken; from this caller it never will.

import { MvmError } from "./base.js";

/** The caller may not make this call at all (a read-only caller creating a VM, importing an image). */
export class ForbiddenError extends MvmError {
  static override readonly code: string = "FORBIDDEN";
  static override readonly status: number = 403;
  static override readonly hint: string = "ask for this with a caller whose role allows it (the host's root, or an admin or user token)";
}

/**
 * The caller named a host path it may not name (docs/vm-spec.md, "Who may name host paths"): only the host's
 * root and admin tokens name any path; others get registered images, named volumes and the allowed roots.
 * details carry the path as given, what it resolved to, what it was for and the allowed roots.
 */
export class HostPathForbiddenError extends ForbiddenError {
  static override readonly code: string = "HOST_PATH_FORBIDDEN";
  static override readonly hint: string =
    "boot a registered image (--image NAME), share a named volume (-v NAME:/guest/dir; the host's root makes one with mvm volume create), or ask the host's root to allow a root (MVM_ALLOWED_ROOTS or $MVM_HOME/allowed-roots)";
}

/**
 * A request on the network listener without a valid token: no `Authorization: Bearer TOKEN` header, a
 * malformed one, or a token the daemon does not know (never made, or removed). Answered with
 * `WWW-Authenticate: Bearer`.
 */
export class UnauthorizedError extends MvmError {
  static override readonly code: string = "UNAUTHORIZED";
  static override readonly status: number = 401;
  static override readonly hint: string = "send Authorization: Bearer TOKEN with a token the host's root made (mvm token create NAME)";
}

/**
 * A token's quota (VMs, vCPUs or memory summed over the VMs it owns) would be exceeded by this VM. details
 * carry the quota, what the token uses now and what the VM asks for. 429: removing one of its VMs makes
 * the same request pass.
 */
export class QuotaExceededError extends MvmError {
  static override readonly code: string = "QUOTA_EXCEEDED";
  static override readonly status: number = 429;
  static override readonly hint: string = "remove one of this token's VMs (mvm rm), ask for fewer vCPUs or less memory, or ask the host's root for a larger quota";
}
