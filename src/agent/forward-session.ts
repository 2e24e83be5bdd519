// A TCP connection to a port inside the guest (FORWARD, docs/agent-protocol.md) as a Node Duplex. Both
// directions are under the session's windows: what the host writes waits for the agent's stdin credit
// (so write() returns false and 'drain' comes late when the guest's side reads slowly), and credit for
// the guest's bytes goes back only as the Duplex's reader takes them (a reader that stops reading stops
// the agent reading the guest socket). A guest that sends beyond its credit fails the connection.

import { Duplex } from "node:stream";
import { AgentProtocolError, GuestPortError, TimeoutError } from "../errors.js";
import { CreditedReceiver, CreditedSender } from "./credit.js";
import { FieldWriter } from "./fields.js";
import { encodeWindow, type ExitMessage } from "./messages.js";
import { Field, FrameType } from "./protocol.js";
import type { ChannelSession, SessionChannel, SessionLimits } from "./session.js";

/** The agent answers FORWARD (STARTED or EXIT) within its 10 s connect deadline; this is the host's. */
export const FORWARD_CONNECT_MS = 15_000;
/** After the host cancels, how long it keeps the id for the agent's EXIT before forgetting it. */
const CANCEL_GRACE_MS = 5_000;

export interface ForwardRequest {
  port: number;
  /** An IPv4 or IPv6 literal inside the guest; 127.0.0.1 when absent. */
  address?: string;
}

/** A TCP port: a whole number 1-65535 (from a number or its decimal string), else undefined. */
export function parsePort(value: unknown): number | undefined {
  const s = typeof value === "number" ? String(value) : value;
  if (typeof s !== "string" || !/^[0-9]{1,5}$/.test(s)) return undefined;
  const n = Number(s);
  return n >= 1 && n <= 65535 ? n : undefined;
}

export function encodeForward(req: ForwardRequest): Buffer {
  if (parsePort(req.port) === undefined) throw new RangeError(`port must be 1-65535, not ${JSON.stringify(req.port)}`);
  const w = new FieldWriter().u32(Field.PORT, req.port);
  if (req.address !== undefined) {
    if (!req.address || Buffer.byteLength(req.address) >= 64 || req.address.includes("\0")) throw new RangeError(`address must be an IP literal, not ${JSON.stringify(req.address)}`);
    w.str(Field.ADDRESS, req.address);
  }
  return w.build();
}

export class ForwardSession implements ChannelSession {
  readonly exitAck = false;
  readonly stream: Duplex;
  /** Resolves once the guest accepted the connection; rejects with GuestPortError when it could not connect. */
  readonly connected: Promise<void>;
  private resolveConnected!: () => void;
  private rejectConnected!: (e: Error) => void;
  private readonly sender: CreditedSender;
  private readonly receiver: CreditedReceiver;
  private ended = false; // the agent sent EXIT (or the channel failed): the id is free
  private isConnected = false;
  private connectTimer?: NodeJS.Timeout;
  private cancelTimer?: NodeJS.Timeout;

  constructor(
    readonly id: number,
    readonly request: ForwardRequest,
    limits: SessionLimits,
    private readonly channel: SessionChannel,
  ) {
    this.connected = new Promise((resolve, reject) => {
      this.resolveConnected = resolve;
      this.rejectConnected = reject;
    });
    this.connected.catch(() => undefined);
    this.sender = new CreditedSender(limits.window, limits.maxPayload, (chunk) => channel.send(FrameType.STDIN, chunk), () => {
      if (this.ended) throw new GuestPortError(`the connection to guest port ${request.port} has ended`);
    });
    this.receiver = new CreditedReceiver(limits.window, (n) => !this.ended && channel.send(FrameType.WINDOW, encodeWindow(n)));
    this.stream = new Duplex({
      // Small buffers on the host: the window in the guest is the real buffer.
      readableHighWaterMark: 64 * 1024,
      writableHighWaterMark: 64 * 1024,
      read: () => this.receiver.resume(),
      write: (chunk: Buffer, _enc, cb) => {
        this.connected.then(() => this.sender.write(chunk)).then(() => cb(), (e: Error) => cb(e));
      },
      final: (cb) => {
        this.connected.then(() => this.sender.write(Buffer.alloc(0))).then(() => cb(), (e: Error) => cb(e));
      },
      destroy: (err, cb) => {
        this.cancel();
        cb(err);
      },
    });
    this.connectTimer = setTimeout(() => this.fail(new TimeoutError(`guest port ${request.port}: the agent did not connect within ${FORWARD_CONNECT_MS} ms`)), FORWARD_CONNECT_MS);
  }

  onStarted(): void {
    clearTimeout(this.connectTimer);
    this.isConnected = true;
    this.resolveConnected();
  }

  onStdinCredit(n: number): void {
    this.sender.grant(n);
  }

  onOutput(stream: "stdout" | "stderr", data: Buffer): void {
    if (stream !== "stdout" || !this.isConnected) return this.protocolFailure(`${stream} frame on a forward that has not started`);
    if (data.length === 0) {
      this.stream.push(null); // the guest's side ended; ours may still write (half-close)
      return;
    }
    if (!this.receiver.received(data.length)) return this.protocolFailure(`the guest agent sent more than its credit on forward ${this.id}`);
    // A copy: the frame is a view into the decoder's chunk, which the reader may hold on to for long.
    if (!this.stream.push(Buffer.from(data))) this.receiver.pause();
    this.receiver.consumed(data.length);
  }

  onExit(exit: ExitMessage): void {
    this.release();
    if (exit.exitCode !== 0 || exit.message) {
      const e = new GuestPortError(exit.message ?? `the connection to guest port ${this.request.port} failed`, {
        details: { port: this.request.port, address: this.request.address ?? "127.0.0.1", errno: exit.errno },
      });
      this.rejectConnected(e);
      // Before it connected, nobody holds the stream yet: the error goes to connected only (an 'error'
      // event without a listener would take the process down).
      this.stream.destroy(this.isConnected ? e : undefined);
      return;
    }
    // Both sides ended: the stream ends by itself once its reader has the rest.
    this.stream.push(null);
  }

  fail(error: Error): void {
    this.release();
    this.rejectConnected(error);
    this.stream.destroy(this.isConnected ? error : undefined);
  }

  private protocolFailure(message: string): void {
    this.cancel();
    this.fail(new AgentProtocolError(message, { details: { session: this.id } }));
  }

  /** The host is done with it: SIGNAL ends the forward in the agent, whose EXIT then frees the id. */
  private cancel(): void {
    if (this.ended || this.cancelTimer) return;
    this.channel.send(FrameType.SIGNAL, new FieldWriter().u32(Field.SIGNO, 9).build());
    this.cancelTimer = setTimeout(() => this.release(), CANCEL_GRACE_MS);
    this.cancelTimer.unref();
  }

  private release(): void {
    if (this.ended) return;
    this.ended = true;
    clearTimeout(this.connectTimer);
    clearTimeout(this.cancelTimer);
    this.sender.wake();
    this.channel.done();
  }
}
