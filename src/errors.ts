// The error tree. Every error mvm raises is an MvmError carrying a stable code, a hint that says how to fix
// it, and the details a person needs (the input, the state, the tail of QEMU's output...). The CLI prints
// message + hint; the API will map each class to one HTTP status.

export interface MvmErrorOptions {
  hint?: string;
  details?: Record<string, unknown>;
  cause?: unknown;
}

export class MvmError extends Error {
  readonly code: string = "MVM_ERROR";
  readonly hint?: string;
  readonly details: Record<string, unknown>;

  constructor(message: string, options: MvmErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.hint = options.hint;
    this.details = options.details ?? {};
  }

  toJSON(): Record<string, unknown> {
    return { error: this.code, message: this.message, hint: this.hint, details: this.details };
  }
}

/** The channel to the guest agent closed: the VM went away (stopped, crashed, killed). */
export class AgentDisconnectedError extends MvmError {
  override readonly code: string = "VM_GONE";
}

/** The guest agent died and init restarted it: the VM is up, but what the old agent ran is lost. */
export class AgentRestartedError extends AgentDisconnectedError {
  override readonly code: string = "AGENT_RESTARTED";
}

/** A command ended with a non-zero status (only when the caller asked for `check`). */
export class CommandFailedError extends MvmError {
  override readonly code: string = "COMMAND_FAILED";
}

/** A command was killed because its timeout passed (only when the caller asked for `check`). */
export class CommandTimedOutError extends CommandFailedError {
  override readonly code: string = "COMMAND_TIMED_OUT";
}

/** The agent refused a request or the two sides disagree on the protocol. */
export class AgentProtocolError extends MvmError {
  override readonly code = "AGENT_PROTOCOL";
}

/** Waiting for the guest took longer than its deadline. */
export class TimeoutError extends MvmError {
  override readonly code = "TIMEOUT";
}

/** A caller's AbortSignal fired. */
export class AbortError extends MvmError {
  override readonly code = "ABORTED";
}

/** Building or finding the guest kernel and initramfs failed. */
export class GuestBuildError extends MvmError {
  override readonly code = "GUEST_BUILD";
}

/** QEMU ended, or the guest never became ready, while a VM was booting. Details carry argv and output. */
export class BootError extends MvmError {
  override readonly code = "BOOT_FAILED";
}

/** QEMU answered a QMP command with an error. Details carry the command, its arguments and the reply. */
export class QmpCommandError extends MvmError {
  override readonly code = "QMP_ERROR";
}

/** The QMP connection closed or never completed its handshake. */
export class QmpDisconnectedError extends MvmError {
  override readonly code = "QMP_DISCONNECTED";
}

const ERRNO_NAMES: Record<number, string> = {
  1: "EPERM", 2: "ENOENT", 5: "EIO", 13: "EACCES", 17: "EEXIST", 18: "EXDEV", 20: "ENOTDIR", 21: "EISDIR", 22: "EINVAL",
  27: "EFBIG", 28: "ENOSPC", 30: "EROFS", 36: "ENAMETOOLONG", 39: "ENOTEMPTY", 40: "ELOOP", 122: "EDQUOT", 125: "ECANCELED",
};

/** A file operation failed inside the guest; details carry the guest's errno and its name. */
export class GuestFileError extends MvmError {
  override readonly code: string;

  constructor(message: string, errno: number | undefined, options: MvmErrorOptions = {}) {
    const name = errno === undefined ? undefined : (ERRNO_NAMES[errno] ?? `errno ${errno}`);
    super(message, { ...options, details: { errno, errnoName: name, ...options.details } });
    this.code = name === "ENOENT" ? "FILE_NOT_FOUND" : name === "EEXIST" ? "FILE_EXISTS" : name === "ENOSPC" || name === "EDQUOT" ? "GUEST_DISK_FULL" : "FILE_ERROR";
  }
}

/** Bytes arrived, but not the bytes that were sent: the end-to-end checksum differs. */
export class IntegrityError extends MvmError {
  override readonly code = "INTEGRITY";
}

/** A disk this VM needs is locked by another VM or program (QEMU's image locking). */
export class DiskInUseError extends MvmError {
  override readonly code = "DISK_IN_USE";
}

/** No QEMU binary here can run this VM (missing, or lacking a device or accelerator the VM needs). */
export class BinaryUnusableError extends MvmError {
  override readonly code = "QEMU_UNUSABLE";
}
