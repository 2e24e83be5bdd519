// QEMU's own words for a few boot failures, turned into errors that say what to do.

import { DiskInUseError, MvmError } from "../errors.js";

export function explainBootFailure(e: unknown): unknown {
  if (!(e instanceof MvmError)) return e;
  const stderr = typeof e.details?.qemuStderr === "string" ? e.details.qemuStderr : "";
  const lock = /Failed to get "(write|read|shared write)" lock[\s\S]*?(?:Is another process using the image \[([^\]]+)\])?/.exec(stderr);
  if (lock) {
    return new DiskInUseError(`a disk of this VM is in use by another VM or program${lock[2] ? `: ${lock[2]}` : ""}`, {
      hint: "stop the VM that has it, attach it read-only (:ro) on both, or give this VM a copy",
      details: e.details,
      cause: e,
    });
  }
  return e;
}
