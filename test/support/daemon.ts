// A private daemon per test: its own $MVM_HOME, the CLI run against it, and a teardown that removes every
// VM, stops the daemon and fails if a QEMU of that home survives.
import assert from "node:assert/strict";
import { execFile, execFileSync, spawn } from "node:child_process";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TestContext } from "node:test";
import { connect, type MvmClient } from "../../src/client/client.js";
import { guestArtifacts } from "./guests.js";

const CLI = new URL("../../src/cli/main.js", import.meta.url).pathname;

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface TestDaemon {
  home: string;
  client: MvmClient;
  /** The network namespace the daemon (and so every QEMU and tap) lives in, if any. */
  netns?: string;
  /** Runs a command in the daemon's network namespace (or here). */
  inNetns(cmd: string[]): string;
  /** Starts a daemon again (in the same namespace) after a test killed it. */
  restart(): Promise<MvmClient>;
  cli(args: string[], input?: string): Promise<CliResult>;
  daemonPid(): Promise<number>;
}

/** QEMU processes whose command line names this home (their sockets live there). */
export function qemuPidsOf(home: string): number[] {
  // "[q]" keeps pgrep from matching the shell that runs it.
  const out = execFileSync("sh", ["-c", `pgrep -f '[q]emu-system.*${home}' || true`]).toString().trim();
  return out ? out.split("\n").map(Number) : [];
}

/** SIGKILLs the daemon and waits until it is really gone (kill only sends the signal). */
export async function killDaemon(d: TestDaemon): Promise<void> {
  const pid = await d.daemonPid();
  process.kill(pid, "SIGKILL");
  for (let i = 0; i < 500; i++) {
    try {
      process.kill(pid, 0);
    } catch {
      return;
    }
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`daemon ${pid} survived SIGKILL`);
}

const DAEMON = new URL("../../src/daemon/main.js", import.meta.url).pathname;

/** A daemon inside a network namespace: spawned with `ip netns exec`, and ready when it says so. */
async function spawnInNetns(netns: string, home: string): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const child = spawn("ip", ["netns", "exec", netns, process.execPath, DAEMON], { env: { ...process.env, MVM_HOME: home }, detached: true, stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    child.stdout.on("data", (b: Buffer) => {
      out += b.toString();
      if (out.includes("ready\n")) resolve();
    });
    child.once("exit", (code) => reject(new Error(`daemon in ${netns} exited ${code}`)));
    child.unref();
  });
}

export async function startTestDaemon(t: Pick<TestContext, "after">, options: { netns?: boolean } = {}): Promise<TestDaemon> {
  await guestArtifacts(); // build (or find) the guest before any daemon needs it
  const home = await mkdtemp(join(tmpdir(), "mvm-home-"));
  let netns: string | undefined;
  if (options.netns) {
    netns = `mvmt-${home.slice(-6).replace(/[^a-zA-Z0-9]/g, "x")}`;
    execFileSync("ip", ["netns", "add", netns]);
    execFileSync("ip", ["netns", "exec", netns, "ip", "link", "set", "lo", "up"]);
    await mkdir(home, { recursive: true });
    await spawnInNetns(netns, home);
  }
  const client = await connect({ home, autoStart: !netns });
  const env = { ...process.env, MVM_HOME: home };
  const d: TestDaemon = {
    home,
    client,
    netns,
    inNetns: (cmd) => execFileSync(netns ? "ip" : cmd[0]!, netns ? ["netns", "exec", netns, ...cmd] : cmd.slice(1), { stdio: ["ignore", "pipe", "pipe"] }).toString(),
    restart: async () => {
      if (netns) await spawnInNetns(netns, home);
      return connect({ home, autoStart: !netns });
    },
    cli: (args, input) =>
      new Promise((resolve) => {
        const child = execFile(process.execPath, [CLI, ...args], { env, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) =>
          resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
        );
        child.stdin?.end(input ?? "");
      }),
    daemonPid: async () => (await connect({ home, autoStart: !netns })).info().then((i) => i.pid),
  };
  t.after(async () => {
    try {
      const c = await connect({ home, autoStart: !netns });
      for (const vm of await c.list()) await c.remove(vm.id, { force: true }).catch(() => undefined);
      process.kill((await c.info()).pid, "SIGTERM");
    } catch {
      /* the test took the daemon down itself */
    }
    const left = qemuPidsOf(home);
    for (const pid of left) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        /* gone meanwhile */
      }
    }
    await rm(home, { recursive: true, force: true });
    if (netns) execFileSync("ip", ["netns", "del", netns]);
    assert.deepEqual(left, [], `QEMU processes of ${home} survived the test`);
  });
  return d;
}
