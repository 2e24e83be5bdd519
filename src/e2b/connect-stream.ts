// A Connect server stream on a node response: 200 application/connect+json, data envelopes, keepalives at
// the interval the client asked for (Keepalive-Ping-Interval, seconds), and always one end-stream message.

import type { IncomingMessage, ServerResponse } from "node:http";
import { encodeEnvelope, endStream } from "./envelope.js";
import { connectError } from "./errors.js";

export class ConnectStream {
  private ended = false;
  private keepalive?: NodeJS.Timeout;
  /** Told once when the client goes away before the stream ended. */
  onClose?: () => void;

  constructor(req: IncomingMessage, private readonly res: ServerResponse, keepaliveMessage?: unknown) {
    res.writeHead(200, { "content-type": "application/connect+json" });
    res.flushHeaders();
    const asked = Number(req.headers["keepalive-ping-interval"]);
    const seconds = Number.isFinite(asked) && asked > 0 ? Math.min(Math.max(asked, 1), 300) : 50;
    if (keepaliveMessage !== undefined) this.keepalive = setInterval(() => this.send(keepaliveMessage), seconds * 1000);
    res.on("close", () => {
      clearInterval(this.keepalive);
      if (!this.ended) {
        this.ended = true;
        this.onClose?.();
      }
    });
  }

  get closed(): boolean {
    return this.ended;
  }

  /** Sends a message; false when the client is not reading (the caller may pause its source). */
  send(message: unknown): boolean {
    if (this.ended) return true;
    return this.res.write(encodeEnvelope(message));
  }

  onDrain(f: () => void): void {
    this.res.once("drain", f);
  }

  end(error?: unknown): void {
    if (this.ended) return;
    this.ended = true;
    clearInterval(this.keepalive);
    const e = error === undefined ? undefined : connectError(error);
    this.res.end(endStream(e && { code: e.code, message: e.message }));
  }
}
