// Checks that a user-supplied kernel is a file QEMU can boot directly: an ELF vmlinux (PVH entry) or a
// bzImage (the "HdrS" boot-protocol magic at 0x202). Catches a wrong path before QEMU says something obscure.

import { closeSync, openSync, readSync } from "node:fs";
import { InvalidKernelError } from "../errors.js";

export function checkKernelFile(path: string): "vmlinux" | "bzImage" {
  let fd: number;
  try {
    fd = openSync(path, "r");
  } catch (e) {
    throw new InvalidKernelError(`cannot read kernel ${path}: ${(e as NodeJS.ErrnoException).code}`, {
      hint: "give the path of a readable vmlinux or bzImage, or leave --kernel out to use mvm's own",
      cause: e,
    });
  }
  try {
    const head = Buffer.alloc(0x206);
    const n = readSync(fd, head, 0, head.length, 0);
    if (n >= 4 && head.readUInt32BE(0) === 0x7f454c46) return "vmlinux";
    if (n >= 0x206 && head.toString("latin1", 0x202, 0x206) === "HdrS") return "bzImage";
    throw new InvalidKernelError(`${path} is not a Linux kernel (neither an ELF vmlinux nor a bzImage)`, {
      hint: "give the path of a vmlinux or bzImage, or leave --kernel out to use mvm's own",
    });
  } finally {
    closeSync(fd);
  }
}

export function checkReadableFile(path: string, what: string): void {
  try {
    closeSync(openSync(path, "r"));
  } catch (e) {
    throw new InvalidKernelError(`cannot read ${what} ${path}: ${(e as NodeJS.ErrnoException).code}`, { hint: `check the ${what} path`, cause: e });
  }
}
