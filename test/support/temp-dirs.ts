// Temporary folders for unit tests, removed when the test file is done (node:test runs each file in a
// process of its own, and this module registers one `after` for it the first time it is imported).

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after } from "node:test";

const made: string[] = [];
after(() => {
  for (const d of made.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** A new folder under the system's temporary folder, named PREFIX + six random characters. */
export function tempDir(prefix: string): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  made.push(d);
  return d;
}
