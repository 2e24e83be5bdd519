// Checks a request body (or an upgraded stream's first line) against its schema, reported as a bad VM spec
// is (src/vmspec/schema-check.ts), as a BAD_REQUEST.

import type { Static, TSchema } from "@sinclair/typebox";
import { BadRequestError } from "../errors.js";
import { checkAgainst } from "../vmspec/schema-check.js";

export const checkBody = <T extends TSchema>(schema: T, value: unknown, what: string): Static<T> =>
  checkAgainst(schema, value, { what, hint: "GET /v1/openapi.json describes every request", error: BadRequestError });
