// mvm's errors in the shapes the E2B SDK maps. The control plane answers `{code: <HTTP status>, message}`
// (the SDK reads 401 as AuthenticationError, 404 as not found, kill() → false); envd's Connect services
// answer Connect codes (`{code: "not_found", message}`, with its HTTP status on unary calls, in the
// end-stream message on streams); envd's plain HTTP routes (/files) answer `{code, message}` with the status.

import { errorResponse } from "../daemon/http-errors.js";
import { EnvelopeError } from "./envelope.js";

export type ConnectCode =
  | "canceled" | "unknown" | "invalid_argument" | "deadline_exceeded" | "not_found" | "already_exists" | "permission_denied"
  | "resource_exhausted" | "failed_precondition" | "aborted" | "out_of_range" | "unimplemented" | "internal" | "unavailable" | "unauthenticated";

/** Connect's HTTP status for each code (the protocol's table). */
export const CONNECT_STATUS: Record<ConnectCode, number> = {
  canceled: 499, unknown: 500, invalid_argument: 400, deadline_exceeded: 504, not_found: 404, already_exists: 409, permission_denied: 403,
  resource_exhausted: 429, failed_precondition: 400, aborted: 409, out_of_range: 400, unimplemented: 501, internal: 500, unavailable: 503, unauthenticated: 401,
};

/** An error raised by the E2B layer itself, with the Connect code and control-plane status it stands for. */
export class E2bError extends Error {
  constructor(message: string, readonly code: ConnectCode, readonly status = CONNECT_STATUS[code]) {
    super(message);
  }
}

/** mvm error codes (src/errors.ts) as Connect codes; otherwise by HTTP status. */
const BY_MVM_CODE: Record<string, ConnectCode> = {
  NOT_FOUND: "not_found",
  FILE_NOT_FOUND: "not_found",
  FILE_EXISTS: "already_exists",
  WRONG_STATE: "failed_precondition",
  UNAUTHORIZED: "unauthenticated",
  FORBIDDEN: "permission_denied",
  QUOTA_EXCEEDED: "resource_exhausted",
  AGENT_NOT_CONNECTED: "unavailable",
  GUEST_DISK_FULL: "resource_exhausted",
  TIMEOUT: "deadline_exceeded",
};

function byStatus(status: number): ConnectCode {
  if (status === 400 || status === 422) return "invalid_argument";
  if (status === 401) return "unauthenticated";
  if (status === 403) return "permission_denied";
  if (status === 404) return "not_found";
  if (status === 409) return "failed_precondition";
  if (status === 429) return "resource_exhausted";
  if (status === 502 || status === 503) return "unavailable";
  if (status === 504) return "deadline_exceeded";
  return "internal";
}

const messageOf = (body: Record<string, unknown>): string => (typeof body.message === "string" ? body.message : "error");

/** Any error as a Connect error: its code, message and HTTP status. */
export function connectError(e: unknown): { code: ConnectCode; message: string; status: number } {
  if (e instanceof E2bError) return { code: e.code, message: e.message, status: CONNECT_STATUS[e.code] };
  if (e instanceof EnvelopeError) return { code: e.code, message: e.message, status: CONNECT_STATUS[e.code] };
  const { status, body } = errorResponse(e);
  const mvmCode = typeof body.error === "string" ? body.error : "";
  const code = BY_MVM_CODE[mvmCode] ?? byStatus(status);
  const hint = typeof body.hint === "string" ? ` (${body.hint})` : "";
  return { code, message: `${messageOf(body)}${hint}`, status: CONNECT_STATUS[code] };
}

/** Any error as the control plane's answer: its HTTP status and `{code, message}`. */
export function controlError(e: unknown): { status: number; body: { code: number; message: string } } {
  if (e instanceof E2bError) return { status: e.status, body: { code: e.status, message: e.message } };
  // A body too big is 413 here (429 would make the SDK report a rate limit); a malformed one 400.
  if (e instanceof EnvelopeError) {
    const status = e.code === "resource_exhausted" ? 413 : CONNECT_STATUS[e.code];
    return { status, body: { code: status, message: e.message } };
  }
  const { status, body } = errorResponse(e);
  // 422 (a quota, no cgroups) is a refusal the SDK shows with its message; anything unexpected stays a 500 with one.
  const hint = typeof body.hint === "string" ? ` (${body.hint})` : "";
  return { status, body: { code: status, message: `${messageOf(body)}${hint}` } };
}

/** What envd's front answers for a sandbox id it does not know (or that is not running): the SDK's "not running". */
export const sandboxNotFound = (sandboxId: string) => ({ status: 502, body: { sandboxId, message: "The sandbox was not found", code: 502 } });
