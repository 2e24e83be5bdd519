// `mvm cp` semantics (those of `docker cp`) between the host and a VM, files and directories:
//   SRC a file: DEST a directory -> DEST/basename(SRC); otherwise DEST is the file (made or replaced).
//   SRC a directory: DEST missing -> made, with SRC's contents; DEST a directory -> DEST/basename(SRC),
//   or, with SRC ending in "/.", SRC's contents go into DEST itself.
// Symlinks are copied as symlinks, never followed. Copying out, nothing is ever written through a
// symlink: every directory on the way to a destination is checked to be a real directory inside DEST,
// so a guest cannot make a copy land outside it (whatever names or links its listing holds).

import { createWriteStream } from "node:fs";
import { lstat, mkdir, open, readdir, readlink, rename, rm, symlink } from "node:fs/promises";
import { basename, dirname, join, posix, relative, sep } from "node:path";
import { CopyError, FileExistsError, FileNotFoundError } from "../errors.js";
import type { FileEntry, GuestFiles } from "./files.js";

export interface CopyStats {
  files: number;
  dirs: number;
  symlinks: number;
  bytes: number;
}

export interface CopyOptions {
  onProgress?: (stats: CopyStats) => void;
  signal?: AbortSignal;
}

const newStats = (): CopyStats => ({ files: 0, dirs: 0, symlinks: 0, bytes: 0 });

