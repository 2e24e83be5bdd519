// The daemon as its clients see it: not running, failing to start, already running, gone mid-stream.
// Raised by the client library and the daemon's start-up, not by API routes; their statuses say what an
// HTTP proxy in front of the daemon would answer.

import { MvmError } from "./base.js";

/** Another daemon already serves this home ($MVM_HOME). */
export class DaemonAlreadyRunningError extends MvmError {
  static override readonly code: string = "DAEMON_ALREADY_RUNNING";
  static override readonly status: number = 409;
  static override readonly hint: string = "use it, or stop it first";
}

/** The daemon could not be started (it exited, or did not say ready in time); details.logTail has its log. */
export class DaemonStartError extends MvmError {
  static override readonly code: string = "DAEMON_START_FAILED";
  static override readonly status: number = 503;
  static override readonly hint: string = "see $MVM_HOME/daemon.log";
}

/** No daemon answers, and the caller asked not to start one. */
export class DaemonNotRunningError extends MvmError {
  static override readonly code: string = "DAEMON_NOT_RUNNING";
  static override readonly status: number = 503;
  static override readonly hint: string = "start it with mvm daemon, or let the CLI start it";
}

/** The daemon closed a stream (a command's output, an image build) before it ended. */
export class DaemonDisconnectedError extends MvmError {
  static override readonly code: string = "DAEMON_DISCONNECTED";
  static override readonly status: number = 502;
  static override readonly hint: string = "the daemon may have restarted; mvm ps shows the VM's state";
}
