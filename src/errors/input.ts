// Mistakes in what a person or program asked for: a malformed request, a bad flag, a spec that does not
// validate, a value QEMU could not take. All 400: the same request fails the same way until it is fixed.

import { MvmError } from "./base.js";

/** A request the API cannot take: a malformed body, a missing field, a value out of range. */
export class BadRequestError extends MvmError {
  static override readonly code: string = "BAD_REQUEST";
  static override readonly status: number = 400;
  static override readonly hint: string = "see docs/api.md for the route's body and query";
}

/** A command-line or library argument mvm cannot use: a bad flag combination, signal, timeout, name. */
export class InvalidArgumentError extends BadRequestError {
  static override readonly code: string = "INVALID_ARGUMENT";
  static override readonly hint: string = "see mvm help COMMAND for the arguments it takes";
}

/** A VM spec that does not validate; details.problems names each problem with its path. */
export class InvalidSpecError extends BadRequestError {
  static override readonly code: string = "INVALID_SPEC";
  static override readonly hint: string = "see docs/vm-spec.md for the fields and their forms";
}

/** A memory size mvm cannot read ("256", "256M", "1G" are the forms). */
export class InvalidSizeError extends BadRequestError {
  static override readonly code: string = "INVALID_SIZE";
  static override readonly hint: string = "write MiB as a number (256) or with a unit: 256M, 1G";
}

/** A kernel or initrd file that cannot be read, or a kernel that is neither a vmlinux nor a bzImage. */
export class InvalidKernelError extends BadRequestError {
  static override readonly code: string = "INVALID_KERNEL";
  static override readonly hint: string = "give the path of a readable vmlinux or bzImage, or leave --kernel out to use mvm's own";
}

/** A port mapping mvm cannot read or use (-p [HOSTIP:]HOSTPORT:GUESTPORT[/tcp|udp]). */
export class InvalidPortError extends BadRequestError {
  static override readonly code: string = "INVALID_PORT";
  static override readonly hint: string = "write -p [HOSTIP:]HOSTPORT:GUESTPORT[/tcp|udp], e.g. -p 8080:80";
}

/** A disk or shared folder that cannot be attached as written (missing, a bad guest path, a bad format). */
export class InvalidStorageError extends BadRequestError {
  static override readonly code: string = "INVALID_STORAGE";
  static override readonly hint: string = "see docs/vm-spec.md (disks and volumes)";
}

/** A network subnet mvm cannot use (not a.b.c.d/prefix, too small, overlapping another). */
export class InvalidSubnetError extends BadRequestError {
  static override readonly code: string = "INVALID_SUBNET";
  static override readonly hint: string = "write a private IPv4 subnet as a.b.c.d/prefix, e.g. 10.77.0.0/24";
}

/** A value that cannot go into the guest's configuration (a NUL byte, a bad variable or host name). */
export class GuestConfigError extends BadRequestError {
  static override readonly code: string = "INVALID_GUEST_CONFIG";
  static override readonly hint: string = "see docs/guest-config.md for what the guest configuration takes";
}

/** A value (a path, a name) that cannot be passed to QEMU safely: empty, or with control characters. */
export class QemuOptionValueError extends BadRequestError {
  static override readonly code: string = "INVALID_QEMU_VALUE";
  static override readonly hint: string = "rename the file or directory so its path has no newlines or other control characters";
}

/** A file given as an image that mvm cannot boot or take in (not qcow2, ext4 or a tarball; damaged). */
export class InvalidImageError extends BadRequestError {
  static override readonly code: string = "INVALID_IMAGE";
  static override readonly hint: string = "give a qcow2 image, a raw ext4 file system or a root file system tarball";
}

/** A copy between the host and a VM that cannot be done as asked (a missing directory, a path outside). */
export class CopyError extends BadRequestError {
  static override readonly code: string = "COPY_FAILED";
  static override readonly hint: string = "mvm cp SRC VM:DEST or mvm cp VM:SRC DEST; see mvm help cp";
}
