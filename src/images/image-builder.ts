// Disk images: whatever a user brings (qcow2, raw ext4, a root filesystem tarball such as `docker export`
// writes) or a Debian built with debootstrap, turned into one read-only qcow2 base under
// $MVM_HOME/images. Everything is made under a temporary name and renamed at the end, so a failed or
// interrupted build leaves nothing that looks like an image.

import { createHash } from "node:crypto";
import { constants } from "node:fs";
import { readHostFileHead } from "../vmspec/host-file.js";
import { chmod, copyFile, mkdir, mkdtemp, rename, rm, stat } from "node:fs/promises";
import { dirname, join } from "node:path";
import { InvalidArgumentError, InvalidImageError, MvmError, NotRootError } from "../errors.js";
import { runTool } from "./tools.js";

export type SourceKind = "qcow2" | "ext4" | "tar";

/** What a file is, from its first bytes: qcow2, an ext4 filesystem, a (compressed) tarball, or nothing we take. */
export function sniff(path: string): SourceKind {
  const head = readHostFileHead(path, 1200, { what: "image file", error: InvalidImageError, hint: "check the path: a qcow2 or raw image, or a tarball", blockDevice: true });
  if (head.length >= 4 && head.toString("latin1", 0, 4) === "QFI\xfb") return "qcow2";
  if (head.length >= 1082 && head.readUInt16LE(1080) === 0xef53) return "ext4";
  const gz = head[0] === 0x1f && head[1] === 0x8b;
  const xz = head.toString("latin1", 0, 6) === "\xfd7zXZ\0";
  const zst = head.length >= 4 && head.readUInt32LE(0) === 0xfd2fb528;
  if (gz || xz || zst || head.toString("latin1", 257, 262) === "ustar") return "tar";
  throw new InvalidImageError(`${path} is not a disk image mvm can boot`, {
    hint: "give a qcow2 or raw image holding an ext4 filesystem, or a root filesystem tarball (docker export)",
  });
}

async function du(dir: string): Promise<number> {
  const out = await runTool("du", ["-sb", dir]);
  return Number(out.split("\t")[0]);
}

/** ext4 from a folder without loop mounts (mkfs.ext4 -d), with room to grow, as a qcow2 base. */
async function folderToQcow2(dir: string, out: string, work: string, onLine: (l: string) => void): Promise<void> {
  const mib = Math.ceil(((await du(dir)) * 1.3) / 1048576) + 256;
  const raw = join(work, "root.ext4");
  onLine(`making a ${mib} MiB ext4 filesystem`);
  await runTool("mkfs.ext4", ["-q", "-F", "-L", "mvm-root", "-d", dir, raw, `${mib}M`], onLine);
  await runTool("qemu-img", ["convert", "-q", "-f", "raw", "-O", "qcow2", raw, out], onLine);
}

export interface BuiltImage {
  path: string;
  virtualBytes: number;
  source: string;
}

async function virtualBytes(path: string): Promise<number> {
  const info = JSON.parse(await runTool("qemu-img", ["info", "--output=json", path])) as { "virtual-size": number };
  return info["virtual-size"];
}

