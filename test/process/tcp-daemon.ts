// A daemon with its network listener (tcp-daemon-child.ts) in a child process, for tests that speak to it
// as network clients do: over TCP (or TLS) with tokens, raw, or through the library; and over its socket as
// the host's root, who makes the tokens.

import { spawn } from "node:child_process";
import { openSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { MvmClient, type TokenView } from "../../src/client/client.js";
import type { DaemonConfig } from "../../src/daemon/daemon-config.js";
import type { Timeouts } from "../../src/daemon/listen.js";
import type { FakeHome } from "./harness.js";

const CHILD = fileURLToPath(new URL("./tcp-daemon-child.js", import.meta.url));

export interface TcpDaemon {
  pid: number;
  /** http(s)://127.0.0.1:PORT, the port as bound. */
  url: string;
  port: number;
  /** The host's root's client, on the Unix socket. */
  root: MvmClient;
  /** A client of the network listener with this token. */
  as(token: string | undefined, o?: { ca?: string | Buffer }): MvmClient;
  /** Makes a token (through the socket) and returns it. */
  token(name: string, o?: { role?: "admin" | "user" | "read"; maxVms?: number; maxCpus?: number; maxMemory?: string }): Promise<string>;
  tokens(): Promise<TokenView[]>;
  log(): string;
  running(): boolean;
  stop(): Promise<void>;
}

export async function startTcpDaemon(h: FakeHome, config: DaemonConfig = { listen: "127.0.0.1:0" }, timeouts: Partial<Timeouts> = {}): Promise<TcpDaemon> {
  const logPath = join(h.home, "daemon.log");
  const logFd = openSync(logPath, "a", 0o600);
  const child = spawn(process.execPath, [CHILD, h.home, JSON.stringify(config), JSON.stringify(timeouts)], { stdio: ["ignore", "pipe", logFd], detached: true });
  const exited = new Promise<void>((r) => child.once("exit", () => r()));
  const url = await new Promise<string>((resolve, reject) => {
    let out = "";
    const timer = setTimeout(() => reject(new Error(`the TCP daemon was not ready within 20 s: ${readFileSync(logPath, "utf8").slice(-2000)}`)), 20_000);
    child.stdout!.on("data", (b: Buffer) => {
      out += b.toString();
      const m = /^ready (\S+)\n/m.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]!);
      }
    });
    void exited.then(() => {
      clearTimeout(timer);
      reject(new Error(`the TCP daemon exited before it was ready: ${readFileSync(logPath, "utf8").slice(-2000)}`));
    });
  });
  const root = new MvmClient(join(h.home, "mvm.sock"));
  const running = () => child.exitCode === null && child.signalCode === null;
  return {
    pid: child.pid!,
    url,
    port: Number(new URL(url).port),
    root,
    as: (token, o = {}) => new MvmClient({ url, token, ca: o.ca }),
    token: async (name, o = {}) => (await root.createToken(name, o)).token,
    tokens: () => root.tokens(),
    log: () => readFileSync(logPath, "utf8"),
    running,
    stop: async () => {
      if (!running()) return;
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
      await exited;
      clearTimeout(timer);
    },
  };
}
