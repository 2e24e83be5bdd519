// Host files that a spec or a request names (a kernel, an initrd, a disk, an image to import) are read here
// and only here. open() without O_NONBLOCK waits for a writer on a FIFO, and on some character devices for
// a carrier, inside the daemon's event loop: a spec naming one would hang every VM's daemon. So the file is
// opened without blocking, and what it is, is asked of the open descriptor (no race with a rename): a
// regular file, or a block device where the caller takes one.

import { closeSync, constants, fstatSync, openSync, readSync } from "node:fs";
import type { MvmError, MvmErrorOptions } from "../errors.js";

export interface HostFileRule {
  /** What the file is for, in messages: "kernel", "disk", "image file". */
  what: string;
  error: new (message: string, options?: MvmErrorOptions) => MvmError;
  hint: string;
  /** A block device is taken too (disks, images to import). */
  blockDevice?: boolean;
}

/** The first `bytes` bytes of a host file (fewer if it is shorter), once it is known to be a file mvm takes. */
export function readHostFileHead(path: string, bytes: number, rule: HostFileRule): Buffer {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY);
  } catch (e) {
    throw new rule.error(`cannot read ${rule.what} ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, { hint: rule.hint, cause: e });
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile() && !(rule.blockDevice && st.isBlockDevice())) {
      throw new rule.error(`${rule.what} ${path} is not a regular file${rule.blockDevice ? " or a block device" : ""}`, { hint: rule.hint });
    }
    const head = Buffer.alloc(bytes);
    let n = 0;
    try {
      n = bytes ? readSync(fd, head, 0, bytes, 0) : 0;
    } catch (e) {
      throw new rule.error(`cannot read ${rule.what} ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, { hint: rule.hint, cause: e });
    }
    return head.subarray(0, n);
  } finally {
    closeSync(fd);
  }
}
