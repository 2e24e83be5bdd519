// What the host running the daemon can or cannot do: privileges, KVM, QEMU binaries, the tools that build
// the guest and images. 403 when mvm lacks a privilege, 422 when the VM asks for something this host
// cannot give (retrying will not help, changing the spec or the host will), 424 when a host program the
// request depends on is missing or failed (its output is in details).

import { MvmError } from "./base.js";

/** The call needs the daemon to run as root (debootstrap creates device files and sets owners). */
export class NotRootError extends MvmError {
  static override readonly code: string = "NOT_ROOT";
  static override readonly status: number = 403;
  static override readonly hint: string = "run the mvm daemon as root";
}

/** Bridged networking failed on the host: no CAP_NET_ADMIN, or an ip/nft command failed. */
export class HostNetworkError extends MvmError {
  static override readonly code: string = "HOST_NETWORK";
  static override readonly status: number = 403;
  static override readonly hint: string = "run the mvm daemon as root, or use --network user";
}

/** The VM asks for KVM (accel kvm), and /dev/kvm cannot be used here; details say why. */
export class KvmUnusableError extends MvmError {
  static override readonly code: string = "KVM_UNUSABLE";
  static override readonly status: number = 422;
  static override readonly hint: string = "set accel to auto or tcg (mvm doctor says why KVM is unusable)";
}

/**
 * The VM asks for CPU or memory limits (cpuShare, cpuMax, memoryMax), which live in the control group the
 * jail puts its QEMU in, and this daemon has none: the jail is off (MVM_JAIL=0, not root, tools missing) or
 * the host has no usable cgroup controllers. The message says which.
 */
export class CgroupsUnavailableError extends MvmError {
  static override readonly code: string = "CGROUPS_UNAVAILABLE";
  static override readonly status: number = 422;
  static override readonly hint: string = "run the daemon as root with the jail on (not MVM_JAIL=0) on a host with cgroup v2 controllers or v1 hierarchies (mvm doctor says which), or leave cpuShare, cpuMax and memoryMax out";
}

/** No QEMU binary here can run this VM (missing, or lacking a device or accelerator the VM needs). */
export class BinaryUnusableError extends MvmError {
  static override readonly code: string = "QEMU_UNUSABLE";
  static override readonly status: number = 422;
  static override readonly hint: string = "install Debian's qemu-system-x86 (scripts/setup.sh does), or set binary to auto";
}

/** A QEMU binary from the daemon's configuration cannot be read. */
export class QemuNotFoundError extends MvmError {
  static override readonly code: string = "QEMU_NOT_FOUND";
  static override readonly status: number = 424;
  static override readonly hint: string = "install Debian's qemu-system-x86 (scripts/setup.sh does), or fix the path in the daemon's config";
}

/** Building or finding the guest kernel and initramfs failed; details carry the build's output. */
export class GuestBuildError extends MvmError {
  static override readonly code: string = "GUEST_BUILD";
  static override readonly status: number = 424;
  static override readonly hint: string = "run scripts/setup.sh, which installs what guest/build.sh needs";
}

/** A tool building an image (qemu-img, mkfs.ext4, tar, debootstrap) failed; details carry its output. */
export class ImageToolError extends MvmError {
  static override readonly code: string = "IMAGE_BUILD_FAILED";
  static override readonly status: number = 424;
  static override readonly hint: string = "install the tools mvm needs (scripts/setup.sh does) and check the output in details";
}

/**
 * The host's disk (the filesystem holding $MVM_HOME, or the cache) is full: ENOSPC, EDQUOT, SQLite's "database
 * or disk is full". Whatever the operation was making was removed again; what existed is untouched.
 */
export class HostDiskFullError extends MvmError {
  static override readonly code: string = "HOST_DISK_FULL";
  static override readonly status: number = 507;
  static override readonly hint: string = 'free space on the filesystem holding $MVM_HOME (df -h "$MVM_HOME"), then retry';
}
