// A private daemon per test: its own $MVM_HOME, the CLI run against it, and a teardown that removes every
// VM, stops the daemon and fails if a QEMU of that home survives.
import assert from "node:assert/strict";
import { execFile, execFileSync } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
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

export async function startTestDaemon(t: Pick<TestContext, "after">): Promise<TestDaemon> {
  await guestArtifacts(); // build (or find) the guest before any daemon needs it
  const home = await mkdtemp(join(tmpdir(), "mvm-home-"));
  const client = await connect({ home });
  const env = { ...process.env, MVM_HOME: home };
  const d: TestDaemon = {
    home,
    client,
    cli: (args, input) =>
      new Promise((resolve) => {
        const child = execFile(process.execPath, [CLI, ...args], { env, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) =>
          resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
        );
        child.stdin?.end(input ?? "");
      }),
    daemonPid: async () => (await connect({ home })).info().then((i) => i.pid),
  };
  t.after(async () => {
    try {
      const c = await connect({ home });
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
    assert.deepEqual(left, [], `QEMU processes of ${home} survived the test`);
  });
  return d;
}
