// Checks a request body (or an upgraded stream's first line) against its schema, reported as a bad VM spec
// is (src/vmspec/schema-check.ts), as a BAD_REQUEST; and what every JSON message the daemon takes must be
// before any schema looks at it.

import type { Static, TSchema } from "@sinclair/typebox";
import { BadRequestError } from "../errors.js";
import { checkAgainst, findNul, showPath } from "../vmspec/schema-check.js";

const kind = (v: unknown): string => (v === null ? "null" : Array.isArray(v) ? "an array" : `a ${typeof v}`);

/**
 * Every JSON message the daemon takes (a request body, a line of an upgraded exec stream) is an object, and
 * no string in it, key or value, holds a NUL byte (none could reach a path, an argv or the guest's
 * configuration intact). Checked once, where the JSON is parsed, for every route alike.
 */
export function requireJsonObject(value: unknown, what = "the request body"): Record<string, unknown> {
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new BadRequestError(`${what} must be a JSON object, not ${kind(value)}`, { hint: "send an object ({} where every key is optional); GET /v1/openapi.json describes every request" });
  }
  const nul = findNul(value);
  if (nul !== undefined) {
    const problem = `${showPath(nul)}: holds a NUL byte`;
    throw new BadRequestError(`${what} is refused: ${problem}`, { hint: "remove the NUL byte: no name, path, argument or value can carry one", details: { problems: [problem] } });
  }
  return value as Record<string, unknown>;
}

export const checkBody = <T extends TSchema>(schema: T, value: unknown, what: string): Static<T> =>
  checkAgainst(schema, value, { what, hint: "GET /v1/openapi.json describes every request", error: BadRequestError });
