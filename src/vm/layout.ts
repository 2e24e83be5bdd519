// A VM's directory: where its sockets, configuration and logs live, and how those logs are read and capped.
// The daemon keeps one per VM under $MVM_HOME/vms/<id>; a one-off launch makes a temporary one.

import { closeSync, copyFileSync, fstatSync, openSync, readSync, statSync, truncateSync } from "node:fs";
import { join } from "node:path";

/** The directory of VM `id` under a daemon home. */
export const vmDir = (home: string, id: string): string => join(home, "vms", id);

export const vmFiles = (dir: string) => ({
  agentSocket: join(dir, "agent.sock"),
  consoleSocket: join(dir, "console.sock"),
  qmpSocket: join(dir, "qmp.sock"),
  config: join(dir, "config"),
  consoleLog: join(dir, "console.log"),
  qemuLog: join(dir, "qemu.log"),
  /** The copy-on-write overlay over an image (VMs booted from one). */
  rootOverlay: join(dir, "root.qcow2"),
});

export type VmFiles = ReturnType<typeof vmFiles>;

/** At most this much of the console is kept in memory, and read back from the log. */
export const CONSOLE_CAP = 256 * 1024;

/** The last `max` bytes of a file, or "" when it cannot be read. */
export function readTail(path: string, max = CONSOLE_CAP): string {
  let fd: number | undefined;
  try {
    fd = openSync(path, "r");
    const size = fstatSync(fd).size;
    const len = Math.min(size, max);
    const buf = Buffer.alloc(len);
    readSync(fd, buf, 0, len, size - len);
    return buf.toString("latin1");
  } catch {
    return "";
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/** Keeps a log QEMU appends to under `cap`: the old part moves to .1 (a few bytes may fall between). */
export function capLog(path: string, cap = 1024 * 1024): void {
  try {
    if (statSync(path).size <= cap) return;
    copyFileSync(path, `${path}.1`);
    truncateSync(path, 0);
  } catch {
    /* not there yet */
  }
}
