// How the CLI speaks: errors with their hint on stderr, JSON alone on stdout when asked.

import { MvmError } from "../errors.js";

/** Docker's convention: 125 when mvm itself fails. */
export const EXIT_MVM_FAILED = 125;

export function printError(e: unknown, json: boolean): void {
  const err = e instanceof MvmError ? e : undefined;
  if (json) {
    process.stdout.write(`${JSON.stringify(err ? err.toJSON() : { error: "INTERNAL", message: String((e as Error)?.message ?? e) })}\n`);
    return;
  }
  process.stderr.write(`mvm: error: ${err ? err.message : String((e as Error)?.stack ?? e)}\n`);
  if (err?.hint) process.stderr.write(`  hint: ${err.hint}\n`);
  for (const key of ["consoleTail", "qemuStderr", "outputTail"]) {
    const v = err?.details[key];
    if (typeof v === "string" && v.trim()) process.stderr.write(`  ${key}:\n${v.trimEnd().split("\n").slice(-15).map((l) => `    ${l}`).join("\n")}\n`);
  }
}

export const printJson = (value: unknown): void => {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
};

export const progress = (line: string): void => {
  process.stderr.write(`${line}\n`);
};

/** Removes things one by one (stopping at the first failure), naming each, or all as JSON at the end. */
export async function removeEach(names: string[], remove: (name: string) => Promise<void>, json?: boolean): Promise<number> {
  for (const n of names) {
    await remove(n);
    if (!json) process.stdout.write(`${n}\n`);
  }
  if (json) printJson({ removed: names });
  return 0;
}
