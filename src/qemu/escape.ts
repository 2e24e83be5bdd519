// QEMU parses "-opt key=value,key=value": a comma inside a value starts a new option unless doubled. Every
// value mvm puts into such a list goes through here, so no path or name can inject an option.

import { QemuOptionValueError } from "../errors.js";

/**
 * A value QEMU takes whole, not as an option list (`-serial file:PATH`, whose path QEMU never splits):
 * passed as it is, commas included. Empty values and control characters are refused.
 */
export function plainValue(value: string, what = "value"): string {
  if (value === "") throw new QemuOptionValueError(`${what} is empty`);
  // eslint-disable-next-line no-control-regex -- matching control characters is the point
  if (/[\x00-\x1f\x7f]/.test(value)) {
    throw new QemuOptionValueError(`${what} ${JSON.stringify(value)} contains control characters`, {
      hint: "rename the file or directory so its path has no newlines or other control characters",
    });
  }
  return value;
}

/** Escapes one value for a comma-separated QEMU option list. Control characters are refused outright. */
export function optValue(value: string, what = "value"): string {
  return plainValue(value, what).replaceAll(",", ",,");
}

/**
 * The first, unnamed value of an option list (`-name GUEST`): QEMU reads "a=b" there as the option a, and
 * an escaped comma would not help, so '=' and ',' are refused rather than escaped.
 */
export function impliedValue(value: string, what = "value"): string {
  if (/[=,]/.test(plainValue(value, what))) throw new QemuOptionValueError(`${what} ${JSON.stringify(value)} contains '=' or ','`, { hint: "use letters, digits, '-', '_' and '.'" });
  return value;
}

/** Builds "a=b,c=d" from pairs, escaping each value. */
export function optList(pairs: Array<[string, string | number | boolean]>): string {
  return pairs.map(([k, v]) => `${k}=${typeof v === "string" ? optValue(v, k) : v === true ? "on" : v === false ? "off" : v}`).join(",");
}
