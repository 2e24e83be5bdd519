// One command running in the guest: its pid, streamed output, stdin with flow control, and its result.

import { AbortError, AgentProtocolError } from "../errors.js";
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
    this.output.pause();
  }

  resume(): void {
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
    this.resolveStarted(this.pid);
    this.stdin.wake();
    if (this.abortListener) this.options.signal?.removeEventListener("abort", this.abortListener);
  }
}
