// The serial console of a running VM, wherever QEMU sends it: its stdout (a one-off launch) or the console
// socket mvm listens on (daemon VMs; QEMU logs every byte to console.log itself, connected or not). Keeps a
// bounded tail in memory, notes when the first byte and the init line came, and hands bytes to listeners.

import type { Server, Socket } from "node:net";
import type { Readable } from "node:stream";
import { CONSOLE_CAP, capLog, readTail } from "./layout.js";

export class ConsoleTap {
  private text = "";
  private readonly listeners = new Set<(b: Buffer) => void>();
  private channel?: Socket;
  private bytesSinceCap = 0;
  firstByteMs?: number;
  initLineMs?: number;

  constructor(
    private readonly now: () => number,
    /** Where QEMU logs the console (socket mode), read back for console() and capped as it grows. */
    private readonly logFile?: string,
    signal?: AbortSignal,
  ) {
    signal?.addEventListener("abort", () => {
      this.channel?.destroy();
      this.listeners.clear();
    }, { once: true });
  }

  /** QEMU's stdout carries the console (one-off launches). */
  readFrom(stream: Readable): void {
    stream.on("data", (b: Buffer) => this.take(b));
  }

  /** Takes QEMU's console connections: it reconnects after a host-side restart. */
  serve(server: Server): void {
    server.on("connection", (socket: Socket) => {
      this.channel?.destroy();
      this.channel = socket;
      socket.on("data", (b: Buffer) => {
        this.take(b);
        this.bytesSinceCap += b.length;
        if (this.logFile && this.bytesSinceCap > 64 * 1024) {
          this.bytesSinceCap = 0;
          capLog(this.logFile);
        }
      });
      socket.on("error", () => undefined);
    });
  }

  private take(b: Buffer): void {
    this.firstByteMs ??= this.now();
    this.text = (this.text + b.toString("latin1")).slice(-CONSOLE_CAP);
    if (this.initLineMs === undefined && this.text.includes("mvm-init: started")) this.initLineMs = this.now();
    for (const l of this.listeners) l(b);
    if (this.lineWatchers.length) this.splitLines(b.toString("latin1"));
  }

  private readonly lineWatchers: Array<(line: string, ms: number) => void> = [];
  private partial = "";

  /** Calls `fn` with each whole console line and the ms it arrived at (the boot benchmark's phases). */
  onLine(fn: (line: string, ms: number) => void): void {
    this.lineWatchers.push(fn);
  }

  private splitLines(chunk: string): void {
    const ms = this.now();
    const parts = (this.partial + chunk).split(/\r?\n/);
    // A guest that never ends a line cannot grow this without bound.
    this.partial = parts.pop()!.slice(-4096);
    for (const line of parts) for (const fn of this.lineWatchers) fn(line, ms);
  }

  /** The console so far: its last 256 KiB (from the log file when QEMU keeps one). */
  tail(): string {
    return this.logFile ? readTail(this.logFile) : this.text;
  }

  /** What arrived since this process started listening (for readiness patterns). */
  seen(): string {
    return this.text;
  }

  /** Follows console output; returns a function that stops. */
  listen(onData: (b: Buffer) => void): () => void {
    this.listeners.add(onData);
    return () => this.listeners.delete(onData);
  }

  /**
   * Keystrokes to the console (socket mode only; one-off launches have no input). false: QEMU is not taking
   * them as fast as they come (the guest's serial port is slow or stalled); `onDrain` is called once it has
   * caught up (or the channel closed), so that a client can be paused meanwhile.
   */
  write(b: Buffer, onDrain?: () => void): boolean {
    const ch = this.channel;
    if (!ch || ch.destroyed || ch.write(b)) return true;
    if (onDrain) {
      const done = () => {
        ch.off("drain", done).off("close", done);
        onDrain();
      };
      ch.once("drain", done).once("close", done);
    }
    return false;
  }
}
