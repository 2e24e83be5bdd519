// The process tier's set-up: a private MVM home with real stores, a VmManager wired as src/daemon/main.ts
// wires it but with the fake QEMU (test/support/fake-qemu.ts) as its only binary and dummy guest artifacts,
// and a teardown that stops every fake QEMU of that home and fails the test if one had survived.

import { decideJail } from "../../src/jail/jail.js";
import assert from "node:assert/strict";
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { createHash } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { VmManager } from "../../src/daemon/vm-manager.js";
import type { GuestArtifacts } from "../../src/guest/artifacts.js";
import { ImageStore } from "../../src/store/image-store.js";
import { NetworkStore } from "../../src/store/network-store.js";
import { VolumeStore } from "../../src/store/volume-store.js";
import { VmStore } from "../../src/store/vm-store.js";
import type { Guest } from "../../src/vm/launch.js";
import { vmDir } from "../../src/vm/layout.js";
import { processStartTime } from "../../src/vm/qemu-process.js";

/** The fake's wrapper script, a committed file beside the compiled tests' sources. */
/** The compiled tree (dist/): the fake QEMU's code. */
const COMPILED = fileURLToPath(new URL("../../", import.meta.url));
export const FAKE_QEMU = fileURLToPath(new URL("../../../test/support/bin/qemu-system-x86_64", import.meta.url));

// QEMU reconnects after a second; the fake may do it at once, so an adoption takes milliseconds.
process.env.FAKE_QEMU_RECONNECT_MS ??= "10";

/**
 * The daemon's cache directory, where probes are kept per binary content. Probing the fake costs five
 * Node starts, so the answer is kept across test files and runs, keyed on the fake's own code (its
 * wrapper's bytes alone would not change when fake-qemu.ts does); qemu-probe.test.ts probes afresh.
 */
const probeKey = createHash("sha256").update(readFileSync(FAKE_QEMU)).update(readFileSync(fileURLToPath(new URL("../support/fake-qemu.js", import.meta.url)))).digest("hex").slice(0, 16);
export const PROBE_CACHE = join(tmpdir(), `mvm-fake-qemu-probe-${probeKey}`);

/** A kernel and initramfs that are only paths: the fake boots nothing. */
function fakeArtifacts(home: string): GuestArtifacts {
  const dir = join(home, "guest-artifacts");
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "vmlinux"), "not a kernel\n");
  writeFileSync(join(dir, "initramfs.cpio.gz"), "not an initramfs\n");
  return {
    kernel: { dir, vmlinux: join(dir, "vmlinux"), bzImage: join(dir, "vmlinux"), info: { release: "6.1.0-fake", sourceVersion: "fake", hz: 1000, key: "fake", buildSeconds: 0 } },
    initramfs: { dir, path: join(dir, "initramfs.cpio.gz"), info: { busyboxVersion: "fake", key: "fake", bytes: 17, agentBytes: 0, initBytes: 0 } },
  };
}

export interface ManagerKnobs {
  readyTimeoutMs?: number;
  /** Off by default here: the fake QEMU cannot save or load a state (templates are integration-tested). */
  templates?: boolean;
  /**
   * The jail as the daemon decides it (root: on, with control groups). Off by default: the jail clears the
   * environment, so the fake runs with its defaults (reconnects after 1 s) and only -append's knobs.
   */
  jail?: boolean;
}

/** A VmManager on `home`, wired as src/daemon/main.ts wires the daemon's, with the fake as its QEMU. */
export function managerFor(home: string, knobs: ManagerKnobs = {}, log: (line: string) => void = () => undefined): { manager: VmManager; close: () => void } {
  const db = join(home, "mvm.db");
  const store = new VmStore(db);
  const images = new ImageStore(db);
  const networks = new NetworkStore(db);
  const volumes = new VolumeStore(db);
  const manager = new VmManager({
    store,
    images,
    networks,
    volumes,
    home,
    cacheDir: PROBE_CACHE,
    artifacts: () => Promise.resolve(fakeArtifacts(home)),
    binaries: { full: FAKE_QEMU, microvm: "/nonexistent" },
    log,
    templates: false,
    // The fake QEMU takes its instructions from the environment, which the jail clears: off unless asked
    // (knobs.jail); the jail itself is tested on real QEMUs (test/integration/jail.test.ts).
    ...knobs,
    // A jailed fake QEMU needs its compiled code in its root (the real one lives in /usr).
    jail: knobs.jail ? { ...decideJail(), extraReadOnly: [COMPILED] } : decideJail({ MVM_JAIL: "0" }),
  });
  return { manager, close: () => [store, images, networks, volumes].forEach((s) => s.close()) };
}

/** A daemon in a child process (daemon-child.ts): what it is asked over stdin, until killed with -9. */
export interface ChildDaemon {
  call(op: string, ...args: unknown[]): Promise<unknown>;
  /** SIGKILL, as a daemon killed with -9: its VMs keep running. */
  kill(): Promise<void>;
}

const DAEMON_CHILD = fileURLToPath(new URL("./daemon-child.js", import.meta.url));

