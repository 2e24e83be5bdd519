// Running the host tools images are made with (qemu-img, mkfs.ext4, tar, debootstrap), with their
// output as progress lines and their last lines in the error when they fail.

import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { HostDiskFullError, ImageToolError } from "../errors.js";

export function runTool(cmd: string, args: string[], onLine?: (line: string) => void): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"] });
    const tail: string[] = [];
    let stdout = "";
    const keep = (line: string) => {
      tail.push(line);
      if (tail.length > 15) tail.shift();
      onLine?.(line);
    };
    child.stdout.on("data", (b: Buffer) => (stdout += b.toString()));
    createInterface({ input: child.stderr }).on("line", keep);
    child.on("error", (e) =>
      reject(new ImageToolError(`cannot run ${cmd}: ${e.message}`, { hint: `install it (scripts/setup.sh installs the tools mvm needs)`, cause: e })),
    );
    child.on("close", (code) => {
      if (code === 0) return resolve(stdout);
      const text = tail.join("\n");
      const full = /No space left on device|Disk quota exceeded/i.test(text + stdout);
      const details = { command: [cmd, ...args].join(" "), outputTail: `${text}\n${stdout.split("\n").slice(-5).join("\n")}`.trim() };
      reject(
        full
          ? new HostDiskFullError(`${cmd} failed (status ${code}): no space left on the host's disk`, { details })
          : new ImageToolError(`${cmd} failed (status ${code})`, { hint: "read the tool's last lines in the details", details }),
      );
    });
  });
}
