// One code → class registry, built from the classes of the error tree. The daemon answers an error with
// its class's status; a client rebuilds the class from the body, so `instanceof` works on both sides.

import * as access from "./access.js";
import * as base from "./base.js";
import * as daemon from "./daemon.js";
import * as guest from "./guest.js";
import * as host from "./host.js";
import * as http from "./http.js";
import * as input from "./input.js";
import * as resources from "./resources.js";
import * as vm from "./vm.js";
import { MvmError } from "./base.js";

type ErrorClass = typeof MvmError;

const isErrorClass = (v: unknown): v is ErrorClass => v === MvmError || (typeof v === "function" && v.prototype instanceof MvmError);

const registry = new Map<string, ErrorClass>();
for (const cls of [base, input, resources, access, host, daemon, vm, guest, http].flatMap((m) => Object.values(m)).filter(isErrorClass)) {
  const known = registry.get(cls.code);
  if (known && known !== cls) throw new Error(`error code ${cls.code} belongs to both ${known.name} and ${cls.name}`);
  registry.set(cls.code, cls);
}

/** The class of an error code, or undefined for a code this version of mvm does not know. */
export const errorClassFor = (code: string): ErrorClass | undefined => registry.get(code);

/** Every registered class (MvmError itself included), one per code. */
export const errorClasses = (): ErrorClass[] => [...registry.values()];

/** What an API error body (or a stream's error event) holds. */
export interface ErrorBody {
  error?: unknown;
  message?: unknown;
  hint?: unknown;
  details?: unknown;
}

/**
 * Rebuilds the error a daemon answered: an instance of the class its code names, with its message, hint
 * and details. `status` (the HTTP status it came with, when there was one) goes into details.status. A
 * code this version does not know becomes a plain MvmError carrying that code.
 */
export function errorFromBody(status: number | undefined, body: ErrorBody): MvmError {
  const code = typeof body.error === "string" ? body.error : "DAEMON_ERROR";
  const cls = errorClassFor(code) ?? MvmError;
  const details = body.details && typeof body.details === "object" ? { ...(body.details as Record<string, unknown>) } : {};
  if (status !== undefined) details.status = status;
  const message = typeof body.message === "string" ? body.message : `daemon answered ${status ?? "an error"}`;
  const err = new cls(message, { hint: typeof body.hint === "string" ? body.hint : undefined, details });
  if (err.code !== code) Object.defineProperty(err, "code", { value: code, enumerable: true });
  return err;
}
