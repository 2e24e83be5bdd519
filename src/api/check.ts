// Checks a request body (or an upgraded stream's first line) against its schema: every problem named with
// its path, at most five, and the unknown keys called out — the same shape of error as a bad VM spec.

import type { TSchema, Static } from "@sinclair/typebox";
import { Value } from "@sinclair/typebox/value";
import { BadRequestError } from "../errors.js";

export function checkBody<T extends TSchema>(schema: T, value: unknown, what: string): Static<T> {
  if (Value.Check(schema, value)) return value;
  const problems = [...Value.Errors(schema, value)].slice(0, 5).map((e) => `${e.path || "/"}: ${e.message}`);
  const props = (schema as { properties?: Record<string, unknown> }).properties;
  const unknown = props && value && typeof value === "object" ? Object.keys(value).filter((k) => !(k in props)) : [];
  throw new BadRequestError(`invalid ${what}: ${problems.join("; ")}`, {
    hint: unknown.length ? `unknown keys: ${unknown.join(", ")}` : "GET /v1/openapi.json describes every request",
    details: { problems },
  });
}
