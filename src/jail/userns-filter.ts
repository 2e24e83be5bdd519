// A seccomp filter of mvm's own, installed by bwrap (--seccomp FD) beneath QEMU's -sandbox: no new user
// namespaces. A jailed QEMU runs in namespaces bwrap made as root, without a user namespace of its own, so
// nothing else stops it from unsharing one, and user namespaces open much of the kernel to an unprivileged
// process. unshare() and clone() with CLONE_NEWUSER fail with EPERM; clone3() (whose flags sit in memory a
// filter cannot read) fails with ENOSYS, which makes glibc fall back to clone() for threads and fork.
// Classic BPF over struct seccomp_data { int nr; u32 arch; u64 ip; u64 args[6]; }, x86-64 only.

import { closeSync, mkdirSync, openSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";

const AUDIT_ARCH_X86_64 = 0xc000003e;
const NR = { clone: 56, unshare: 272, clone3: 435 };
const CLONE_NEWUSER = 0x10000000;
const X32_BIT = 0x40000000;
const RET_ALLOW = 0x7fff0000;
const RET_ERRNO = 0x00050000;
const EPERM = 1;
const ENOSYS = 38;
const RET_KILL_PROCESS = 0x80000000;

// BPF opcodes: ld|w|abs, jmp|jeq|k, jmp|jset|k, ret|k.
const LD_ABS = 0x20;
const JEQ = 0x15;
const JGE = 0x35;
const JSET = 0x45;
const RET = 0x06;

type Insn = [code: number, jt: number, jf: number, k: number];

/** The filter's instructions (pure; the unit test reads them). */
export function userNamespaceFilter(): Insn[] {
  return [
    [LD_ABS, 0, 0, 4], // arch
    [JEQ, 1, 0, AUDIT_ARCH_X86_64],
    [RET, 0, 0, RET_KILL_PROCESS], // another ABI (x32, i386 through int 0x80): not QEMU's
    [LD_ABS, 0, 0, 0], // syscall number
    [JGE, 0, 1, X32_BIT], // the x32 ABI's numbers: the same calls by other numbers
    [RET, 0, 0, RET_KILL_PROCESS],
    [JEQ, 0, 1, NR.clone3],
    [RET, 0, 0, RET_ERRNO | ENOSYS],
    [JEQ, 1, 0, NR.unshare],
    [JEQ, 0, 3, NR.clone],
    [LD_ABS, 0, 0, 16], // args[0], low 32 bits: the flags
    [JSET, 0, 1, CLONE_NEWUSER],
    [RET, 0, 0, RET_ERRNO | EPERM],
    [RET, 0, 0, RET_ALLOW],
  ];
}

/** The filter as bwrap reads it: struct sock_filter { u16 code; u8 jt; u8 jf; u32 k; }, host byte order. */
export function encodeFilter(insns: Insn[]): Buffer {
  const b = Buffer.alloc(insns.length * 8);
  insns.forEach(([code, jt, jf, k], i) => {
    b.writeUInt16LE(code, i * 8);
    b.writeUInt8(jt, i * 8 + 2);
    b.writeUInt8(jf, i * 8 + 3);
    b.writeUInt32LE(k >>> 0, i * 8 + 4);
  });
  return b;
}

/**
 * An fd holding the filter, for bwrap's --seccomp (which reads it before QEMU starts): the file is written
 * once under `dir` (root's) and opened per spawn. The caller closes the fd once QEMU is spawned.
 */
export function openFilter(dir: string): number {
  const path = join(dir, "userns-filter.bpf");
  const want = encodeFilter(userNamespaceFilter());
  let have: Buffer | undefined;
  try {
    have = readFileSync(path);
  } catch {
    have = undefined;
  }
  if (!have?.equals(want)) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const tmp = `${path}.${process.pid}`;
    writeFileSync(tmp, want, { mode: 0o600 });
    renameSync(tmp, path);
  }
  return openSync(path, "r");
}

export const closeFilter = (fd: number): void => closeSync(fd);
