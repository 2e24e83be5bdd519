// Disks and shared folders as users write them, checked against the host before anything boots.
//   --disk PATH[:ro|:rw]            a raw or qcow2 image (format read from its first bytes)
//   -v HOSTDIR:GUESTDIR[:ro]         a host folder shared over virtio-9p
//   -v NAME:GUESTDIR[:ro|:rw]        a named volume (mvm volume create NAME PATH): a folder the host's root
//                                    registered, resolved to its path when the VM is created
// Only an exact ":ro"/":rw" suffix is parsed, so a path may hold other colons for disks; shared folder
// paths may not (the separator would be ambiguous). A host folder is absolute and a volume's name never
// starts with '/', so the two forms cannot be taken for each other.

import { accessSync, constants, statSync } from "node:fs";
import { isAbsolute } from "node:path";
import { InvalidStorageError } from "../errors.js";
import { readHostFileHead } from "./host-file.js";
import { NAME_PATTERN } from "./names.js";

export interface DiskSpec {
  path: string;
  readOnly: boolean;
  format: "raw" | "qcow2";
}

export interface VolumeSpec {
  hostPath: string;
  guestPath: string;
  readOnly: boolean;
  /** The named volume this folder is (its hostPath is the volume's, as registered when the VM was created). */
  volume?: string;
}

/** A registered volume, as a spec resolves a name to it. */
export interface NamedVolume {
  name: string;
  /** Its folder on the host, resolved (realpath) when it was registered. */
  path: string;
  readOnly: boolean;
}

/** The host side of -v names a registered volume (the name rules of VMs), not a path. */
export const isVolumeName = (host: string): boolean => new RegExp(NAME_PATTERN).test(host);

function detectFormat(path: string): "raw" | "qcow2" {
  const head = readHostFileHead(path, 4, { what: "disk", error: InvalidStorageError, hint: "give an image file (raw or qcow2) or a block device", blockDevice: true });
  return head.length === 4 && head.toString("latin1") === "QFI\xfb" ? "qcow2" : "raw";
}

/** PATH[:ro|:rw] as written: the path, and the mode when one is given. */
export function splitDisk(text: string): { path: string; mode?: "ro" | "rw" } {
  const m = /^(.*?)(?::(ro|rw))?$/.exec(text)!;
  return { path: m[1]!, mode: m[2] as "ro" | "rw" | undefined };
}

/** HOST:GUEST[:ro|:rw] as written (HOST a folder or a volume's name); InvalidStorageError if it is not that. */
export function splitVolume(text: string): { host: string; guest: string; mode?: "ro" | "rw" } {
  const parts = text.split(":");
  if (parts.length < 2 || parts.length > 3 || (parts.length === 3 && parts[2] !== "ro" && parts[2] !== "rw")) {
    throw new InvalidStorageError(`invalid shared folder ${JSON.stringify(text)}`, { hint: "write -v HOSTDIR:GUESTDIR[:ro] or -v NAME:GUESTDIR[:ro] (a named volume); paths cannot contain ':'" });
  }
  return { host: parts[0]!, guest: parts[1]!, mode: parts[2] as "ro" | "rw" | undefined };
}

export function parseDisk(text: string): DiskSpec {
  const { path, mode } = splitDisk(text);
  const readOnly = mode === "ro";
  if (!isAbsolute(path)) throw new InvalidStorageError(`disk path ${JSON.stringify(path)} is not absolute`, { hint: "give the full path of the image" });
  let st;
  try {
    st = statSync(path);
    accessSync(path, readOnly ? constants.R_OK : constants.R_OK | constants.W_OK);
  } catch (e) {
    throw new InvalidStorageError(`cannot use disk ${path}: ${(e as NodeJS.ErrnoException).code}`, {
      hint: readOnly ? "check that the image exists and is readable" : "check that the image exists and is writable, or attach it with :ro",
    });
  }
  if (!st.isFile() && !st.isBlockDevice()) throw new InvalidStorageError(`disk ${path} is neither a file nor a block device`, { hint: "give an image file (raw or qcow2)" });
  return { path, readOnly, format: detectFormat(path) };
}

/**
 * A shared folder as written. A named volume is looked up with `named` (which throws NOT_FOUND for a name
 * not registered); without it, only host folders are taken. A read-only volume mounts read-only unless the
 * spec asks for :rw, which is refused.
 */
export function parseVolume(text: string, named?: (name: string) => NamedVolume): VolumeSpec {
  const { host, guest: guestPath, mode } = splitVolume(text);
  let hostPath = host;
  let readOnly = mode === "ro";
  let volume: string | undefined;
  if (isVolumeName(host)) {
    if (!named) throw new InvalidStorageError(`${JSON.stringify(host)} is a volume's name, and named volumes are resolved by the daemon`, { hint: "create the VM through the daemon, or give the folder's absolute path" });
    const v = named(host);
    if (v.readOnly && mode === "rw") {
      throw new InvalidStorageError(`volume ${v.name} is registered read-only: it cannot be mounted read-write`, {
        hint: `mount it read-only (-v ${v.name}:${guestPath}:ro, or leave the mode out); the host's root registers a writable one with mvm volume create NAME PATH`,
        details: { volume: v.name, path: v.path },
      });
    }
    hostPath = v.path;
    readOnly = mode === "ro" || v.readOnly;
    volume = v.name;
  }
  if (!isAbsolute(hostPath) || !isAbsolute(guestPath)) throw new InvalidStorageError(`shared folder paths must be absolute: ${JSON.stringify(text)}`, { hint: "write -v /host/dir:/guest/dir, or -v NAME:/guest/dir for a named volume (mvm volume ls)" });
  if (guestPath === "/" || /^\/(proc|sys|dev|run)(\/|$)/.test(guestPath)) {
    throw new InvalidStorageError(`cannot share a folder onto ${guestPath}`, { hint: "pick a guest path outside /, /proc, /sys, /dev and /run" });
  }
  // mvm-init refuses longer mount paths (its line buffer): say so here, before a boot that would fail.
  if (Buffer.byteLength(guestPath) > 511) throw new InvalidStorageError(`the guest path of a shared folder is ${Buffer.byteLength(guestPath)} bytes; at most 511`, { hint: "mount it at a shorter guest path" });
  let st;
  try {
    st = statSync(hostPath);
  } catch (e) {
    throw new InvalidStorageError(`cannot share ${hostPath}${volume ? ` (volume ${volume})` : ""}: ${(e as NodeJS.ErrnoException).code}`, { hint: volume ? `the volume's folder is gone: the host's root re-creates it, or removes the volume (mvm volume rm ${volume})` : "the host folder must exist" });
  }
  if (!st.isDirectory()) throw new InvalidStorageError(`${hostPath} is not a folder`, { hint: "share a directory; attach image files with --disk" });
  return volume === undefined ? { hostPath, guestPath, readOnly } : { hostPath, guestPath, readOnly, volume };
}
