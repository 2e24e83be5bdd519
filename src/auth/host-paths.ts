// Who may name host paths: the one rule, applied wherever a host path enters the daemon (a VM spec's disks,
// shared folders, kernel and initrd at create; an image file to import). The daemon runs as root and opens
// what it is given, so:
//   - the host's root and admin tokens may name any path;
//   - every other caller gets registered images (the spec's `image`), named volumes the host's root
//     registered (`-v NAME:/guest/dir`, mvm volume create) and paths under the allowed roots only;
//   - a read token creates nothing at all.
// The allowed roots are the host's root's to set: MVM_ALLOWED_ROOTS (colon-separated) in the daemon's
// environment and/or $MVM_HOME/allowed-roots (one absolute path a line, # comments), read at each check;
// none by default. A path is judged as the kernel would open it: `..` and symlinks are resolved (realpath)
// before it is compared with the roots (themselves resolved), and the resolved path is what the daemon then
// uses, so a path that passed cannot lead elsewhere through the same `..` or symlink. A path outside the
// roots as written is refused without touching the file system (no probing of what exists elsewhere).

import { readFileSync, realpathSync } from "node:fs";
import { basename, dirname, isAbsolute, join, normalize } from "node:path";
import type { VmSpecInput } from "../vmspec/vm-spec.js";
import { isVolumeName, splitDisk, splitVolume } from "../vmspec/storage.js";
import { HostPathForbiddenError } from "../errors.js";
import { describeCaller, mayNameAnyHostPath, requireMayCreate, type Caller } from "./caller.js";

export type HostPathUse = "disk" | "shared folder" | "kernel" | "initrd" | "image file";

export interface HostPathPolicy {
  /** Folders under which every caller may name files and folders, as configured (absolute). */
  allowedRoots: readonly string[];
}

export const ALLOWED_ROOTS_FILE = "allowed-roots";

/** The allowed roots the host's root configured: MVM_ALLOWED_ROOTS, then $MVM_HOME/allowed-roots. Relative entries are ignored. */
export function readAllowedRoots(home: string, env: NodeJS.ProcessEnv = process.env): string[] {
  const fromEnv = (env.MVM_ALLOWED_ROOTS ?? "").split(":");
  let fromFile: string[] = [];
  try {
    fromFile = readFileSync(join(home, ALLOWED_ROOTS_FILE), "utf8").split("\n").map((l) => l.replace(/#.*/, ""));
  } catch {
    /* no file: none from it */
  }
  return [...new Set([...fromEnv, ...fromFile].map((r) => r.trim()).filter((r) => isAbsolute(r)).map((r) => normalize(r).replace(/(.)\/+$/, "$1")))];
}

const inside = (path: string, root: string): boolean => root === "/" || path === root || path.startsWith(`${root}/`);

/**
 * Where a path leads, symlinks and `..` resolved: realpath, or for a path that does not exist (yet), the
 * realpath of its nearest existing ancestor with the rest appended. undefined when it cannot be resolved
 * (a symlink loop, a folder it may not search).
 */
function resolved(path: string): string | undefined {
  try {
    return realpathSync.native(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if ((code !== "ENOENT" && code !== "ENOTDIR") || path === "/") return undefined;
    const parent = resolved(dirname(path));
    return parent === undefined ? undefined : join(parent, basename(path));
  }
}

const HINTS: Record<HostPathUse, string> = {
  disk: "boot a registered image instead (--image NAME, mvm image ls)",
  "shared folder": "share a named volume instead (-v NAME:/guest/dir, mvm volume ls; the host's root registers folders with mvm volume create NAME PATH)",
  kernel: "leave kernel out to boot mvm's own",
  initrd: "leave initrd out to boot mvm's own",
  "image file": "ask the host's root to import it (mvm image import FILE)",
};

/**
 * The path the daemon may open for `caller` as a `use`: as given for the host's root and admins, resolved
 * (realpath) for others, who must stay under an allowed root; HostPathForbiddenError (403) otherwise.
 */
export function checkHostPath(path: string, use: HostPathUse, caller: Caller, policy: HostPathPolicy): string {
  if (mayNameAnyHostPath(caller)) return path;
  const roots = policy.allowedRoots.filter((r) => isAbsolute(r)).map((r) => normalize(r));
  const realRoots = roots.map(resolved).filter((r): r is string => r !== undefined);
  const refuse = (why: string, resolvedTo?: string): never => {
    throw new HostPathForbiddenError(
      `${describeCaller(caller)} may not name the host path ${JSON.stringify(path)} as a ${use}: ${why}. Only the host's root and admin tokens name any host path; other callers get registered images, named volumes and paths under the allowed roots`,
      {
        hint: `${HINTS[use]}, or ask the host's root to allow a root for it (MVM_ALLOWED_ROOTS or $MVM_HOME/${ALLOWED_ROOTS_FILE})`,
        details: { path, use, resolved: resolvedTo, allowedRoots: roots, caller: caller.kind === "token" ? caller.name : caller.kind, role: caller.kind === "token" ? caller.role : undefined },
      },
    );
  };
  const where = roots.length ? `it is not under an allowed root (${roots.join(", ")})` : "no allowed roots are set";
  if (!isAbsolute(path)) return refuse(`it is not an absolute path, and ${where}`);
  const written = normalize(path);
  // Judged as written first: a path outside every root (`..` folded) is refused without a look at the disk.
  if (![...roots, ...realRoots].some((r) => inside(written, r))) return refuse(where);
  const real = resolved(written);
  if (real === undefined) return refuse("it cannot be resolved (a symlink loop, or a folder the daemon cannot search)");
  if (!realRoots.some((r) => inside(real, r))) return refuse(`it leads out of the allowed roots through a symlink (${roots.join(", ")})`, real);
  return real;
}

/**
 * A VM spec as `caller` may give it: refused (403) where it names a host path the caller may not; for a
 * caller held to the allowed roots, the same spec with each path replaced by where it leads (what was
 * checked is what is opened). Registered images and named volumes pass for every caller who may create.
 */
export function checkHostPaths(spec: VmSpecInput, caller: Caller, policy: HostPathPolicy): VmSpecInput {
  requireMayCreate(caller, "create VMs");
  if (mayNameAnyHostPath(caller)) return spec;
  const out: VmSpecInput = { ...spec };
  if (spec.kernel !== undefined) out.kernel = checkHostPath(spec.kernel, "kernel", caller, policy);
  if (spec.initrd !== undefined) out.initrd = checkHostPath(spec.initrd, "initrd", caller, policy);
  if (spec.disks) {
    out.disks = spec.disks.map((d) => {
      const { path, mode } = splitDisk(d);
      // The mode always written out: a resolved path that itself ends in ":ro" keeps its meaning.
      return `${checkHostPath(path, "disk", caller, policy)}:${mode ?? "rw"}`;
    });
  }
  if (spec.volumes) {
    out.volumes = spec.volumes.map((v) => {
      const { host, guest, mode } = splitVolume(v);
      if (isVolumeName(host)) return v;
      return [checkHostPath(host, "shared folder", caller, policy), guest, ...(mode ? [mode] : [])].join(":");
    });
  }
  return out;
}
