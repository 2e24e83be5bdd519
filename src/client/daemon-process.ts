// Starting the daemon on demand: spawned in its own session with its log in $MVM_HOME/daemon.log; it
// says "ready" on a pipe once it serves, so nothing polls for the socket.

import { spawn } from "node:child_process";
import { closeSync, mkdirSync, openSync } from "node:fs";
import { join } from "node:path";
import { MvmError } from "../errors.js";
import { readTail } from "../vm/layout.js";

export class DaemonStartError extends MvmError {
  override readonly code = "DAEMON_START_FAILED";
}

export async function startDaemon(home: string, timeoutMs = 30000): Promise<void> {
  mkdirSync(home, { recursive: true, mode: 0o700 });
  const logPath = join(home, "daemon.log");
  const logFd = openSync(logPath, "a", 0o600);
  const main = new URL("../daemon/main.js", import.meta.url).pathname;
  const child = spawn(process.execPath, [main], {
    detached: true,
    stdio: ["ignore", "pipe", logFd],
    env: { ...process.env, MVM_HOME: home },
  });
  closeSync(logFd);
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new DaemonStartError(`the mvm daemon did not start within ${timeoutMs} ms`)), timeoutMs);
      let out = "";
      child.stdout!.on("data", (b: Buffer) => {
        out += b.toString();
        if (out.includes("ready\n")) {
          clearTimeout(timer);
          resolve();
        }
      });
      child.once("exit", (code) => {
        clearTimeout(timer);
        reject(new DaemonStartError(`the mvm daemon exited at start (status ${code})`, { details: { logTail: readTail(logPath, 2000) } }));
      });
      child.once("error", (e) => {
        clearTimeout(timer);
        reject(new DaemonStartError(`cannot start the mvm daemon: ${e.message}`, { cause: e }));
      });
    });
  } catch (e) {
    const tail = readTail(logPath, 2000);
    // Another client may have started one at the same moment: that is as good as ours.
    if (/already running/.test(tail)) return;
    if (e instanceof MvmError) e.details.logTail = tail;
    throw e;
  } finally {
    child.stdout!.destroy();
    child.unref();
  }
}
