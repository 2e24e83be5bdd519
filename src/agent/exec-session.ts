// One command running in the guest: its pid, streamed output, stdin with flow control, and its result.

import { AbortError, AgentProtocolError } from "../errors.js";
import type { ExecRequest, ExitMessage } from "./messages.js";
import { encodeSignal } from "./messages.js";
import { FrameType } from "./protocol.js";

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

interface Channel {
  send(type: number, payload?: Buffer): void;
  done(): void;
}

export class ExecSession {
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
  private stdinCredit: number;
  private creditWaiters: Array<() => void> = [];
  private writeChain: Promise<void> = Promise.resolve();
  private unacked = 0;
  private readonly abortListener?: () => void;

  constructor(
    readonly id: number,
    private readonly options: ExecOptions,
    private readonly limits: { maxPayload: number; window: number },
    private readonly channel: Channel,
  ) {
    this.stdinCredit = limits.window;
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
    const buf = typeof data === "string" ? Buffer.from(data) : data;
    const job = this.writeChain.then(() => this.writeNow(buf));
    this.writeChain = job.catch(() => undefined);
    return job;
  }

  /** Closes the command's stdin once everything written so far has been sent. */
  end(): Promise<void> {
    return this.write(Buffer.alloc(0));
  }

  /** Sends a signal to the command's process group (default SIGTERM). */
  kill(signo = 15): void {
    if (!this.finished) this.channel.send(FrameType.SIGNAL, encodeSignal(signo));
  }

  private async writeNow(buf: Buffer): Promise<void> {
    if (!this.options.stdin) throw new AgentProtocolError("this command was started without stdin", { hint: "pass stdin: true to exec()" });
    if (buf.length === 0) {
      this.ensureLive();
      this.channel.send(FrameType.STDIN);
      return;
    }
    for (let at = 0; at < buf.length; ) {
      this.ensureLive();
      if (this.stdinCredit === 0) {
        await new Promise<void>((r) => this.creditWaiters.push(r));
        continue;
      }
      const n = Math.min(buf.length - at, this.stdinCredit, this.limits.maxPayload);
      this.stdinCredit -= n;
      this.channel.send(FrameType.STDIN, buf.subarray(at, at + n));
      at += n;
    }
  }

  private ensureLive(): void {
    if (this.finished) throw new AgentProtocolError("the command has already ended; its stdin is closed");
  }

  onStarted(pid: number): void {
    this.pid = pid;
    this.resolveStarted(pid);
  }

  onOutput(stream: "stdout" | "stderr", data: Buffer, grant: (n: number) => void): void {
    if (!this.finished) (stream === "stdout" ? this.options.onStdout : this.options.onStderr)?.(data);
    // Credit goes back in quarters of the window, so a steady stream never stalls on round trips.
    this.unacked += data.length;
    if (this.unacked >= this.limits.window / 4) {
      grant(this.unacked);
      this.unacked = 0;
    }
  }

  onStdinCredit(n: number): void {
    this.stdinCredit += n;
    for (const w of this.creditWaiters.splice(0)) w();
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
    for (const w of this.creditWaiters.splice(0)) w();
    if (this.abortListener) this.options.signal?.removeEventListener("abort", this.abortListener);
  }
}
