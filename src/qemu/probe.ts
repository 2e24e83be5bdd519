// What an installed QEMU binary can do: version, accelerators, devices, netdev backends, -sandbox.
// Asked once per binary content (sha256) and cached, since each question is a process start.

import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { mkdir, readFile, rename, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { QemuNotFoundError } from "../errors.js";

const run = promisify(execFile);

export interface QemuBinaryInfo {
  path: string;
  sha256: string;
  version: string;
  accels: string[];
  devices: string[];
  netdevs: string[];
  sandbox: boolean;
}

async function sha256File(path: string): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest("hex");
}

async function ask(path: string, args: string[]): Promise<string> {
  const { stdout } = await run(path, args, { timeout: 10000, maxBuffer: 4 * 1024 * 1024 });
  return stdout;
}

/** Parses `-accel help`: a heading line, then one accelerator per line. */
export function parseAccelHelp(text: string): string[] {
  return text.split("\n").slice(1).map((l) => l.trim()).filter((l) => /^[a-z0-9-]+$/.test(l));
}

/** Parses `-device help`: lines like `name "virtio-blk-device", bus virtio-bus`. */
export function parseDeviceHelp(text: string): string[] {
  return [...text.matchAll(/^name "([^"]+)"/gm)].map((m) => m[1]!);
}

/** Parses `-netdev help`: a heading line, then one backend per line. */
export const parseNetdevHelp = parseAccelHelp;

export async function probeBinary(path: string, cacheDir: string): Promise<QemuBinaryInfo> {
  let sha256: string;
  try {
    sha256 = await sha256File(path);
  } catch (e) {
    throw new QemuNotFoundError(`QEMU binary ${path} cannot be read: ${(e as NodeJS.ErrnoException).code}`, {
      hint: "install Debian's qemu-system-x86 (scripts/setup.sh does), or fix the path in the daemon's config",
      cause: e,
    });
  }
  // v2: -sandbox is tried, not read from -help (the microvm build lists it there and refuses it).
  const cacheFile = join(cacheDir, "qemu-probe", `${sha256}.v2.json`);
  try {
    const cached = JSON.parse(await readFile(cacheFile, "utf8")) as QemuBinaryInfo;
    return { ...cached, path };
  } catch {
    /* not probed yet */
  }
  const [version, accels, devices, netdevs, sandbox] = await Promise.all([
    ask(path, ["--version"]),
    ask(path, ["-accel", "help"]),
    ask(path, ["-device", "help"]),
    ask(path, ["-netdev", "help"]),
    ask(path, ["-sandbox", "on", "-version"]).then(() => true, () => false),
  ]);
  const info: QemuBinaryInfo = {
    path,
    sha256,
    version: /version (\S+)/.exec(version)?.[1] ?? "unknown",
    accels: parseAccelHelp(accels),
    devices: parseDeviceHelp(devices),
    netdevs: parseNetdevHelp(netdevs),
    sandbox,
  };
  await mkdir(join(cacheDir, "qemu-probe"), { recursive: true });
  const tmp = `${cacheFile}.${process.pid}.tmp`;
  await writeFile(tmp, JSON.stringify(info));
  await rename(tmp, cacheFile);
  return info;
}
