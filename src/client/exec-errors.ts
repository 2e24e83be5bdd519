// Turning a command's result into an error, for callers who asked for `check`.

import type { ExecResult } from "../api/command-schemas.js";
import { CommandFailedError, CommandTimedOutError } from "../errors.js";

export function checkResult(argv: string[], r: ExecResult): ExecResult {
  const what = JSON.stringify(argv.join(" ").slice(0, 200));
  if (r.timedOut) {
    throw new CommandTimedOutError(`${what} timed out after ${Math.round(r.durationMs)} ms and was killed`, { details: { result: r }, hint: "give it a longer timeout" });
  }
  if (r.status !== 0) {
    throw new CommandFailedError(`${what} failed with status ${r.status}${r.message ? `: ${r.message}` : ""}`, { details: { result: r } });
  }
  return r;
}