async function hostStat(path: string) {
  try {
    return await lstat(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw e;
  }
}

/** A guest entry name is a relative path of plain components; anything else is refused. */
function safeRelative(name: string): string {
  const parts = name.split("/");
  if (!name || name.startsWith("/") || parts.some((p) => p === "" || p === "." || p === "..")) {
    throw new CopyError(`refusing the guest entry ${JSON.stringify(name)}: it is not a plain relative path`, { hint: "the guest's listing is malformed or hostile; nothing outside the destination was touched" });
  }
  return parts.join(sep);
}

/** Every directory from root down to path's parent must be a real directory (not a symlink). */
async function checkInside(root: string, path: string): Promise<void> {
  const rel = relative(root, path);
  if (rel.startsWith("..") || rel === "") throw new CopyError(`${path} is outside ${root}`);
  let at = root;
  for (const part of rel.split(sep).slice(0, -1)) {
    at = join(at, part);
    const st = await hostStat(at);
    if (!st?.isDirectory() || st.isSymbolicLink()) {
      throw new CopyError(`refusing to write ${path}: ${at} is not a directory made by this copy`, { hint: "a symlink on the way would lead outside the destination" });
    }
  }
}

/** Streams one guest file to a new host file: a temporary file beside it, renamed over it when complete. */
async function fetchFile(files: GuestFiles, guestPath: string, hostPath: string, stats: CopyStats, o: CopyOptions): Promise<void> {
  const tmp = join(dirname(hostPath), `.${basename(hostPath)}.mvm-cp-${process.pid}-${Date.now()}`);
  const handle = await open(tmp, "wx", 0o600);
  const out = createWriteStream("", { fd: handle.fd, autoClose: false });
  try {
    const { mode } = await files.readTo(guestPath, async (chunk) => {
      stats.bytes += chunk.length;
      if (!out.write(chunk)) await new Promise<void>((r) => out.once("drain", () => r()));
      o.onProgress?.(stats);
    }, o.signal);
    await new Promise<void>((resolve, reject) => {
      out.once("error", reject);
      out.end(() => resolve());
    });
    await handle.chmod(mode & 0o7777);
    await handle.close();
    await rename(tmp, hostPath); // replaces a symlink at hostPath rather than writing through it
    stats.files++;
  } catch (e) {
    out.destroy();
    await handle.close().catch(() => undefined);
    await rm(tmp, { force: true });
    throw e;
  }
}

async function placeGuestEntry(files: GuestFiles, entry: FileEntry, guestPath: string, hostPath: string, stats: CopyStats, o: CopyOptions): Promise<void> {
  const existing = await hostStat(hostPath);
  if (entry.type === "dir") {
    if (existing && (!existing.isDirectory() || existing.isSymbolicLink())) throw new CopyError(`cannot make directory ${hostPath}: something else is there`);
    if (!existing) await mkdir(hostPath, { mode: entry.mode & 0o777 });
    stats.dirs++;
  } else if (entry.type === "symlink") {
    if (existing?.isDirectory()) throw new CopyError(`cannot replace directory ${hostPath} with a symlink`);
    if (existing) await rm(hostPath);
    await symlink(entry.target ?? "", hostPath);
    stats.symlinks++;
  } else if (entry.type === "file") {
    if (existing?.isDirectory()) throw new CopyError(`cannot replace directory ${hostPath} with a file`);
    await fetchFile(files, guestPath, hostPath, stats, o);
  }
  // Devices, sockets and fifos are not copied, as docker cp does not either.
}

/** Copies a guest file or directory to the host. */
export async function copyOut(files: GuestFiles, src: string, dest: string, o: CopyOptions = {}): Promise<CopyStats> {
  const stats = newStats();
  const contentsOnly = src.endsWith("/.");
  const guestSrc = contentsOnly ? src.slice(0, -2) || "/" : src.replace(/(.)\/+$/, "$1");
  const top = await files.stat(guestSrc, o.signal);
  const destStat = await hostStat(dest);
  if (top.type !== "dir") {
    if (!destStat && /[/\\]$/.test(dest)) throw new CopyError(`destination directory ${dest} does not exist`, { hint: "make it first, or drop the trailing /" });
    const target = destStat?.isDirectory() ? join(dest, posix.basename(guestSrc)) : dest;
    await placeGuestEntry(files, top, guestSrc, target, stats, o);
    return stats;
  }
  if (destStat && !destStat.isDirectory()) throw new CopyError(`cannot copy directory ${src} onto file ${dest}`);
  const root = destStat && !contentsOnly ? join(dest, posix.basename(guestSrc)) : dest;
  if (!(await hostStat(root))) await mkdir(root, { mode: top.mode & 0o777 });
  stats.dirs++;
  // The listing is depth-first with each directory before what it holds.
  for (const entry of await files.list(guestSrc, { depth: 0, signal: o.signal })) {
    const hostPath = join(root, safeRelative(entry.name));
    await checkInside(root, hostPath);
    await placeGuestEntry(files, entry, posix.join(guestSrc, entry.name), hostPath, stats, o);
  }
  return stats;
}

/** Copies a host file or directory into the guest. */
export async function copyIn(files: GuestFiles, src: string, dest: string, o: CopyOptions = {}): Promise<CopyStats> {
  const stats = newStats();
  const contentsOnly = src.endsWith("/.");
  const hostSrc = contentsOnly ? src.slice(0, -2) || "/" : src;
  const top = await hostStat(hostSrc);
  if (!top) throw new CopyError(`${src} does not exist on the host`);
  // A FIFO, socket or device would be read for ever (or block in open()): only what a directory walk copies.
  if (!top.isFile() && !top.isDirectory() && !top.isSymbolicLink()) throw new CopyError(`${src} is not a file, directory or symlink`, { hint: "copy regular files and directories" });
  let destEntry: FileEntry | undefined;
  try {
    destEntry = await files.stat(dest, o.signal);
    // A symlink as DEST counts as what it points to, as with docker cp: listing it works only for a directory.
    if (destEntry.type === "symlink") destEntry = { ...destEntry, type: (await files.list(dest, { signal: o.signal }).then(() => "dir" as const, () => "file" as const)) };
  } catch (e) {
    if (!(e instanceof FileNotFoundError)) throw e;
  }
  const putFile = async (from: string, to: string, mode: number) => {
    const fh = await open(from, "r");
    try {
      await files.write(to, fh.createReadStream({ autoClose: false }), { mode: mode & 0o7777, onProgress: (n) => { stats.bytes += n; o.onProgress?.(stats); }, signal: o.signal });
    } finally {
      await fh.close();
    }
    stats.files++;
  };
  if (!top.isDirectory()) {
    if (!destEntry && dest.endsWith("/")) throw new CopyError(`destination directory ${dest} does not exist in the VM`, { hint: "make it first, or drop the trailing /" });
    const target = destEntry?.type === "dir" ? posix.join(dest, basename(hostSrc)) : dest;
    if (top.isSymbolicLink()) {
      await files.symlink(target, await readlink(hostSrc), { signal: o.signal });
      stats.symlinks++;
    } else await putFile(hostSrc, target, top.mode);
    return stats;
  }
  if (destEntry && destEntry.type !== "dir") throw new CopyError(`cannot copy directory ${src} onto file ${dest} in the VM`);
  const root = destEntry && !contentsOnly ? posix.join(dest, basename(hostSrc)) : dest;
  await files.mkdir(root, { parents: true, mode: top.mode & 0o777, signal: o.signal });
  stats.dirs++;
  const walk = async (hostDir: string, guestDir: string): Promise<void> => {
    for (const d of await readdir(hostDir, { withFileTypes: true })) {
      const from = join(hostDir, d.name);
      const to = posix.join(guestDir, d.name);
      if (d.isDirectory()) {
        await files.mkdir(to, { mode: (await lstat(from)).mode & 0o777, signal: o.signal }).catch((e: unknown) => {
          if (!(e instanceof FileExistsError)) throw e;
        });
        stats.dirs++;
        await walk(from, to);
      } else if (d.isSymbolicLink()) {
        await files.remove(to, { signal: o.signal }).catch(() => undefined);
        await files.symlink(to, await readlink(from), { signal: o.signal });
        stats.symlinks++;
      } else if (d.isFile()) {
        await putFile(from, to, (await lstat(from)).mode);
      }
    }
  };
  await walk(hostSrc, root);
  return stats;
}

/** Parses "VM:/path" (a guest path) or a host path, as docker cp does. */
export function parseCopyArg(arg: string): { vm?: string; path: string } {
  const m = /^([A-Za-z0-9][A-Za-z0-9_.-]*):(.*)$/.exec(arg);
  if (!m || arg.startsWith("./") || arg.startsWith("/")) return { path: arg };
  return { vm: m[1], path: m[2] || "/" };
}