/** Builds into imagesDir/.NAME.tmp-*, then renames to imagesDir/NAME.qcow2 (read-only). */
async function publish(imagesDir: string, name: string, make: (out: string, work: string) => Promise<void>, source: string): Promise<BuiltImage> {
  await mkdir(imagesDir, { recursive: true, mode: 0o700 });
  const work = await mkdtemp(join(imagesDir, `.${name}.tmp-`));
  try {
    const out = join(work, "image.qcow2");
    await make(out, work);
    const final = join(imagesDir, `${name}.qcow2`);
    await chmod(out, 0o444);
    await rename(out, final);
    return { path: final, virtualBytes: await virtualBytes(final), source };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

export function importImage(file: string, name: string, imagesDir: string, onLine: (l: string) => void): Promise<BuiltImage> {
  const kind = sniff(file);
  return publish(
    imagesDir,
    name,
    async (out, work) => {
      if (kind === "qcow2") {
        // check catches a truncated or corrupt image before anything boots from it.
        onLine("checking the qcow2 image");
        await runTool("qemu-img", ["check", "-q", file], onLine).catch((e: MvmError) => {
          throw new InvalidImageError(`${file} is a damaged qcow2 image`, { hint: "re-create or re-download it", details: e.details, cause: e });
        });
        await runTool("qemu-img", ["convert", "-q", "-f", "qcow2", "-O", "qcow2", file, out], onLine);
      } else if (kind === "ext4") {
        onLine("converting the ext4 filesystem to qcow2");
        await runTool("qemu-img", ["convert", "-q", "-f", "raw", "-O", "qcow2", file, out], onLine);
      } else {
        const tree = join(work, "tree");
        await mkdir(tree);
        onLine("unpacking the root filesystem");
        await runTool("tar", ["-xpf", file, "-C", tree, "--numeric-owner"], onLine);
        await folderToQcow2(tree, out, work, onLine);
      }
      // An image whose first partition-less filesystem is not ext4 cannot be a root for mvm-init.
      const size = (await stat(out)).size;
      if (size === 0) throw new InvalidImageError(`${file} produced an empty image`);
    },
    `import of ${file} (${kind})`,
  );
}

export interface DebianOptions {
  suite: string;
  packages: string[];
  mirror?: string;
}

const DEFAULT_MIRROR = "http://deb.debian.org/debian";
/** Bump when a change here changes what a build produces. */
const DEBIAN_RECIPE = 1;
/** A cached debootstrap older than this is built again (the suite gets point releases and security fixes). */
const DEBIAN_CACHE_MAX_AGE_MS = 7 * 24 * 3600 * 1000;

/**
 * Where a finished build of these inputs is kept, shared by every $MVM_HOME on the host: keyed on the suite,
 * the packages, the mirror, debootstrap's own version and the recipe.
 */
async function debianCachePath(o: DebianOptions, cacheDir: string): Promise<string> {
  const debootstrap = (await runTool("dpkg-query", ["-W", "-f=${Version}", "debootstrap"]).catch(() => "unknown")).trim();
  const inputs = { recipe: DEBIAN_RECIPE, suite: o.suite, packages: [...o.packages].sort(), mirror: o.mirror ?? DEFAULT_MIRROR, debootstrap };
  const key = createHash("sha256").update(JSON.stringify(inputs)).digest("hex").slice(0, 16);
  return join(cacheDir, "images", `debian-${o.suite}-${key}.qcow2`);
}

async function freshEnough(path: string): Promise<Date | undefined> {
  const s = await stat(path).catch(() => undefined);
  return s && Date.now() - s.mtimeMs < DEBIAN_CACHE_MAX_AGE_MS ? s.mtime : undefined;
}

/**
 * With `cacheDir`, a debootstrap of the same inputs made in the last week is reused (copied, never shared).
 * What is wrong with the request (not root, a bad suite or package name) is thrown at once, not rejected.
 */
export function buildDebian(name: string, o: DebianOptions, imagesDir: string, onLine: (l: string) => void, cacheDir?: string): Promise<BuiltImage> {
  if (process.getuid?.() !== 0) {
    throw new NotRootError("building a Debian image needs root (debootstrap creates device files and sets owners)", { hint: "run the mvm daemon as root, or import an image instead (mvm image import)" });
  }
  if (!/^[a-z]+$/.test(o.suite)) throw new InvalidArgumentError(`invalid suite ${JSON.stringify(o.suite)}`, { hint: "e.g. bookworm" });
  const bad = o.packages.find((p) => !/^[a-z0-9][a-z0-9+.-]*$/.test(p));
  if (bad !== undefined) throw new InvalidArgumentError(`invalid package name ${JSON.stringify(bad)}`, { hint: "Debian package names: lower-case letters, digits, + - ." });
  return publish(
    imagesDir,
    name,
    async (out, work) => {
      const cached = cacheDir ? await debianCachePath(o, cacheDir) : undefined;
      const builtAt = cached ? await freshEnough(cached) : undefined;
      if (cached && builtAt) {
        onLine(`reusing the debootstrap of ${o.suite} built ${builtAt.toISOString()} (${cached}; delete it to build afresh)`);
        await copyFile(cached, out, constants.COPYFILE_FICLONE);
        return;
      }
      const tree = join(work, "tree");
      const include = o.packages.length ? [`--include=${o.packages.join(",")}`] : [];
      onLine(`debootstrap ${o.suite} (minbase${o.packages.length ? ` + ${o.packages.join(" ")}` : ""})`);
      await runTool("debootstrap", ["--variant=minbase", ...include, o.suite, tree, o.mirror ?? DEFAULT_MIRROR], onLine);
      await folderToQcow2(tree, out, work, onLine);
      if (cached) {
        // Whole or absent: copied under a temporary name, then renamed.
        await mkdir(dirname(cached), { recursive: true });
        const tmp = `${cached}.tmp-${process.pid}`;
        await copyFile(out, tmp, constants.COPYFILE_FICLONE);
        await rename(tmp, cached);
      }
    },
    `debootstrap ${o.suite}${o.packages.length ? ` with ${o.packages.join(",")}` : ""}`,
  );
}
