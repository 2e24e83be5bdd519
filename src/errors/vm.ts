// A running VM as the daemon reaches it: booting, QMP (the daemon's channel to QEMU) and the guest agent
// (its channel into the guest). The VM is the daemon's upstream, so its failures are 502 (the VM failed,
// not the daemon), 503 while the agent is not there, 504 when it was too slow.

import { MvmError } from "./base.js";

/**
 * QEMU ended, or the guest never became ready, while a VM was booting; details carry argv, qemuStderr and
 * consoleTail. 502, not 500: the daemon did its part and the VM (QEMU, the kernel, the image) failed, and
 * what to fix is in the VM's output, not in the daemon.
 */
export class BootError extends MvmError {
  static override readonly code: string = "BOOT_FAILED";
  static override readonly status: number = 502;
  static override readonly hint: string = "read qemuStderr and consoleTail in details (mvm logs --console NAME has the whole console)";
}

/** QEMU answered a QMP command with an error; details carry the command, its arguments and the reply. */
export class QmpCommandError extends MvmError {
  static override readonly code: string = "QMP_ERROR";
  static override readonly status: number = 502;
  static override readonly hint: string = "QEMU refused the command; the VM's state may not allow it (mvm ps -a)";
}

/** The QMP connection to QEMU closed, never completed its handshake, or this daemon has none. */
export class QmpDisconnectedError extends MvmError {
  static override readonly code: string = "QMP_DISCONNECTED";
  static override readonly status: number = 502;
  static override readonly hint: string = "QEMU has exited or closed its monitor; kill the VM (mvm kill NAME) and start it again";
}

/** The VM is running but its guest agent is not connected (yet, any more, or ever: a console-ready VM). */
export class AgentNotConnectedError extends MvmError {
  static override readonly code: string = "AGENT_NOT_CONNECTED";
  static override readonly status: number = 503;
  static override readonly hint: string = "the VM may be stopping or its agent restarting; check mvm ps and try again";
}

/** The channel to the guest agent closed: the VM went away (stopped, crashed, killed). */
export class AgentDisconnectedError extends MvmError {
  static override readonly code: string = "VM_GONE";
  static override readonly status: number = 502;
  static override readonly hint: string = "the VM stopped or crashed meanwhile; mvm ps -a and mvm inspect NAME say how";
}

/** The guest agent died and init restarted it: the VM is up, but what the old agent ran is lost. */
export class AgentRestartedError extends AgentDisconnectedError {
  static override readonly code: string = "AGENT_RESTARTED";
  static override readonly hint: string = "the VM is up again; run the command again (the guest's console log says why the agent died)";
}

/** The agent refused a request or the two sides disagree on the protocol; details carry the agent's code. */
export class AgentProtocolError extends MvmError {
  static override readonly code: string = "AGENT_PROTOCOL";
  static override readonly status: number = 502;
  static override readonly hint: string = "this is a bug or a version mismatch between mvm and the guest agent; rebuild the guest with scripts/setup.sh";
}

/** Waiting for the guest (boot, a reply, a stop) took longer than its deadline. */
export class TimeoutError extends MvmError {
  static override readonly code: string = "TIMEOUT";
  static override readonly status: number = 504;
  static override readonly hint: string = "the host may be loaded (TCG is slow); try again, or give a longer timeout";
}

/** A caller's AbortSignal fired. 499: the client gave up (nginx's "client closed request"). */
export class AbortError extends MvmError {
  static override readonly code: string = "ABORTED";
  static override readonly status: number = 499;
  static override readonly hint: string = "the caller cancelled it";
}

/** Saving or loading a guest's state (template, snapshot, suspend) failed: QEMU's reason is in the message. */
export class StateFileError extends MvmError {
  static override readonly code: string = "STATE_FILE";
  static override readonly status: number = 502;
  static override readonly hint: string = "check free space where mvm keeps its home and in /dev/shm; the VM itself was left as it was";
}

/** The VM's guest agent predates a capability the request needs (forward, watch): it runs an older guest. */
export class AgentCapabilityError extends MvmError {
  static override readonly code: string = "AGENT_CAPABILITY";
  static override readonly status: number = 409;
  static override readonly hint: string = "the VM runs an older guest agent: restart the VM on the new guest (mvm stop NAME && mvm start NAME)";
}

/** A connection to a port inside the guest failed (refused, unreachable, reset); details carry errno. */
export class GuestPortError extends MvmError {
  static override readonly code: string = "GUEST_PORT";
  static override readonly status: number = 502;
  static override readonly hint: string = "nothing listens on that port inside the VM (mvm exec NAME -- netstat -ltn), or it closed the connection";
}
