// A QEMU process, whether this process spawned it or adopted it after a restart. Spawned ones run in their
// own session (detached) when asked, so they outlive the daemon; an adopted one is not our child, so its
// end is noticed by polling its pid (and sooner by its QMP socket closing, which calls check()).

import { spawn, type ChildProcess } from "node:child_process";
import { openSync, closeSync, readFileSync } from "node:fs";
import { constants } from "node:os";
import type { Readable } from "node:stream";

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
}

export function spawnQemu(binary: string, args: string[], options: SpawnOptions = {}): QemuProcess {
  return wrapChild(spawnChild(binary, args, options));
}

function spawnChild(binary: string, args: string[], options: SpawnOptions & { infoFd?: number }): ChildProcess {
  let stdio: Array<"ignore" | "pipe" | number> = ["ignore", "pipe", "pipe"];
  let logFd: number | undefined;
  if (options.logFile) {
    logFd = openSync(options.logFile, "a", 0o600);
    stdio = ["ignore", logFd, logFd];
  }
  // A jail prefix (src/jail/jail.ts) execs into QEMU: the child's pid is QEMU's either way.
  const [command, ...argv] = [...(options.prefix ?? []), binary, ...args];
  if (options.infoFd !== undefined) {
    while (stdio.length < options.infoFd) stdio.push("ignore");
    stdio[options.infoFd] = "pipe";
  }
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
  return {
    pid,
    exited,
    get running() {
      return !done;
    },
    kill: (signal) => {
      if (done) return;
      try {
        process.kill(pid, signal);
      } catch {
        /* already gone */
      }
      setTimeout(check, 50).unref();
    },
    check,
  };
}

/** bwrap exits with 128 + the signal that ended QEMU: the signal, as for a QEMU spawned bare. */
function translate(code: number | null, signal: NodeJS.Signals | null): QemuExit {
  if (code !== null && code > 128) {
    const name = Object.entries(constants.signals).find(([, n]) => n === code - 128)?.[0] as NodeJS.Signals | undefined;
    if (name) return { code: null, signal: name, known: true };
  }
  return { code, signal, known: true };
}

/**
 * Reads bwrap's --info-fd JSON to its end (bwrap closes the fd when done; closing it earlier would end bwrap
 * by SIGPIPE before it lets QEMU start), bounded: it is a few hundred bytes.
 */
function childPid(info: Readable, timeoutMs: number): Promise<number | undefined> {
  return new Promise((resolve) => {
    let text = "";
    const finish = () => {
      clearTimeout(timer);
      const m = /"child-pid"\s*:\s*(\d+)/.exec(text);
      resolve(m ? Number(m[1]) : undefined);
    };
    const timer = setTimeout(() => {
      info.destroy();
      finish();
    }, timeoutMs);
    info.on("data", (b: Buffer) => (text = (text + b.toString()).slice(0, 4096)));
    info.once("end", finish);
    info.once("error", finish);
  });
}

/**
 * Spawns QEMU through a jail whose bwrap forks it (src/jail/sandbox.ts): resolves once bwrap has said QEMU's
 * host pid, which the process then stands for (signals go to QEMU itself: bwrap forwards none). bwrap exits
 * with QEMU's status; if bwrap alone ends, QEMU is followed by its pid as an adopted one is.
 */
export async function spawnJailedQemu(binary: string, args: string[], options: SpawnOptions & { infoFd: number }): Promise<QemuProcess> {
  const child = spawnChild(binary, args, options);
  const monitor = wrapChild(child);
  const info = child.stdio[options.infoFd] as Readable | null;
  const pid = info ? await Promise.race([childPid(info, 10_000), monitor.exited.then(() => undefined)]) : undefined;
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
  return {
    pid,
    exited,
    get running() {
      return !done;
    },
    kill: (signal) => {
      if (done) return;
      try {
        process.kill(pid, signal);
      } catch {
        /* already gone */
      }
    },
    check: () => undefined,
    child,
  };
}
