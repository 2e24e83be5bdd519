// What a jailed QEMU may open, and the ownership that makes it so. QEMU runs as its own uid U (gid U), with
// the group every jailed QEMU shares (mvm's kernels, images, templates) and the group of a device node it
// needs. Files of the VM's own directory become U's; files mvm made elsewhere (under its home or cache) get
// the shared group; a user's own files are never changed: when U cannot open one as asked, the VM runs in
// root mode instead (uid 0, no capabilities but, for files other users own, the file capabilities), still
// in its namespaces and seeing only its own paths. inspect shows which, and why.

import { chmodSync, chownSync, closeSync, existsSync, fchownSync, fstatSync, lstatSync, mkdirSync, openSync, readFileSync, rmSync, statSync, writeFileSync, constants, type Stats } from "node:fs";
import { join } from "node:path";

export interface Ids {
  uid: number;
  /** Supplementary groups: the shared group and device groups. */
  groups: number[];
}

/** Whether uid/gids may open the file as asked, by its mode bits alone (what a capability-less process gets). */
export function permits(st: Pick<Stats, "uid" | "gid" | "mode">, uid: number, gids: number[], want: "r" | "rw"): boolean {
  const bits = want === "rw" ? 0o6 : 0o4;
  const mode = st.uid === uid ? st.mode >> 6 : gids.includes(st.gid) ? st.mode >> 3 : st.mode;
  return (mode & bits) === bits;
}

/** Under one of `roots`. */
export const under = (p: string, roots: string[]): boolean => roots.some((r) => p === r || p.startsWith(r.endsWith("/") ? r : `${r}/`));

export interface FileNeed {
  path: string;
  want: "r" | "rw";
}

export interface AccessPlan {
  /** Set when U cannot be given what the VM needs: the reason, as inspect says it. */
  rootBecause?: string;
  /** Root mode for files other users own: the file capabilities are kept. */
  foreignFiles: boolean;
  /** Device groups U must hold. */
  deviceGroups: number[];
}

/**
 * Decides uid or root mode. `own`: the VM's directory (its files become U's); `managed`: mvm's home and cache
 * (root's files there get the shared group); everything else must already let U in.
 */
export function planAccess(needs: FileNeed[], devices: string[], o: { uid: number; sharedGid: number; own: string; managed: string[]; volumes: number }): AccessPlan {
  const deviceGroups: number[] = [];
  let rootBecause: string | undefined;
  let foreignFiles = o.volumes > 0;
  if (o.volumes > 0) rootBecause = "it shares host folders, whose files QEMU reads and writes with their owners' rights (no idmapped mounts yet)";
  for (const dev of devices) {
    let st: Stats;
    try {
      st = statSync(dev);
    } catch {
      continue; // QEMU says it is missing
    }
    if (permits(st, o.uid, [], "rw")) continue;
    if ((st.mode & 0o060) === 0o060 && st.gid !== 0) deviceGroups.push(st.gid);
    else rootBecause ??= `${dev} is ${(st.mode & 0o777).toString(8).padStart(4, "0")} root:${st.gid}, which its own uid cannot open (Debian's default, which mvm doctor suggests: ${dev === "/dev/kvm" ? "0660 root:kvm" : "0666"})`;
  }
  for (const n of needs) {
    let st: Stats;
    try {
      st = statSync(n.path);
    } catch {
      continue;
    }
    if (under(n.path, [o.own]) || permits(st, o.uid, [o.sharedGid, ...deviceGroups], n.want)) continue;
    if (under(n.path, o.managed) && st.uid === 0) continue; // given the shared group by applyAccess
    rootBecause ??= `${n.path} (owner ${st.uid}, mode ${(st.mode & 0o777).toString(8).padStart(4, "0")}) is not ${n.want === "rw" ? "writable" : "readable"} by the VM's own uid`;
    if (st.uid !== 0) foreignFiles = true;
  }
  return { rootBecause, foreignFiles, deviceGroups };
}

/** Makes one of mvm's files (root's, outside the VM's directory) open to the shared group as asked. */
export function shareWithGroup(path: string, gid: number, want: "r" | "rw"): void {
  const st = statSync(path);
  if (st.uid !== 0) return;
  const bits = want === "rw" ? 0o060 : 0o040;
  if (st.gid !== gid) chownSync(path, 0, gid);
  if ((st.mode & bits) !== bits) chmodSync(path, (st.mode & 0o7777) | bits);
}

