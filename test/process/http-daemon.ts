// A real daemon of a FakeHome (http-daemon-child.ts: the HTTP API over the fake QEMU) in a child process,
// for tests that speak to it as clients do: over its socket, raw, or through the CLI. With `netns` it runs
// in a network namespace of its own (when the host lets it make one), so that whatever a test makes it do
// to networks (bridges, NAT tables, taps, published ports) happens there and goes with it.

import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { openSync, readFileSync, readdirSync, readlinkSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { BodyOptions } from "../../src/daemon/request-body.js";
import type { WebSocketOptions } from "../../src/daemon/websocket.js";
import type { Answered } from "./openapi-check.js";
import type { FakeHome, ManagerKnobs } from "./harness.js";

const CHILD = fileURLToPath(new URL("./http-daemon-child.js", import.meta.url));

export interface HttpDaemon {
  pid: number;
  home: string;
  socket: string;
  /** In a network namespace of its own. */
  netns: boolean;
  running(): boolean;
  /** What it wrote to stderr (its log), for a failure's message. */
  log(): string;
  /** Its open file descriptors (sockets, the database...), by what they point at. */
  fds(): string[];
  /** Its child processes (QEMUs it started, tools it runs), by pid. */
  children(): number[];
  /** Every answer it gave, each checked against its OpenAPI document (openapi-check.ts). */
  answers(): Answered[];
  /** SIGTERM, then SIGKILL after 5 s; resolves when it is gone. Fails if an answer did not match the document. */
  stop(): Promise<void>;
}

function answers(home: string): Answered[] {
  try {
    return readFileSync(join(home, "openapi-answers.ndjson"), "utf8").split("\n").filter(Boolean).map((l) => JSON.parse(l) as Answered);
  } catch {
    return [];
  }
}

/** Whether this host lets the test make a network namespace (unshare -n). */
const canUnshareNet = (): boolean => spawnSync("unshare", ["-n", "true"], { stdio: "ignore" }).status === 0;

export async function startHttpDaemon(h: FakeHome, o: { knobs?: ManagerKnobs; body?: BodyOptions & WebSocketOptions; netns?: boolean } = {}): Promise<HttpDaemon> {
  const logPath = join(h.home, "daemon.log");
  const logFd = openSync(logPath, "a", 0o600);
  const args = [CHILD, h.home, JSON.stringify(o.knobs ?? {}), JSON.stringify(o.body ?? {})];
  const netns = !!o.netns && canUnshareNet();
  // `sh -c 'ip link set lo up && exec node ...'` in the new namespace: the daemon's pid is the child's.
  const child: ChildProcess = netns
    ? spawn("unshare", ["-n", "sh", "-c", 'ip link set lo up && exec "$0" "$@"', process.execPath, ...args], { stdio: ["ignore", "pipe", logFd], detached: true })
    : spawn(process.execPath, args, { stdio: ["ignore", "pipe", logFd], detached: true });
  const exited = new Promise<void>((r) => child.once("exit", () => r()));
  await new Promise<void>((resolve, reject) => {
    let out = "";
    const timer = setTimeout(() => reject(new Error(`the HTTP daemon was not ready within 20 s: ${readFileSync(logPath, "utf8").slice(-2000)}`)), 20_000);
    child.stdout!.on("data", (b: Buffer) => {
      out += b.toString();
      if (out.includes("ready\n")) {
        clearTimeout(timer);
        resolve();
      }
    });
    void exited.then(() => {
      clearTimeout(timer);
      reject(new Error(`the HTTP daemon exited before it was ready: ${readFileSync(logPath, "utf8").slice(-2000)}`));
    });
  });
  const pid = child.pid!;
  const running = () => child.exitCode === null && child.signalCode === null;
  return {
    pid,
    home: h.home,
    socket: join(h.home, "mvm.sock"),
    netns,
    running,
    log: () => readFileSync(logPath, "utf8"),
    fds: () => {
      const dir = `/proc/${pid}/fd`;
      return readdirSync(dir).map((fd) => {
        try {
          return readlinkSync(join(dir, fd));
        } catch {
          return "(gone)";
        }
      });
    },
    children: () => {
      try {
        return readdirSync(`/proc/${pid}/task`).flatMap((t) => readFileSync(`/proc/${pid}/task/${t}/children`, "utf8").trim().split(/\s+/).filter(Boolean).map(Number));
      } catch {
        return [];
      }
    },
    answers: () => answers(h.home),
    stop: async () => {
      if (running()) {
        child.kill("SIGTERM");
        const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
        await exited;
        clearTimeout(timer);
      }
      const wrong = answers(h.home).filter((a) => a.problem);
      if (wrong.length) throw new Error(`${wrong.length} answers of the daemon did not match its OpenAPI document:\n${wrong.slice(0, 10).map((a) => `  ${a.method} ${a.route} ${a.status}: ${a.problem}`).join("\n")}`);
    },
  };
}
