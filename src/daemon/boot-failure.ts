// QEMU's own words for a few boot failures, turned into errors that say what to do.

import { DiskInUseError, MvmError } from "../errors.js";

export function explainBootFailure(e: unknown): unknown {
  if (!(e instanceof MvmError)) return e;
  const stderr = typeof e.details?.qemuStderr === "string" ? e.details.qemuStderr : "";
  const lock = /Failed to get "(write|read|shared write)" lock/.exec(stderr);
  // Its own match: after a lazy gap an optional group never captures, so the image went unnamed.
  const image = /Is another process using the image \[([^\]]+)\]/.exec(stderr)?.[1];
  if (lock) {
    return new DiskInUseError(`a disk of this VM is in use by another VM or program${image ? `: ${image}` : ""}`, {
      hint: "stop the VM that has it, attach it read-only (:ro) on both, or give this VM a copy",
      details: e.details,
      cause: e,
    });
  }
  return e;
}
