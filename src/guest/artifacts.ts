// The guest kernel and initramfs: built from Debian sources by guest/build.sh and cached. This module runs
// that script (a cache hit costs a few milliseconds of hashing) and reads its manifest.

import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { join } from "node:path";
import { GuestBuildError } from "../errors.js";
import { packageRoot } from "../host/paths.js";

export interface GuestArtifacts {
  kernel: {
    dir: string;
    vmlinux: string;
    bzImage: string;
    /** patches: the file names (without .patch) of guest/kernel/patches applied; absent in kernels built before them. */
    info: { release: string; sourceVersion: string; hz: number; key: string; buildSeconds: number; patches?: string[] };
  };
  initramfs: {
    dir: string;
    path: string;
    info: { busyboxVersion: string; key: string; bytes: number; agentBytes: number; initBytes: number };
  };
}

/** Builds what is missing (minutes the first time: progress lines go to onProgress) and returns the paths. */
export function ensureGuestArtifacts(options: { onProgress?: (line: string) => void; env?: NodeJS.ProcessEnv } = {}): Promise<GuestArtifacts> {
  const script = join(packageRoot, "guest", "build.sh");
  return new Promise((resolve, reject) => {
    const child = spawn("bash", [script], { env: options.env ?? process.env, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    const tail: string[] = [];
    child.stdout.on("data", (b: Buffer) => (stdout += b.toString()));
    createInterface({ input: child.stderr }).on("line", (line) => {
      tail.push(line);
      if (tail.length > 20) tail.shift();
      options.onProgress?.(line);
    });
    child.on("error", (e) => reject(new GuestBuildError(`cannot run ${script}: ${e.message}`, { cause: e })));
    child.on("close", (code) => {
      if (code !== 0) {
        reject(
          new GuestBuildError(`building the guest kernel and initramfs failed (exit ${code})`, {
            hint: "run scripts/setup.sh, which installs the build tools, and read the output above",
            details: { script, outputTail: tail.join("\n") },
          }),
        );
        return;
      }
      try {
        resolve(JSON.parse(stdout) as GuestArtifacts);
      } catch (e) {
        reject(new GuestBuildError(`guest/build.sh printed an unreadable manifest`, { cause: e, details: { stdout } }));
      }
    });
  });
}
