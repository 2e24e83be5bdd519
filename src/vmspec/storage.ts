// Disks and shared folders as users write them, checked against the host before anything boots.
//   --disk PATH[:ro|:rw]            a raw or qcow2 image (format read from its first bytes)
//   -v HOSTDIR:GUESTDIR[:ro]         a host folder shared over virtio-9p
// Only an exact ":ro"/":rw" suffix is parsed, so a path may hold other colons for disks; shared folder
// paths may not (the separator would be ambiguous).

import { accessSync, constants, statSync } from "node:fs";
import { isAbsolute } from "node:path";
import { InvalidStorageError } from "../errors.js";
import { readHostFileHead } from "./host-file.js";

export interface DiskSpec {
  path: string;
  readOnly: boolean;
  format: "raw" | "qcow2";
}

export interface VolumeSpec {
  hostPath: string;
  guestPath: string;
  readOnly: boolean;
}

function detectFormat(path: string): "raw" | "qcow2" {
  const head = readHostFileHead(path, 4, { what: "disk", error: InvalidStorageError, hint: "give an image file (raw or qcow2) or a block device", blockDevice: true });
  return head.length === 4 && head.toString("latin1") === "QFI\xfb" ? "qcow2" : "raw";
}

export function parseDisk(text: string): DiskSpec {
  const m = /^(.*?)(?::(ro|rw))?$/.exec(text)!;
  const path = m[1]!;
  const readOnly = m[2] === "ro";
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

export function parseVolume(text: string): VolumeSpec {
  const parts = text.split(":");
  const readOnly = parts.length === 3 && parts[2] === "ro";
  if (parts.length < 2 || parts.length > 3 || (parts.length === 3 && parts[2] !== "ro" && parts[2] !== "rw")) {
    throw new InvalidStorageError(`invalid shared folder ${JSON.stringify(text)}`, { hint: "write -v HOSTDIR:GUESTDIR[:ro]; paths cannot contain ':'" });
  }
  const [hostPath, guestPath] = parts as [string, string];
  if (!isAbsolute(hostPath) || !isAbsolute(guestPath)) throw new InvalidStorageError(`shared folder paths must be absolute: ${JSON.stringify(text)}`, { hint: "write -v /host/dir:/guest/dir" });
  if (guestPath === "/" || /^\/(proc|sys|dev|run)(\/|$)/.test(guestPath)) {
    throw new InvalidStorageError(`cannot share a folder onto ${guestPath}`, { hint: "pick a guest path outside /, /proc, /sys, /dev and /run" });
  }
  // mvm-init refuses longer mount paths (its line buffer): say so here, before a boot that would fail.
  if (Buffer.byteLength(guestPath) > 511) throw new InvalidStorageError(`the guest path of a shared folder is ${Buffer.byteLength(guestPath)} bytes; at most 511`, { hint: "mount it at a shorter guest path" });
  let st;
  try {
    st = statSync(hostPath);
  } catch (e) {
    throw new InvalidStorageError(`cannot share ${hostPath}: ${(e as NodeJS.ErrnoException).code}`, { hint: "the host folder must exist" });
  }
  if (!st.isDirectory()) throw new InvalidStorageError(`${hostPath} is not a folder`, { hint: "share a directory; attach image files with --disk" });
  return { hostPath, guestPath, readOnly };
}
