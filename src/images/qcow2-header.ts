// The backing chain of a qcow2 image, read from the headers (no qemu-img process): the jail binds every file
// of the chain into QEMU's root, since QEMU opens the backing files by the names the headers give.

import { closeSync, openSync, readSync } from "node:fs";
import { dirname, resolve } from "node:path";

const MAGIC = 0x514649fb; // "QFI\xfb"
/** QEMU's own cap on a backing file name (1023 bytes), and on the depth mvm follows. */
const MAX_NAME = 1023;
const MAX_DEPTH = 16;

/** The backing file a qcow2 image names (resolved against the image's directory), or undefined. */
export function backingFile(path: string): string | undefined {
  let fd: number | undefined;
  try {
    fd = openSync(path, "r");
    const head = Buffer.alloc(20);
    if (readSync(fd, head, 0, 20, 0) < 20 || head.readUInt32BE(0) !== MAGIC) return undefined;
    const offset = Number(head.readBigUInt64BE(8));
    const size = head.readUInt32BE(16);
    if (offset === 0 || size === 0 || size > MAX_NAME || !Number.isSafeInteger(offset)) return undefined;
    const name = Buffer.alloc(size);
    if (readSync(fd, name, 0, size, offset) < size) return undefined;
    const text = name.toString("utf8");
    // A protocol name (nbd:, json:) is not a host file.
    if (/^[a-z][a-z0-9+]*:/i.test(text)) return undefined;
    return resolve(dirname(path), text);
  } catch {
    return undefined;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/** The files below `path` in its chain, nearest first (not `path` itself). */
export function backingChain(path: string): string[] {
  const chain: string[] = [];
  for (let p = backingFile(path); p && chain.length < MAX_DEPTH && !chain.includes(p); p = backingFile(p)) chain.push(p);
  return chain;
}
