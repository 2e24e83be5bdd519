// Checks that a user-supplied kernel is a file QEMU can boot directly: an ELF vmlinux (PVH entry) or a
// bzImage (the "HdrS" boot-protocol magic at 0x202). Catches a wrong path before QEMU says something obscure.

import { InvalidKernelError } from "../errors.js";
import { readHostFileHead } from "./host-file.js";

const KERNEL_HINT = "give the path of a readable vmlinux or bzImage, or leave --kernel out to use mvm's own";

export function checkKernelFile(path: string): "vmlinux" | "bzImage" {
  const head = readHostFileHead(path, 0x206, { what: "kernel", error: InvalidKernelError, hint: KERNEL_HINT });
  if (head.length >= 4 && head.readUInt32BE(0) === 0x7f454c46) return "vmlinux";
  if (head.length >= 0x206 && head.toString("latin1", 0x202, 0x206) === "HdrS") return "bzImage";
  throw new InvalidKernelError(`${path} is not a Linux kernel (neither an ELF vmlinux nor a bzImage)`, {
    hint: "give the path of a vmlinux or bzImage, or leave --kernel out to use mvm's own",
  });
}

export function checkReadableFile(path: string, what: string): void {
  readHostFileHead(path, 0, { what, error: InvalidKernelError, hint: `check the ${what} path` });
}
