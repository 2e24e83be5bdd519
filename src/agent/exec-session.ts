// One command running in the guest: its pid, streamed output, stdin with flow control, and its result.

import { AbortError, AgentProtocolError, TimeoutError } from "../errors.js";
import { CreditedReceiver, CreditedSender } from "./credit.js";
import type { ExecRequest, ExitMessage } from "./messages.js";
import { encodeResize, encodeSignal, encodeWindow } from "./messages.js";
import { FrameType } from "./protocol.js";
import type { ChannelSession, SessionChannel, SessionLimits } from "./session.js";

export interface ExecOptions extends ExecRequest {
  onStdout?: (chunk: Buffer) => void;
  onStderr?: (chunk: Buffer) => void;
  /** Aborting kills the command (SIGKILL to its process group) and rejects the result with AbortError. */
  signal?: AbortSignal;
}

export interface ExecResult {
  /** The command's exit status, or null when a signal ended it. */
  exitCode: number | null;
  /** The signal that ended the command, or null. */
  signal: number | null;
  /** One number in shell/Docker convention: the exit code, 128+N for signal N, 126/127 when it could not run. */
  status: number;
  /** Why the command could not start (e.g. "cannot run foo: No such file or directory"), or that it timed out. */
  message?: string;
  /** The timeout ended it (status is then 124, as with GNU timeout). */
  timedOut?: boolean;
  pid?: number;
  durationMs: number;
}

/**
 * How long after its timeoutMs a command's EXIT may take to come: the agent kills the command's cgroup,
 * drains its pipes (250 ms at most once it exited) and sends EXIT. After that the host stops waiting.
 */
export const EXIT_GRACE_MS = 10_000;

export class ExecSession implements ChannelSession {
  /** Resolves with the command's pid once it runs, or undefined if it never started. */
  readonly started: Promise<number | undefined>;
  /** Resolves when the command ends; rejects if the session failed (channel closed, refused, aborted). */
  readonly result: Promise<ExecResult>;

  private resolveStarted!: (pid: number | undefined) => void;
  private resolveResult!: (r: ExecResult) => void;
  private rejectResult!: (e: Error) => void;
  private readonly startedAt = performance.now();
  private pid?: number;
  private finished = false;
  private readonly stdin: CreditedSender;
  private readonly output: CreditedReceiver;
  private readonly abortListener?: () => void;
  private exitDeadline?: NodeJS.Timeout;
  private paused = false;

  constructor(
    readonly id: number,
    private readonly options: ExecOptions,
    limits: SessionLimits,
    private readonly channel: SessionChannel,
  ) {
    this.stdin = new CreditedSender(limits.window, limits.maxPayload, (b) => channel.send(FrameType.STDIN, b), () => this.ensureLive());
    this.output = new CreditedReceiver(limits.window, (n) => channel.send(FrameType.WINDOW, encodeWindow(n)));
    this.started = new Promise((r) => (this.resolveStarted = r));
    this.result = new Promise((resolve, reject) => {
      this.resolveResult = resolve;
      this.rejectResult = reject;
    });
    // Callers that only await `started` must not see an unhandled rejection from `result`.
    this.result.catch(() => undefined);
    const signal = options.signal;
    if (signal) {
      this.abortListener = () => {
        this.kill(9);
        this.fail(new AbortError(`command ${JSON.stringify(options.argv[0])} aborted`, { cause: signal.reason }), false);
      };
      if (signal.aborted) queueMicrotask(this.abortListener);
      else signal.addEventListener("abort", this.abortListener, { once: true });
    }
    // A command with a timeout ends by then in a working guest; one whose agent never sends EXIT must not
    // keep its caller waiting forever. (Without a timeout only the caller's signal can end the wait.)
    const limitMs = options.timeoutMs ? options.timeoutMs + EXIT_GRACE_MS : 0;
    if (limitMs && limitMs < 2 ** 31) this.armExitDeadline(limitMs);
  }

