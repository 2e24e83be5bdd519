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

/** The channel to the guest agent closed, so the VM stopped or its agent went away. */
export class AgentDisconnectedError extends MvmError {
  override readonly code = "AGENT_DISCONNECTED";
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
