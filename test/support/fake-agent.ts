// A scriptable stand-in for the guest agent, speaking the real frame format, for unit tests of the host side.
import type { Duplex } from "node:stream";
import { FrameDecoder, encodeFrame, type Frame } from "../../src/agent/frame.js";
import { FieldWriter, Fields } from "../../src/agent/fields.js";
import { Field, FrameType, MAX_PAYLOAD, PROTO_VERSION, WINDOW } from "../../src/agent/protocol.js";

export class FakeAgent {
  readonly received: Frame[] = [];
  private readonly decoder = new FrameDecoder();
  private waiters: Array<{ pred: (f: Frame) => boolean; resolve: (f: Frame) => void }> = [];

  constructor(
    readonly stream: Duplex,
    private readonly handler: (agent: FakeAgent, frame: Frame) => void = () => {},
  ) {
    stream.on("data", (chunk: Buffer) => {
      for (const d of this.decoder.push(chunk)) {
        if (d.kind !== "frame") continue;
        this.received.push(d.frame);
        this.handler(this, d.frame);
        for (const w of [...this.waiters]) {
          if (w.pred(d.frame)) {
            this.waiters.splice(this.waiters.indexOf(w), 1);
            w.resolve(d.frame);
          }
        }
      }
    });
  }

  send(type: number, session: number, payload?: Buffer): void {
    this.stream.write(encodeFrame(type, session, payload));
  }

  sendRaw(bytes: Buffer): void {
    this.stream.write(bytes);
  }

  hello(protocol = PROTO_VERSION, caps = ["exec"]): void {
    const w = new FieldWriter().u32(Field.PROTO, protocol).str(Field.AGENT_VERSION, "fake");
    for (const c of caps) w.str(Field.CAP, c);
    w.u32(Field.MAX_PAYLOAD, MAX_PAYLOAD)
      .u32(Field.WINDOW, WINDOW)
      .u32(Field.MAX_SESSIONS, 128);
    this.send(FrameType.HELLO, 0, w.build());
  }

  exit(session: number, code: number): void {
    this.send(FrameType.EXIT, session, new FieldWriter().u32(Field.EXIT_CODE, code).build());
  }

  /** Resolves with the next received frame matching pred (or one already received). */
  next(pred: (f: Frame) => boolean): Promise<Frame> {
    const hit = this.received.find(pred);
    if (hit) return Promise.resolve(hit);
    return new Promise((resolve) => this.waiters.push({ pred, resolve }));
  }

  static argv(frame: Frame): string[] {
    return new Fields(frame.payload).strs(Field.ARG);
  }
}
