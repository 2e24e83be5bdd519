// A QEMU process, whether this process spawned it or adopted it after a restart. Spawned ones run in their
// own session (detached) when asked, so they outlive the daemon; an adopted one is not our child, so its
// end is noticed by polling its pid (and sooner by its QMP socket closing, which calls check()).

import { spawn, type ChildProcess } from "node:child_process";
import { openSync, closeSync, readdirSync, readFileSync } from "node:fs";
import { constants } from "node:os";

export interface QemuExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** false for an adopted process: its exit status cannot be known. */
  known?: boolean;
}

export interface QemuProcess {
  readonly pid: number;
  readonly exited: Promise<QemuExit>;
  readonly running: boolean;
  kill(signal: NodeJS.Signals): void;
  /** Looks again whether the process is gone (for adopted processes). */
  check(): void;
  /** The ChildProcess when spawned here with piped output. */
  readonly child?: ChildProcess;
}

/**
 * Field 22 of /proc/PID/stat: the start time in clock ticks since boot. With the pid it names one process.
 * undefined once the process has exited, a zombie included (an adopted QEMU's parent is init, which may
 * take a while to reap it, or never, in a container whose PID 1 does not).
 */
export function processStartTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // The command name (field 2) may hold spaces and parentheses: count fields after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    if (fields[0] === "Z" || fields[0] === "X") return undefined;
    return fields[19];
  } catch {
    return undefined;
  }
}

export interface SpawnOptions {
  detached?: boolean;
  logFile?: string;
  prefix?: string[];
  env?: Record<string, string>;
  /** Descriptors passed on as fds 3, 4, … */
  passFds?: number[];
}

export function spawnQemu(binary: string, args: string[], options: SpawnOptions = {}): QemuProcess {
  return wrapChild(spawnChild(binary, args, options));
}

function spawnChild(binary: string, args: string[], options: SpawnOptions): ChildProcess {
  let stdio: Array<"ignore" | "pipe" | number> = ["ignore", "pipe", "pipe"];
  let logFd: number | undefined;
  if (options.logFile) {
    logFd = openSync(options.logFile, "a", 0o600);
    stdio = ["ignore", logFd, logFd];
  }
  stdio.push(...(options.passFds ?? []));
  // A jail prefix (src/jail/jail.ts) execs into QEMU: the child's pid is QEMU's either way.
  const [command, ...argv] = [...(options.prefix ?? []), binary, ...args];
  const child = spawn(command!, argv, { stdio, detached: options.detached ?? false, ...(options.env ? { env: options.env } : {}) });
  if (logFd !== undefined) closeSync(logFd);
  if (options.detached) child.unref();
  return child;
}

function wrapChild(child: ChildProcess): QemuProcess {
  let done = false;
  const exited = new Promise<QemuExit>((resolve) => {
    child.once("exit", (code, signal) => {
      done = true;
      resolve({ code, signal, known: true });
    });
    child.once("error", () => {
      done = true;
      resolve({ code: null, signal: null, known: true });
    });
  });
  return {
    get pid() {
      return child.pid ?? -1;
    },
    exited,
    get running() {
      return !done;
    },
    kill: (signal) => {
      if (!done) child.kill(signal);
    },
    check: () => {},
    child,
  };
}

/** A QEMU known by its pid (not this process's child, or not its direct one): signalled by pid. */
function byPid(pid: number, exited: Promise<QemuExit>, isDone: () => boolean, check: () => void, child?: ChildProcess): QemuProcess {
  return {
    pid,
    exited,
    get running() {
      return !isDone();
    },
    kill: (signal) => {
      if (isDone()) return;
      try {
        process.kill(pid, signal);
      } catch {
        /* already gone */
      }
      setTimeout(check, 50).unref();
    },
    check,
    ...(child ? { child } : {}),
  };
}

/** Follows a QEMU that an earlier daemon started. Its exit status is unknown; only that it ended. */
export function adoptQemu(pid: number, startTime: string, pollMs = 1000): QemuProcess {
  let done = false;
  let resolveExit!: (e: QemuExit) => void;
  const exited = new Promise<QemuExit>((r) => (resolveExit = r));
  const check = () => {
    if (done) return;
    if (processStartTime(pid) !== startTime) {
      done = true;
      clearInterval(timer);
      resolveExit({ code: null, signal: null, known: false });
    }
  };
  const timer = setInterval(check, pollMs);
  timer.unref();
  return byPid(pid, exited, () => done, check);
}

/** bwrap exits with 128 + the signal that ended QEMU: the signal, as for a QEMU spawned bare. */
function translate(code: number | null, signal: NodeJS.Signals | null): QemuExit {
  if (code !== null && code > 128) {
    const name = Object.entries(constants.signals).find(([, n]) => n === code - 128)?.[0] as NodeJS.Signals | undefined;
    if (name) return { code: null, signal: name, known: true };
  }
  return { code, signal, known: true };
}

/** The first child of a process: /proc's children list, else a scan of every process's parent. */
function firstChild(pid: number): number | undefined {
  try {
    const listed = readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").trim().split(/\s+/)[0];
    return listed ? Number(listed) : undefined;
  } catch {
    for (const entry of readdirSync("/proc")) {
      if (!/^\d+$/.test(entry)) continue;
      try {
        const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
        if (Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]) === pid) return Number(entry);
      } catch {
        /* gone meanwhile */
      }
    }
    return undefined;
  }
}

/**
 * QEMU's pid: bwrap's only child (the PID 1 of its namespace, which becomes setpriv, then QEMU: one pid).
 * Polled rather than read from bwrap's --info-fd: a pipe to the daemon would end bwrap by SIGPIPE if the
 * daemon died meanwhile, and leave its child waiting for ever before QEMU.
 */
async function qemuPidOf(monitor: QemuProcess, timeoutMs: number): Promise<number | undefined> {
  const deadline = performance.now() + timeoutMs;
  while (monitor.running && performance.now() < deadline) {
    const pid = firstChild(monitor.pid);
    if (pid !== undefined) return pid;
    await new Promise((r) => setTimeout(r, 1));
  }
  return undefined;
}

/**
 * Spawns QEMU through a jail whose bwrap forks it (src/jail/sandbox.ts): resolves once QEMU's host pid is
 * known, which the process then stands for (signals go to QEMU itself: bwrap forwards none). bwrap exits
 * with QEMU's status; if bwrap alone ends, QEMU is followed by its pid as an adopted one is.
 */
export async function spawnJailedQemu(binary: string, args: string[], options: SpawnOptions): Promise<QemuProcess> {
  const child = spawnChild(binary, args, options);
  const monitor = wrapChild(child);
  const pid = await qemuPidOf(monitor, 10_000);
  if (pid === undefined) {
    // The jail failed before QEMU existed (its message is in QEMU's log), or never said: nothing of it stays.
    if (monitor.running) monitor.kill("SIGKILL");
    return monitor;
  }
  const start = processStartTime(pid);
  let done = false;
  let resolveExit!: (e: QemuExit) => void;
  const exited = new Promise<QemuExit>((r) => (resolveExit = r));
  void monitor.exited.then((e) => {
    if (start !== undefined && processStartTime(pid) === start) {
      // bwrap is gone, QEMU is not: follow it by its pid.
      const adopted = adoptQemu(pid, start, 500);
      void adopted.exited.then((x) => ((done = true), resolveExit(x)));
      return;
    }
    done = true;
    resolveExit(translate(e.code, e.signal));
  });
  return byPid(pid, exited, () => done, () => undefined, child);
}