  private armExitDeadline(ms: number): void {
    this.exitDeadline = setTimeout(() => {
      if (this.finished) return;
      if (this.paused) return this.armExitDeadline(EXIT_GRACE_MS); // EXIT follows output the host holds back
      this.kill(9);
      this.fail(new TimeoutError(`command ${JSON.stringify(this.options.argv[0])} had a ${this.options.timeoutMs} ms timeout, and the guest agent sent no exit ${EXIT_GRACE_MS} ms after it`, {
        details: { session: this.id },
        hint: "the guest is hung or overloaded; the command was sent SIGKILL",
      }));
    }, ms);
  }

  /** Sends bytes to the command's stdin (it must have been started with `stdin: true`). */
  write(data: Buffer | string): Promise<void> {
    if (!this.options.stdin && !this.options.tty) {
      return Promise.reject(new AgentProtocolError("this command was started without stdin", { hint: "pass stdin: true to exec()" }));
    }
    return this.stdin.write(typeof data === "string" ? Buffer.from(data) : data);
  }

  /** Closes the command's stdin once everything written so far has been sent. */
  end(): Promise<void> {
    return this.write(Buffer.alloc(0));
  }

  /** Sends a signal to the command's process group (default SIGTERM). */
  kill(signo = 15): void {
    if (!this.finished) this.channel.send(FrameType.SIGNAL, encodeSignal(signo));
  }

  /** A pty session's new window size (the command gets SIGWINCH). */
  resize(rows: number, cols: number): void {
    if (!this.finished && this.options.tty) this.channel.send(FrameType.RESIZE, encodeResize(rows, cols));
  }

  /** Stops (and restarts) taking output: the command blocks once the guest's credit is used up. */
  pause(): void {
    this.paused = true;
    this.output.pause();
  }

  resume(): void {
    this.paused = false;
    this.output.resume();
  }

  private ensureLive(): void {
    if (this.finished) throw new AgentProtocolError("the command has already ended; its stdin is closed");
  }

  onStarted(pid: number | undefined): void {
    this.pid = pid;
    this.resolveStarted(pid);
  }

  onOutput(stream: "stdout" | "stderr", data: Buffer): void {
    // A guest that ignores its output credit would otherwise fill the host's memory while a reader is
    // paused: the session ends instead, and the data beyond the credit is not delivered.
    if (!this.output.received(data.length)) {
      this.kill(9);
      this.fail(new AgentProtocolError(`the guest agent sent output for session ${this.id} beyond the credit it was granted`, {
        details: { session: this.id },
        hint: "a guest agent must honour the output window (docs/agent-protocol.md, Flow control); the command was killed",
      }));
      return;
    }
    if (!this.finished) (stream === "stdout" ? this.options.onStdout : this.options.onStderr)?.(data);
    this.output.consumed(data.length);
  }

  onStdinCredit(n: number): void {
    this.stdin.grant(n);
  }

  onExit(exit: ExitMessage): void {
    this.channel.done();
    if (this.finished) return;
    const status = exit.timedOut ? 124 : exit.signal !== null ? 128 + exit.signal : (exit.exitCode ?? 255);
    this.settle();
    this.resolveResult({
      exitCode: exit.exitCode,
      signal: exit.signal,
      status,
      message: exit.timedOut ? `timed out after ${this.options.timeoutMs} ms; the command and everything it started were killed` : exit.message,
      ...(exit.timedOut ? { timedOut: true } : {}),
      pid: this.pid,
      durationMs: performance.now() - this.startedAt,
    });
  }

  /** Ends the session with an error. With `forget` false it stays registered until the agent's EXIT. */
  fail(error: Error, forget = true): void {
    if (forget) this.channel.done();
    if (this.finished) return;
    this.settle();
    this.rejectResult(error);
  }

  private settle(): void {
    this.finished = true;
    clearTimeout(this.exitDeadline);
    this.resolveStarted(this.pid);
    this.stdin.wake();
    if (this.abortListener) this.options.signal?.removeEventListener("abort", this.abortListener);
  }
}
