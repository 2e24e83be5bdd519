// What happens inside the guest: commands that fail (when the caller asked for `check`) and file
// operations the guest refused, one class per errno that matters, chosen by guestFileError().

import { MvmError, type MvmErrorOptions } from "./base.js";

/** A command ended with a non-zero status (only when the caller asked for `check`); details.result has it. */
export class CommandFailedError extends MvmError {
  static override readonly code: string = "COMMAND_FAILED";
  static override readonly status: number = 422;
  static override readonly hint: string = "details.result has its exit code, signal and output";
}

/** A command was killed because its timeout passed (only when the caller asked for `check`). */
export class CommandTimedOutError extends CommandFailedError {
  static override readonly code: string = "COMMAND_TIMED_OUT";
  static override readonly status: number = 504;
  static override readonly hint: string = "give it a longer timeout, or find what it waited for";
}

/** Bytes arrived, but not the bytes that were sent: the end-to-end checksum differs. */
export class IntegrityError extends MvmError {
  static override readonly code: string = "INTEGRITY";
  static override readonly status: number = 502;
  static override readonly hint: string = "copy it again; nothing was kept from the damaged transfer";
}

/** A file operation failed inside the guest; details carry the guest's errno and its name. */
export class GuestFileError extends MvmError {
  static override readonly code: string = "FILE_ERROR";
  static override readonly status: number = 400;
  static override readonly hint: string = "details.errnoName says what the guest's file system answered";
}

/** The path does not exist in the guest (ENOENT). */
export class FileNotFoundError extends GuestFileError {
  static override readonly code: string = "FILE_NOT_FOUND";
  static override readonly status: number = 404;
  static override readonly hint: string = "check the path inside the VM (mvm exec NAME -- ls -la DIR)";
}

/** The path exists already in the guest (EEXIST). */
export class FileExistsError extends GuestFileError {
  static override readonly code: string = "FILE_EXISTS";
  static override readonly status: number = 409;
  static override readonly hint: string = "the path exists already";
}

/** The guest's disk or quota is full (ENOSPC, EDQUOT); nothing was left half-written. */
export class GuestDiskFullError extends GuestFileError {
  static override readonly code: string = "GUEST_DISK_FULL";
  static override readonly status: number = 507;
  static override readonly hint: string = "the VM's disk is full; give it a bigger one (--disk-size) or free space; nothing was left half-written";
}

const ERRNO_NAMES: Record<number, string> = {
  1: "EPERM", 2: "ENOENT", 5: "EIO", 13: "EACCES", 17: "EEXIST", 18: "EXDEV", 20: "ENOTDIR", 21: "EISDIR", 22: "EINVAL",
  27: "EFBIG", 28: "ENOSPC", 30: "EROFS", 36: "ENAMETOOLONG", 39: "ENOTEMPTY", 40: "ELOOP", 122: "EDQUOT", 125: "ECANCELED",
};

/** The GuestFileError for a guest errno (FileNotFoundError for ENOENT...); details get errno and errnoName. */
export function guestFileError(message: string, errno: number | undefined, options: MvmErrorOptions = {}): GuestFileError {
  const errnoName = errno === undefined ? undefined : (ERRNO_NAMES[errno] ?? `errno ${errno}`);
  const cls =
    errnoName === "ENOENT" ? FileNotFoundError
    : errnoName === "EEXIST" ? FileExistsError
    : errnoName === "ENOSPC" || errnoName === "EDQUOT" ? GuestDiskFullError
    : GuestFileError;
  return new cls(message, { ...options, details: { errno, errnoName, ...options.details } });
}
