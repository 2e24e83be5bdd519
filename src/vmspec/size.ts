// Memory sizes as users write them: "256" (MiB), "256M", "1G", "512MiB". Whole MiB only.

import { InvalidSizeError } from "../errors.js";

const UNITS: Record<string, number> = { "": 1, m: 1, mb: 1, mib: 1, g: 1024, gb: 1024, gib: 1024 };

export function parseMemoryMiB(input: string | number, limits = { min: 64, max: 1024 * 1024 }): number {
  const text = String(input).trim();
  const m = /^(\d+)\s*([a-z]*)$/i.exec(text);
  const unit = m ? UNITS[m[2]!.toLowerCase()] : undefined;
  if (!m || unit === undefined) {
    throw new InvalidSizeError(`invalid memory size ${JSON.stringify(text)}`, { hint: "write MiB as a number (256) or with a unit: 256M, 1G" });
  }
  const mib = Number(m[1]) * unit;
  if (!Number.isSafeInteger(mib) || mib < limits.min || mib > limits.max) {
    throw new InvalidSizeError(`memory size ${text} is out of range`, { hint: `give between ${limits.min} MiB and ${limits.max} MiB` });
  }
  return mib;
}
