// A daemon of a benchmark's own: a fresh $MVM_HOME, `mvm daemon --listen 127.0.0.1:PORT` and an admin token
// from `mvm token create`, so the load goes over TCP with a token, as a remote client's would. stop() ends
// the daemon and deletes its home.

import { execFile, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";

export interface OwnDaemon {
  home: string;
  url: string;
  token: string;
  stop: () => Promise<void>;
}

const CLI = new URL("../cli/main.js", import.meta.url).pathname;
const run = promisify(execFile);

/** A loopback port nobody listens on now. */
const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const s = createServer().listen(0, "127.0.0.1", () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
    s.once("error", reject);
  });

/** A daemon of the bench's own, in a fresh home, with a TCP listener on loopback and an admin token for it. */
export async function ownDaemon(name: string, progress: (l: string) => void): Promise<OwnDaemon> {
  const home = mkdtempSync(join(tmpdir(), `mvm-${name}-`));
  const env = { ...process.env, MVM_HOME: home };
  const port = await freePort();
  progress(`starting a daemon in ${home} with mvm daemon --listen 127.0.0.1:${port}`);
  const child = spawn(process.execPath, [CLI, "daemon", "--listen", `127.0.0.1:${port}`], { env, stdio: ["ignore", "pipe", "pipe"] });
  let err = "";
  child.stderr.on("data", (b: Buffer) => (err = (err + b.toString()).slice(-4000)));
  const exited = new Promise<void>((r) => child.once("exit", () => r()));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGTERM");
      const t = setTimeout(() => child.kill("SIGKILL"), 10_000);
      await exited;
      clearTimeout(t);
    }
    rmSync(home, { recursive: true, force: true });
  };
  try {
    await new Promise<void>((resolve, reject) => {
      let out = "";
      const t = setTimeout(() => reject(new Error(`the bench's daemon was not ready in 60 s: ${err}`)), 60_000);
      child.stdout.on("data", (b: Buffer) => {
        out += b.toString();
        if (out.includes("ready\n")) {
          clearTimeout(t);
          resolve();
        }
      });
      void exited.then(() => {
        clearTimeout(t);
        reject(new Error(`the bench's daemon exited: ${err}`));
      });
    });
    const made = await run(process.execPath, [CLI, "token", "create", name, "--role", "admin", "--json"], { env });
    const token = (JSON.parse(made.stdout) as { token: string }).token;
    return { home, url: `http://127.0.0.1:${port}`, token, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}
