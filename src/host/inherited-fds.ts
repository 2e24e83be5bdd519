// File descriptors this process inherited without close-on-exec (a shell's, a CI runner's): every child
// would inherit them in turn, QEMU included, through the jail (bwrap and setpriv pass open fds on). Node
// opens its own descriptors close-on-exec, so at startup the ones without it above stdio are inherited,
// and the daemon closes them before it starts anything.

import { closeSync, readdirSync, readFileSync } from "node:fs";

const O_CLOEXEC = 0o2000000;

/** Closes inherited descriptors above 2 that lack close-on-exec; returns them (for the log). */
export function closeInheritedFds(procSelf = "/proc/self"): number[] {
  const closed: number[] = [];
  let fds: string[];
  try {
    fds = readdirSync(`${procSelf}/fd`);
  } catch {
    return closed; // no /proc: nothing to learn, nothing closed
  }
  for (const name of fds) {
    const fd = Number(name);
    if (!Number.isInteger(fd) || fd <= 2) continue;
    try {
      const flags = /^flags:\s+([0-7]+)/m.exec(readFileSync(`${procSelf}/fdinfo/${fd}`, "utf8"))?.[1];
      if (flags === undefined || (parseInt(flags, 8) & O_CLOEXEC) !== 0) continue;
      closeSync(fd);
      closed.push(fd);
    } catch {
      /* the directory listing's own fd, gone by now */
    }
  }
  return closed;
}
