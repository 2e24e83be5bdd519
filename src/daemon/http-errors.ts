// One HTTP status per error class, one body shape for all: { error, message, hint, details }.

import { MvmError } from "../errors.js";

const STATUS: Record<string, number> = {
  INVALID_SPEC: 400,
  INVALID_SIZE: 400,
  INVALID_KERNEL: 400,
  INVALID_GUEST_CONFIG: 400,
  INVALID_QEMU_VALUE: 400,
  BAD_REQUEST: 400,
  NOT_FOUND: 404,
  NAME_TAKEN: 409,
  PORT_IN_USE: 409,
  ADDRESS_TAKEN: 409,
  INVALID_SUBNET: 400,
  HOST_NETWORK: 403,
  DISK_IN_USE: 409,
  INVALID_STORAGE: 400,
  INVALID_PORT: 400,
  WRONG_STATE: 409,
  TIMEOUT: 504,
  ABORTED: 499,
  FILE_NOT_FOUND: 404,
  FILE_EXISTS: 409,
  FILE_ERROR: 400,
  GUEST_DISK_FULL: 507,
  INTEGRITY: 502,
  VM_GONE: 502,
  AGENT_RESTARTED: 502,
};

export class BadRequestError extends MvmError {
  override readonly code = "BAD_REQUEST";
}

export function errorResponse(e: unknown): { status: number; body: Record<string, unknown> } {
  if (e instanceof MvmError) return { status: STATUS[e.code] ?? 500, body: e.toJSON() };
  const fastifyError = e as { statusCode?: number; message?: string; validation?: unknown };
  if (fastifyError.statusCode && fastifyError.statusCode < 500) {
    return { status: fastifyError.statusCode, body: { error: "BAD_REQUEST", message: fastifyError.message ?? "bad request", hint: "see docs/api.md" } };
  }
  return { status: 500, body: { error: "INTERNAL", message: (e as Error)?.message ?? String(e), hint: "this is a bug in mvm; the daemon log has the stack" } };
}

export function errorFromBody(status: number, body: { error?: string; message?: string; hint?: string; details?: Record<string, unknown> }): MvmError {
  const err = new MvmError(body.message ?? `daemon answered ${status}`, { hint: body.hint, details: { ...body.details, status } });
  Object.defineProperty(err, "code", { value: body.error ?? "DAEMON_ERROR" });
  return err;
}