/** The VM directory's files a jailed QEMU uses, made U's (or, for the directory itself, walkable by U only). */
export interface DirLayout {
  dir: string;
  sockets: string[];
  consoleLog?: string;
  config?: string;
  /** Read-write files in the directory (the root overlay). */
  ownFiles: string[];
}

/** Where QEMU writes saved states (`exec:cat > …`): the daemon moves them out (src/vm/state-drop.ts). */
export const dropDir = (dir: string): string => join(dir, "xfer");

/**
 * Sets the VM directory up for QEMU as `uid` (0 in root mode): the directory root:U 0750 (QEMU can create,
 * rename or link nothing in it), its sockets root:U 0660, console.log and the root overlay U's, the drop
 * directory U's 0700. Files the daemon opens later from U-writable places are checked (state-drop.ts).
 */
export function applyDirAccess(l: DirLayout, uid: number): void {
  chownSync(l.dir, 0, uid);
  chmodSync(l.dir, uid === 0 ? 0o700 : 0o750);
  for (const s of l.sockets) setSocket(s, uid);
  if (l.consoleLog) {
    // Made here, before QEMU appends to it; O_NOFOLLOW: a link left in the directory is not followed.
    const fd = openSync(l.consoleLog, constants.O_WRONLY | constants.O_CREAT | constants.O_APPEND | constants.O_NOFOLLOW, 0o600);
    try {
      if (fstatSync(fd).uid !== uid) fchownSync(fd, uid, uid);
    } finally {
      closeSync(fd);
    }
  }
  if (l.config && existsSync(l.config)) {
    chownSync(l.config, 0, uid);
    chmodSync(l.config, 0o640);
  }
  for (const f of l.ownFiles) if (existsSync(f) && lstatSync(f).isFile()) chownSync(f, uid, uid);
  const drop = dropDir(l.dir);
  const st = lstatSync(drop, { throwIfNoEntry: false });
  if (st && (!st.isDirectory() || st.uid !== uid)) rmSync(drop, { recursive: true, force: true });
  mkdirSync(drop, { recursive: true, mode: 0o700 });
  chownSync(drop, uid, uid);
}

/** A socket QEMU connects to as U: root:U 0660 (connecting needs write permission on it). */
export function setSocket(path: string, uid: number): void {
  if (!existsSync(path)) return;
  chownSync(path, 0, uid);
  chmodSync(path, uid === 0 ? 0o600 : 0o660);
}

/** What the jail of a VM's QEMU is, kept in its directory (root's, 0644) for inspect and for re-adoption. */
export interface JailRecord {
  /** The VM directory's path as QEMU sees it (a pool QEMU's directory is renamed on the host when taken). */
  dir: string;
  uid: number;
  /** The group all jailed QEMUs share (saved states are made readable to it). */
  sharedGid?: number;
  groups: number[];
  mode: "uid" | "root";
  reason?: string;
  namespaces: boolean;
  ownNet: boolean;
  capabilities: string[];
  /** bwrap installed mvm's filter against new user namespaces (src/jail/userns-filter.ts). */
  usernsFilter?: boolean;
}

export const jailRecordFile = (dir: string): string => join(dir, "jail.json");

export function writeJailRecord(dir: string, r: JailRecord): void {
  const path = jailRecordFile(dir);
  rmSync(path, { force: true });
  writeFileSync(path, `${JSON.stringify(r)}\n`, { mode: 0o644, flag: "wx" });
}

export function readJailRecord(dir: string): JailRecord | undefined {
  let fd: number | undefined;
  try {
    // The directory is walkable by U, not writable: still, no link is followed and only root's file counts.
    fd = openSync(jailRecordFile(dir), constants.O_RDONLY | constants.O_NOFOLLOW);
    if (fstatSync(fd).uid !== 0 || fstatSync(fd).size > 64 * 1024) return undefined;
    return JSON.parse(readFileSync(fd, "utf8")) as JailRecord;
  } catch {
    return undefined;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}
