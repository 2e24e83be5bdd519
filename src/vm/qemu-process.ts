// A QEMU process, whether this process spawned it or adopted it after a restart. Spawned ones run in their
// own session (detached) when asked, so they outlive the daemon; an adopted one is not our child, so its
// end is noticed by polling its pid (and sooner by its QMP socket closing, which calls check()).

import { spawn, type ChildProcess } from "node:child_process";
import { openSync, closeSync, readFileSync } from "node:fs";

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

export function spawnQemu(binary: string, args: string[], options: { detached?: boolean; logFile?: string; prefix?: string[]; env?: Record<string, string> } = {}): QemuProcess {
  let stdio: Array<"ignore" | "pipe" | number> = ["ignore", "pipe", "pipe"];
  let logFd: number | undefined;
  if (options.logFile) {
    logFd = openSync(options.logFile, "a", 0o600);
    stdio = ["ignore", logFd, logFd];
  }
  // A jail prefix (src/jail/jail.ts) execs into QEMU: the child's pid is QEMU's either way.
  const [command, ...argv] = [...(options.prefix ?? []), binary, ...args];
  const child = spawn(command!, argv, { stdio, detached: options.detached ?? false, ...(options.env ? { env: options.env } : {}) });
  if (logFd !== undefined) closeSync(logFd);
  if (options.detached) child.unref();
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
