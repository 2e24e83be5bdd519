// A private daemon per test: its own $MVM_HOME, the CLI run against it, and a teardown that removes every
// VM, stops the daemon and fails if a QEMU of that home survives.
import assert from "node:assert/strict";
import { execFile, execFileSync, spawn } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
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

/** Whether a process still runs (a zombie, dead but not yet reaped, does not). */
export function isRunning(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false;
  }
}

/** Waits until none of the processes runs, or the time is up; returns those still running. */
export async function waitGone(pids: number[], timeoutMs = 10_000): Promise<number[]> {
  const deadline = Date.now() + timeoutMs;
  let left = pids.filter(isRunning);
  while (left.length > 0 && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 20));
    left = left.filter(isRunning);
  }
  return left;
}

/** The daemon and CLI processes of a home: node processes started with that MVM_HOME. */
function mvmPidsOf(home: string): number[] {
  const pids: number[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    try {
      if (readFileSync(`/proc/${name}/cmdline`, "utf8").split("\0")[0] !== process.execPath) continue;
      if (readFileSync(`/proc/${name}/environ`, "utf8").split("\0").includes(`MVM_HOME=${home}`)) pids.push(Number(name));
    } catch {
      /* gone meanwhile, or not ours to read */
    }
  }
  return pids;
}

function signal(pids: number[], sig: NodeJS.Signals): void {
  for (const pid of pids) {
    try {
      process.kill(pid, sig);
    } catch {
      /* gone meanwhile */
    }
  }
}

/** Rejects if the promise has not settled within the time. */
function within<T>(ms: number, what: string, p: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms)));
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

/** SIGKILLs the daemon and waits until it is really gone (kill only sends the signal). */
export async function killDaemon(d: TestDaemon): Promise<void> {
  const pid = await d.daemonPid();
  process.kill(pid, "SIGKILL");
  if ((await waitGone([pid], 5000)).length > 0) throw new Error(`daemon ${pid} survived SIGKILL`);
}

const DAEMON = new URL("../../src/daemon/main.js", import.meta.url).pathname;

/** A daemon inside a network namespace: spawned with `ip netns exec`, and ready when it says so (within 30 s). */
async function spawnInNetns(netns: string, home: string): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const child = spawn("ip", ["netns", "exec", netns, process.execPath, DAEMON], { env: { ...process.env, MVM_HOME: home }, detached: true, stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`daemon in ${netns} not ready within 30 s; it said: ${out.slice(-500)}`));
    }, 30_000);
    child.stdout.on("data", (b: Buffer) => {
      out += b.toString();
      if (out.includes("ready\n")) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`daemon in ${netns} exited ${code}`));
    });
    child.unref();
  });
}

export async function startTestDaemon(t: Pick<TestContext, "after">, options: { netns?: boolean } = {}): Promise<TestDaemon> {
  await guestArtifacts(); // build (or find) the guest before any daemon needs it
  const home = await mkdtemp(join(tmpdir(), "mvm-home-"));
  let netns: string | undefined;
  // Registered before anything is started, so that it runs even if starting fails; it runs when the test
  // times out too, and each step has its own deadline so that the teardown itself cannot hang.
  t.after(() => teardown(home, netns), { timeout: 120_000 });
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
  return d;
}

/** Removes every VM of the home, stops its daemon, kills whatever is left, and fails if a QEMU was. */
async function teardown(home: string, netns: string | undefined): Promise<void> {
  try {
    await within(60_000, "removing the test's VMs", (async () => {
      const c = await connect({ home, autoStart: !netns });
      for (const vm of await c.list()) await c.remove(vm.id, { force: true }).catch(() => undefined);
      process.kill((await c.info()).pid, "SIGTERM");
    })());
  } catch {
    /* the test took the daemon down itself, or the daemon does not answer: ended below */
  }
  // The daemon, and any CLI of this home still running (a test that timed out waiting on one).
  const mvm = mvmPidsOf(home);
  signal(mvm, "SIGTERM");
  const slow = await waitGone(mvm, 5000);
  signal(slow, "SIGKILL");
  // A jail's bwrap ends just after its QEMU (it reaps it, then exits): give what is ending a moment.
  const left = await waitGone(qemuPidsOf(home), 3000);
  // What they were (a jail's bwrap, a parked QEMU, a VM's): the first thing to know when this fails.
  const seen = left.map((pid) => {
    try {
      const children = readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").trim() || "none";
      return `${pid} state/ppid ${readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]?.split(" ").slice(0, 2).join(" ")}, children ${children}: ${readFileSync(`/proc/${pid}/cmdline`, "utf8").replaceAll("\0", " ").slice(0, 200)}`;
    } catch {
      return `${pid} (gone)`;
    }
  });
  signal(left, "SIGKILL");
  await waitGone(left, 5000);
  await rm(home, { recursive: true, force: true });
  if (netns) execFileSync("ip", ["netns", "del", netns]);
  const daemonNote = slow.length ? ` (the daemon, ${slow.join(", ")}, did not end within 5 s of SIGTERM and was killed)` : "";
  assert.deepEqual(left, [], `QEMU processes of ${home} survived the test${daemonNote}:\n${seen.join("\n")}`);
}
