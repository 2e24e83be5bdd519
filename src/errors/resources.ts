// The things mvm keeps (VMs, images, networks, addresses, ports, disks) and the states they are in:
// 404 when one does not exist, 409 when it is taken, in use, or in the wrong state for the call.

import { MvmError } from "./base.js";

/** No VM, image, network or command by that name, id or id prefix. */
export class NotFoundError extends MvmError {
  static override readonly code: string = "NOT_FOUND";
  static override readonly status: number = 404;
  static override readonly hint: string = "list what there is with mvm ps -a, mvm image ls or mvm network ls";
}

/** The name is taken by another VM, image or network. */
export class NameTakenError extends MvmError {
  static override readonly code: string = "NAME_TAKEN";
  static override readonly status: number = 409;
  static override readonly hint: string = "pick another name, or remove the one that has it";
}

/** The address asked for on a bridged network is taken by another VM. */
export class AddressTakenError extends MvmError {
  static override readonly code: string = "ADDRESS_TAKEN";
  static override readonly status: number = 409;
  static override readonly hint: string = "pick another --ip, or leave it out";
}

/** A host port to publish is in use, privileged, or on an address this host does not have. */
export class PortInUseError extends MvmError {
  static override readonly code: string = "PORT_IN_USE";
  static override readonly status: number = 409;
  static override readonly hint: string = "publish another host port (-p OTHER:GUESTPORT) or stop what holds it";
}

/** A disk this VM needs is locked by another VM or program (QEMU's image locking). */
export class DiskInUseError extends MvmError {
  static override readonly code: string = "DISK_IN_USE";
  static override readonly status: number = 409;
  static override readonly hint: string = "stop the VM or program that uses the disk, or attach it read-only";
}

/**
 * A call in a state that does not allow it (stop a created VM, remove a running one, use an image a VM
 * needs); details carry the VM, its state and the states the call needs.
 */
export class WrongStateError extends MvmError {
  static override readonly code: string = "WRONG_STATE";
  static override readonly status: number = 409;
  static override readonly hint: string = "check its state with mvm ps -a";
}

/**
 * A memory cap (memoryMax) below what the VM's QEMU uses now: the kernel could not reclaim enough (cgroup v1:
 * EBUSY), or would have to OOM-kill QEMU (v2); the old cap stays. details: group, capBytes, usageBytes.
 */
export class MemoryInUseError extends MvmError {
  static override readonly code: string = "MEMORY_IN_USE";
  static override readonly status: number = 409;
  static override readonly hint: string = "give a higher memoryMax, or stop the VM, set it, and start it again";
}

/** A snapshot or suspended state was made by another QEMU build: QEMU cannot load it (details: both builds). */
export class QemuBuildMismatchError extends MvmError {
  static override readonly code: string = "QEMU_BUILD_MISMATCH";
  static override readonly status: number = 409;
  static override readonly hint: string = "restore it with the QEMU build that made it, or boot the VM cold (mvm start --boot cold)";
}
