// Starting the daemon on demand: spawned in its own session with its log in $MVM_HOME/daemon.log; it
// says "ready" on a pipe once it serves, so nothing polls for the socket, or "error {body}" (the API's
// error body) when it cannot start, which is rebuilt here into the error's own class.

import { spawn } from "node:child_process";
import { closeSync, mkdirSync, openSync } from "node:fs";
import { join } from "node:path";
import { DaemonAlreadyRunningError, DaemonStartError, errorFromBody, MvmError } from "../errors.js";
import { readTail } from "../vm/layout.js";

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
      // What it said before exiting is read to the end of the pipe (or for a second, should something it
      // started hold the pipe open).
      const said = () => new Promise<void>((r) => {
        if (child.stdout!.closed) return r();
        const t = setTimeout(r, 1000);
        child.stdout!.once("close", () => {
          clearTimeout(t);
          r();
        });
      });
      child.once("exit", (code) => {
        clearTimeout(timer);
        void said().then(() => {
          const line = out.split("\n").find((l) => l.startsWith("error "));
          let body: Record<string, unknown> | undefined;
          try {
            body = line ? (JSON.parse(line.slice(6)) as Record<string, unknown>) : undefined;
          } catch {
            /* not one of ours */
          }
          reject(body ? errorFromBody(undefined, body) : new DaemonStartError(`the mvm daemon exited at start (status ${code})`, { details: { logTail: readTail(logPath, 2000) } }));
        });
      });
      child.once("error", (e) => {
        clearTimeout(timer);
        reject(new DaemonStartError(`cannot start the mvm daemon: ${e.message}`, { cause: e }));
      });
    });
  } catch (e) {
    const tail = readTail(logPath, 2000);
    // Another client may have started one at the same moment: that is as good as ours.
    if (e instanceof DaemonAlreadyRunningError) return;
    if (e instanceof MvmError) e.details.logTail = tail;
    throw e;
  } finally {
    child.stdout!.destroy();
    child.unref();
  }
}
