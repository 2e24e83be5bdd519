// Checking a value against a TypeBox schema, the one way mvm reports it: every problem named with its path
// (at most five) in the message and details, and the unknown keys called out in the hint. Used for the VM
// spec here and for every other request body (src/api/check.ts). No string in a checked value may hold a
// NUL byte, whatever its schema says: none can reach QEMU's argv, the guest's configuration, a file name or
// a command's argv and mean what it says.

import type { Static, TSchema } from "@sinclair/typebox";
import { Value } from "@sinclair/typebox/value";
import type { MvmError, MvmErrorOptions } from "../errors.js";

/**
 * The path (a JSON pointer) of the first string, or object key, that holds a NUL byte; undefined when none
 * does. Iterative: a deeply nested value (JSON.parse takes any depth) cannot overflow the stack.
 */
export function findNul(value: unknown): string | undefined {
  const stack: Array<[unknown, string]> = [[value, ""]];
  while (stack.length) {
    const [v, path] = stack.pop()!;
    if (typeof v === "string") {
      if (v.includes("\0")) return path || "/";
    } else if (v !== null && typeof v === "object") {
      for (const [k, child] of Object.entries(v)) {
        const at = `${path}/${k.replaceAll("~", "~0").replaceAll("/", "~1")}`;
        if (k.includes("\0")) return at;
        stack.push([child, at]);
      }
    }
  }
  return undefined;
}

/** A path for a message: as it is, unless it holds characters a reader would not see (a NUL, a newline). */
// eslint-disable-next-line no-control-regex -- matching control characters is the point
export const showPath = (path: string): string => (/[\x00-\x1f\x7f]/.test(path) ? JSON.stringify(path) : path);

export function checkAgainst<T extends TSchema>(
  schema: T,
  value: unknown,
  o: { what: string; hint: string; error: new (message: string, options?: MvmErrorOptions) => MvmError },
): Static<T> {
  const nul = findNul(value);
  if (nul !== undefined) {
    const problem = `${showPath(nul)}: holds a NUL byte`;
    throw new o.error(`invalid ${o.what}: ${problem}`, { hint: "remove the NUL byte: no name, path, argument or value can carry one", details: { problems: [problem] } });
  }
  if (Value.Check(schema, value)) return value;
  // A field's description says what it takes, where TypeBox's message only quotes the pattern.
  const problems = [...Value.Errors(schema, value)].slice(0, 5).map((e) => `${showPath(e.path || "/")}: ${e.message}${typeof e.schema.description === "string" ? ` (${e.schema.description})` : ""}`);
  const props = (schema as { properties?: Record<string, unknown> }).properties;
  const unknown = props && value && typeof value === "object" ? Object.keys(value).filter((k) => !(k in props)) : [];
  throw new o.error(`invalid ${o.what}: ${problems.join("; ")}`, {
    hint: unknown.length ? `unknown keys: ${unknown.join(", ")}` : o.hint,
    details: { problems },
  });
}
