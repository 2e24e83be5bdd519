// Signal names and numbers as people write them: 9, KILL, SIGKILL.

import { constants } from "node:os";
import { InvalidArgumentError } from "../errors.js";

export function signalNumber(text: string): number {
  const t = text.trim().toUpperCase();
  if (/^\d+$/.test(t) && Number(t) >= 1 && Number(t) <= 64) return Number(t);
  const n = (constants.signals as Record<string, number>)[t.startsWith("SIG") ? t : `SIG${t}`];
  if (n === undefined) throw new InvalidArgumentError(`unknown signal ${JSON.stringify(text)}`, { hint: "give a name (TERM, KILL, INT, HUP) or a number 1-64" });
  return n;
}
