// A QMP client: waits for QEMU's greeting, negotiates capabilities, numbers its requests, keeps events
// apart from replies, and fails every pending call when the connection drops. It works on any duplex
// stream, so QEMU can connect to a socket mvm already listens on (no polling for a socket file).

import { EventEmitter } from "node:events";
import type { Duplex } from "node:stream";
import { withDeadline } from "../deadline.js";
import { QmpCommandError, QmpDisconnectedError } from "../errors.js";

export interface QmpEvent {
  event: string;
  data?: Record<string, unknown>;
  timestamp?: { seconds: number; microseconds: number };
}

export interface QmpGreeting {
  version: { qemu: { major: number; minor: number; micro: number }; package?: string };
  capabilities: string[];
}

/** A line longer than this is not QMP; the connection is dropped rather than buffered without end. */
const MAX_LINE = 16 * 1024 * 1024;

interface Pending {
  command: string;
  args?: Record<string, unknown>;
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
}

export class QmpClient extends EventEmitter<{ event: [QmpEvent]; close: [] }> {
  private buffer = "";
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private greetingWaiter?: { resolve: (g: QmpGreeting) => void; reject: (e: Error) => void };
  private closedError?: QmpDisconnectedError;
  greeting?: QmpGreeting;

  private constructor(private readonly stream: Duplex) {
    super();
    stream.setEncoding("utf8");
    stream.on("data", (chunk: string) => this.onData(chunk));
    stream.on("error", (e) => this.onClose(e));
    stream.on("close", () => this.onClose());
    stream.on("end", () => this.onClose());
  }

  /** Takes a connected stream through the greeting and capability negotiation. */
  static async connect(stream: Duplex, options: { timeoutMs?: number; signal?: AbortSignal } = {}): Promise<QmpClient> {
    const client = new QmpClient(stream);
    try {
      const greeting = await withDeadline(
        new Promise<QmpGreeting>((resolve, reject) => (client.greetingWaiter = { resolve, reject })),
        { timeoutMs: options.timeoutMs ?? 10000, signal: options.signal },
        "QEMU sent no QMP greeting",
      );
      client.greeting = greeting;
      await client.execute("qmp_capabilities", undefined, options);
      return client;
    } catch (e) {
      client.close();
      throw e;
    }
  }

  get closed(): boolean {
    return this.closedError !== undefined;
  }

  /** Runs one command; resolves with its "return" value or rejects with QmpCommandError. */
  execute<T = unknown>(command: string, args?: Record<string, unknown>, options: { timeoutMs?: number; signal?: AbortSignal } = {}): Promise<T> {
    if (this.closedError) return Promise.reject(this.closedError);
    const id = this.nextId++;
    const reply = new Promise<unknown>((resolve, reject) => this.pending.set(id, { command, args, resolve, reject }));
    this.stream.write(`${JSON.stringify(args ? { execute: command, arguments: args, id } : { execute: command, id })}\n`);
    return withDeadline(reply, options, `QMP ${command} got no reply`).finally(() => this.pending.delete(id)) as Promise<T>;
  }

  close(): void {
    this.stream.destroy();
    this.onClose();
  }

  private onData(chunk: string): void {
    this.buffer += chunk;
    if (this.buffer.length > MAX_LINE && !this.buffer.includes("\n")) {
      this.stream.destroy(new Error(`QMP sent a line over ${MAX_LINE} bytes`));
      return;
    }
    let nl: number;
    while ((nl = this.buffer.indexOf("\n")) >= 0) {
      const line = this.buffer.slice(0, nl).trim();
      this.buffer = this.buffer.slice(nl + 1);
      if (line) this.onMessage(line);
    }
  }

  private onMessage(line: string): void {
    let msg: Record<string, unknown>;
    try {
      msg = JSON.parse(line) as Record<string, unknown>;
    } catch {
      return; // not JSON: QEMU never sends that on a QMP monitor; ignore rather than fail every caller
    }
    if (msg.QMP && this.greetingWaiter) {
      this.greetingWaiter.resolve(msg.QMP as QmpGreeting);
      this.greetingWaiter = undefined;
    } else if (typeof msg.event === "string") {
      this.emit("event", msg as unknown as QmpEvent);
    } else if (typeof msg.id === "number" && this.pending.has(msg.id)) {
      const p = this.pending.get(msg.id)!;
      if ("error" in msg) {
        const err = msg.error as { class?: string; desc?: string };
        p.reject(
          new QmpCommandError(`QEMU refused ${p.command}: ${err.desc ?? "unknown error"}`, {
            details: { command: p.command, arguments: p.args, reply: msg },
          }),
        );
      } else {
        p.resolve(msg.return);
      }
    }
  }

  private onClose(cause?: Error): void {
    if (this.closedError) return;
    this.closedError = new QmpDisconnectedError("the QMP connection to QEMU closed", { cause, hint: "QEMU has exited or closed its monitor" });
    this.greetingWaiter?.reject(this.closedError);
    for (const p of this.pending.values()) p.reject(this.closedError);
    this.pending.clear();
    this.emit("close");
  }
}
