// Checking a value against a TypeBox schema, the one way mvm reports it: every problem named with its path
// (at most five) in the message and details, and the unknown keys called out in the hint. Used for the VM
// spec here and for every other request body (src/api/check.ts).

import type { Static, TSchema } from "@sinclair/typebox";
import { Value } from "@sinclair/typebox/value";
import type { MvmError, MvmErrorOptions } from "../errors.js";

export function checkAgainst<T extends TSchema>(
  schema: T,
  value: unknown,
  o: { what: string; hint: string; error: new (message: string, options?: MvmErrorOptions) => MvmError },
): Static<T> {
  if (Value.Check(schema, value)) return value;
  const problems = [...Value.Errors(schema, value)].slice(0, 5).map((e) => `${e.path || "/"}: ${e.message}`);
  const props = (schema as { properties?: Record<string, unknown> }).properties;
  const unknown = props && value && typeof value === "object" ? Object.keys(value).filter((k) => !(k in props)) : [];
  throw new o.error(`invalid ${o.what}: ${problems.join("; ")}`, {
    hint: unknown.length ? `unknown keys: ${unknown.join(", ")}` : o.hint,
    details: { problems },
  });
}