/** A daemon's home for one test: managers on it (one per "daemon run"), and the fakes it started. */
export class FakeHome {
  readonly home = mkdtempSync(join(tmpdir(), "mvm-proc-"));
  readonly logs: string[] = [];
  /** Close each manager's stores. */
  private readonly closers: Array<() => void> = [];
  /** Fakes started by hand, and child daemons. */
  private readonly spawned: ChildProcess[] = [];
  private readonly children: ChildProcess[] = [];

  constructor() {
    mkdirSync(join(this.home, "vms"), { recursive: true, mode: 0o700 });
    mkdirSync(join(this.home, "images"), { recursive: true, mode: 0o700 });
  }

  /** A daemon's VmManager on this home (each call: a fresh one, with its own stores, as after a restart). */
  manager(knobs: ManagerKnobs = {}): VmManager {
    const d = managerFor(this.home, knobs, (l) => this.logs.push(l));
    this.closers.push(d.close);
    return d.manager;
  }

  /** A daemon of this home in a child process, ready for calls. */
  async childDaemon(knobs: ManagerKnobs = {}): Promise<ChildDaemon> {
    const child = spawn(process.execPath, [DAEMON_CHILD, this.home, JSON.stringify(knobs)], { stdio: ["pipe", "pipe", "inherit"] });
    this.children.push(child);
    const waiting = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
    const lines = createInterface({ input: child.stdout });
    let ready!: () => void;
    const isReady = new Promise<void>((r) => (ready = r));
    lines.on("line", (line) => {
      if (line === "ready") return ready();
      const msg = JSON.parse(line) as { id: number; ok?: unknown; error?: string };
      const w = waiting.get(msg.id);
      waiting.delete(msg.id);
      if (msg.error !== undefined) w?.reject(new Error(msg.error));
      else w?.resolve(msg.ok);
    });
    const exited = once(child, "exit");
    await Promise.race([isReady, exited.then(() => assert.fail("the child daemon exited before it was ready"))]);
    let next = 1;
    return {
      call: (op, ...args) => {
        const id = next++;
        child.stdin.write(`${JSON.stringify({ id, op, args })}\n`);
        return new Promise((resolve, reject) => waiting.set(id, { resolve, reject }));
      },
      kill: async () => {
        child.kill("SIGKILL");
        await exited;
      },
    };
  }

  /** The manager's live Guest of a VM (private: tests ask its QMP monitor directly). */
  static guestOf(manager: VmManager, id: string): Guest {
    const g = (manager as unknown as { guests: Map<string, Guest> }).guests.get(id);
    assert.ok(g, `the manager holds no guest for ${id}`);
    return g;
  }

  /** Starts the fake by hand, as a QEMU of this home labelled for VM `id` (which no record need know). */
  spawnFake(id: string, options: { home?: string } = {}): ChildProcess {
    const dir = vmDir(options.home ?? this.home, id);
    mkdirSync(dir, { recursive: true });
    const child = spawn(FAKE_QEMU, ["-name", `mvm-${id}`, "-chardev", `socket,id=agent,path=${dir}/agent.sock,reconnect=1`, "-chardev", `socket,id=qmp,path=${dir}/qmp.sock,reconnect=1`, "-mon", "chardev=qmp,mode=control"], { stdio: "ignore", detached: true });
    this.spawned.push(child);
    return child;
  }

  /** Fake QEMUs running for this home (their argv names it), by pid. */
  pids(): number[] {
    return fakeQemuPids(this.home);
  }

  /** Kills what the test left running, then fails if anything had been left. */
  async close(): Promise<void> {
    const survivors = this.pids();
    for (const pid of survivors) kill(pid);
    for (const c of [...this.spawned, ...this.children]) if (c.exitCode === null && c.signalCode === null) kill(c.pid!);
    await waitFor(() => this.pids().length === 0, "the fake QEMUs to go");
    // The stores stay open until this process ends: a manager may still be finishing something no test can
    // await (the VM's command recorded after wait() resolved), and it must not meet a closed database.
    process.once("exit", () => this.closers.forEach((close) => close()));
    rmSync(this.home, { recursive: true, force: true });
    assert.deepEqual(survivors, [], `fake QEMUs survived their test: ${survivors.join(", ")}`);
  }
}

/** pids of fake QEMUs whose command line names `marker` (a home, a socket path). */
export function fakeQemuPids(marker: string): number[] {
  try {
    const out = execFileSync("pgrep", ["-f", `fake-qemu\\.js.*${marker.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}`], { encoding: "utf8" });
    return out.trim().split("\n").filter(Boolean).map(Number);
  } catch {
    return []; // pgrep exits 1 when nothing matches
  }
}

/** A process is running (a zombie is not: a killed fake whose parent was a dead daemon may be one a while). */
export const alive = (pid: number): boolean => processStartTime(pid) !== undefined;

function kill(pid: number): void {
  try {
    process.kill(pid, "SIGKILL");
  } catch {
    /* gone */
  }
}

/** Waits for a condition (no fixed sleeps): polls every few ms, fails after `timeoutMs`. */
export async function waitFor(cond: () => boolean, what: string, timeoutMs = 3000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}
