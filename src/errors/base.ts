// The root of the error tree. Every class below MvmError names, as statics, its stable code (what the API
// sends as `error` and what tests and scripts compare), the HTTP status the API answers it with, and a
// default hint (used when the throw site has no more precise one). Every constructor takes
// (message, options), so the registry can rebuild any of them from an API body.

export interface MvmErrorOptions {
  hint?: string;
  details?: Record<string, unknown>;
  cause?: unknown;
}

export class MvmError extends Error {
  /** Stable code: the API body's `error`. */
  static readonly code: string = "MVM_ERROR";
  /** The HTTP status the API answers this class with. */
  static readonly status: number = 500;
  /** What to do about it, when the throw site has nothing more precise. */
  static readonly hint: string = "see the message; the daemon log ($MVM_HOME/daemon.log) may say more";

  readonly code: string;
  readonly hint?: string;
  readonly details: Record<string, unknown>;

  constructor(message: string, options: MvmErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = new.target.code;
    this.hint = options.hint ?? new.target.hint;
    this.details = options.details ?? {};
  }

  toJSON(): Record<string, unknown> {
    return { error: this.code, message: this.message, hint: this.hint, details: this.details };
  }
}

/** Something that should not happen did: a bug in mvm. */
export class InternalError extends MvmError {
  static override readonly code: string = "INTERNAL";
  static override readonly status: number = 500;
  static override readonly hint: string = "this is a bug in mvm; the daemon log has the stack";
}
