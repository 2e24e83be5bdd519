// Saving and loading a guest's state over QMP: QEMU's migration to and from a file, through `exec:cat`
// (QEMU 7.2 has no file: URI, and Node cannot pass a descriptor over the monitor socket). Templates save
// with x-ignore-shared (their RAM stays in the shared file, the state is ~65 KB); snapshots and suspends
// save everything. Every wait has a deadline; a failed migration says what QEMU said.

import { withDeadline } from "../deadline.js";
import { StateFileError } from "../errors.js";
import type { QmpClient } from "./qmp-client.js";

interface MigrateStatus {
  status?: string;
  "error-desc"?: string;
}

/** A path as one shell word: QEMU hands exec: URIs to /bin/sh. */
export function shellWord(path: string): string {
  return `'${path.replaceAll("'", `'\\''`)}'`;
}

async function setIgnoreShared(qmp: QmpClient, on: boolean): Promise<void> {
  await qmp.execute("migrate-set-capabilities", { capabilities: [{ capability: "x-ignore-shared", state: on }] });
}

/** Polls query-migrate until the migration ends; QEMU's events would need the same bookkeeping, and 2 ms polls are cheap. */
async function migrationEnd(qmp: QmpClient, timeoutMs: number, what: string): Promise<void> {
  const poll = async () => {
    for (;;) {
      const s = await qmp.execute<MigrateStatus>("query-migrate");
      if (s.status === "completed") return;
      if (s.status === "failed" || s.status === "cancelled") {
        throw new StateFileError(`${what} failed: ${s["error-desc"] ?? s.status}`, { hint: "check that the disk holding mvm's home (and /dev/shm for templates) has space" });
      }
      await new Promise((r) => setTimeout(r, 2));
    }
  };
  await withDeadline(poll(), { timeoutMs }, `${what} did not finish`);
}

/**
 * Writes the guest's state to `file`. The guest is stopped first and stays stopped (the caller continues
 * or ends it): what is saved is one consistent moment. `ignoreShared` leaves out RAM in shared files.
 */
export async function saveState(qmp: QmpClient, file: string, o: { ignoreShared: boolean; timeoutMs?: number }): Promise<void> {
  await setIgnoreShared(qmp, o.ignoreShared);
  // QEMU caps migration at 32 MiB/s by default (meant for a live network migration): a saved state would
  // take a second per 32 MiB of guest memory.
  await qmp.execute("migrate-set-parameters", { "max-bandwidth": 64 * 1024 ** 3 });
  await qmp.execute("stop");
  await qmp.execute("migrate", { uri: `exec:cat > ${shellWord(file)}` });
  await migrationEnd(qmp, o.timeoutMs ?? 120000, "saving the guest's state");
}

/**
 * Loads a saved state into a QEMU parked at -incoming defer and runs the guest (states are saved stopped,
 * and QEMU keeps the run state it was saved in). `ignoreShared` must match how the state was saved.
 */
export async function loadState(qmp: QmpClient, file: string, o: { ignoreShared: boolean; timeoutMs?: number }): Promise<void> {
  await setIgnoreShared(qmp, o.ignoreShared);
  await qmp.execute("migrate-incoming", { uri: `exec:cat ${shellWord(file)}` });
  await migrationEnd(qmp, o.timeoutMs ?? 120000, "loading the guest's state");
  await qmp.execute("cont");
}
