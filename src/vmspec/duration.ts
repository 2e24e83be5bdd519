// Durations as users write them for a VM's time-to-live: "90s", "10m", "1h30m", "2d", or a number of
// seconds. Whole seconds; bounded so that an end time is always a date JavaScript can hold.

import { InvalidSpecError } from "../errors.js";

const UNIT_MS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
/** A year: longer than any sandbox should live unattended, and far from Date's range. */
export const MAX_TTL_MS = 365 * 86_400_000;

export function parseDurationMs(input: string | number, what = "ttl"): number {
  const text = String(input).trim();
  let ms = 0;
  if (/^\d+$/.test(text)) ms = Number(text) * 1000;
  else {
    const parts = /^(?:\d+[smhd])+$/i.test(text) ? text.match(/\d+[smhd]/gi) ?? [] : [];
    if (!parts.length) throw new InvalidSpecError(`invalid ${what} ${JSON.stringify(text)}`, { hint: `write seconds (600) or a duration with units s, m, h, d: 90s, 10m, 1h30m` });
    for (const p of parts) ms += Number(p.slice(0, -1)) * UNIT_MS[p.slice(-1).toLowerCase()]!;
  }
  if (!Number.isSafeInteger(ms) || ms < 1000 || ms > MAX_TTL_MS) throw new InvalidSpecError(`${what} ${text} is out of range`, { hint: "give between 1 s and 365 d" });
  return ms;
}

/** 600000 → "10m", 5400000 → "1h30m": how ps and inspect show a time left. */
export function formatDuration(ms: number): string {
  let s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s}s`;
  const out: string[] = [];
  for (const [unit, size] of [["d", 86400], ["h", 3600], ["m", 60], ["s", 1]] as const) {
    if (s >= size) {
      out.push(`${Math.floor(s / size)}${unit}`);
      s %= size;
    }
    if (out.length === 2) break;
  }
  return out.join("");
}
