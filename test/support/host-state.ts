// Host state the fault and jail tests look at or make: a QEMU's control groups, a full disk.
import { closeSync, openSync, readFileSync, rmSync, statSync, truncateSync, writeSync } from "node:fs";
import { randomBytes } from "node:crypto";
import { join } from "node:path";

/** A process's mvm control group directories, from /proc/<pid>/cgroup (v1: one per controller; v2: one). */
export function cgroupDirs(pid: number): string[] {
  return readFileSync(`/proc/${pid}/cgroup`, "utf8")
    .split("\n")
    .filter((l) => /\/mvm\/[^/]+$/.test(l))
    .map((l) => {
      const [, ctrls, path] = l.split(":");
      return ctrls === "" ? join("/sys/fs/cgroup", path!) : join("/sys/fs/cgroup", ctrls!.split(",")[0]!, path!);
    });
}

/** Fills the filesystem holding `dir` to its last byte; shrink() frees some of it again, free() all. */
export function fillDisk(dir: string): { shrink: (bytes: number) => void; free: () => void } {
  const path = join(dir, `filler-${randomBytes(3).toString("hex")}`);
  const fd = openSync(path, "w");
  for (const size of [1024 * 1024, 4096, 512]) {
    const chunk = Buffer.alloc(size, 1);
    try {
      for (;;) writeSync(fd, chunk);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "ENOSPC") throw e;
    }
  }
  closeSync(fd);
  return { shrink: (bytes) => truncateSync(path, Math.max(0, statSync(path).size - bytes)), free: () => rmSync(path, { force: true }) };
}
