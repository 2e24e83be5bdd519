// Frames: a 16-byte header (magic "mv", version, type, session, payload length, CRC-32 of the first 12
// bytes) and a payload. The decoder turns a byte stream into frames, refusing oversized ones and skipping
// garbage up to the next valid header, so one bad frame never poisons the rest of the stream.

import { crc32 } from "./crc32.js";
import { ErrorCode, HEADER_SIZE, MAGIC, MAX_PAYLOAD, PROTO_VERSION } from "./protocol.js";

export interface Frame {
  version: number;
  type: number;
  session: number;
  payload: Buffer;
}

export type Decoded =
  | { kind: "frame"; frame: Frame }
  | { kind: "error"; code: ErrorCode; session: number; message: string };

export function encodeHeader(type: number, session: number, length: number, version = PROTO_VERSION): Buffer {
  const h = Buffer.alloc(HEADER_SIZE);
  MAGIC.copy(h, 0);
  h[2] = version;
  h[3] = type;
  h.writeUInt32LE(session >>> 0, 4);
  h.writeUInt32LE(length >>> 0, 8);
  h.writeUInt32LE(crc32(h.subarray(0, 12)), 12);
  return h;
}

export function encodeFrame(type: number, session: number, payload: Uint8Array = Buffer.alloc(0)): Buffer {
  if (payload.length > MAX_PAYLOAD) throw new RangeError(`frame payload of ${payload.length} bytes is over ${MAX_PAYLOAD}`);
  return Buffer.concat([encodeHeader(type, session, payload.length), payload]);
}

function headerValid(buf: Buffer, at: number): boolean {
  return (
    buf[at] === MAGIC[0] &&
    buf[at + 1] === MAGIC[1] &&
    crc32(buf.subarray(at, at + 12)) === buf.readUInt32LE(at + 12)
  );
}

export class FrameDecoder {
  private buf: Buffer = Buffer.alloc(0);
  private discardLeft = 0;
  private resyncing = false;

  constructor(private readonly maxPayload = MAX_PAYLOAD) {}

  /** Bytes held while waiting for the rest of a frame. */
  get pending(): number {
    return this.buf.length;
  }

  push(chunk: Buffer): Decoded[] {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    const out: Decoded[] = [];
    let at = 0;
    for (;;) {
      if (this.discardLeft) {
        const n = Math.min(this.discardLeft, this.buf.length - at);
        at += n;
        this.discardLeft -= n;
        if (this.discardLeft) break;
      }
      if (this.buf.length - at < HEADER_SIZE) break;
      if (!headerValid(this.buf, at)) {
        if (!this.resyncing) {
          out.push({ kind: "error", code: ErrorCode.BAD_FRAME, session: 0, message: "bad frame header; skipping to the next valid frame" });
        }
        this.resyncing = true;
        const next = this.buf.indexOf(MAGIC[0]!, at + 1);
        at = next < 0 ? this.buf.length : next;
        continue;
      }
      this.resyncing = false;
      const session = this.buf.readUInt32LE(at + 4);
      const length = this.buf.readUInt32LE(at + 8);
      if (length > this.maxPayload) {
        out.push({
          kind: "error",
          code: ErrorCode.FRAME_TOO_LARGE,
          session,
          message: `frame of ${length} bytes is over the limit of ${this.maxPayload}`,
        });
        at += HEADER_SIZE;
        this.discardLeft = length;
        continue;
      }
      if (this.buf.length - at < HEADER_SIZE + length) break;
      out.push({
        kind: "frame",
        frame: {
          version: this.buf[at + 2]!,
          type: this.buf[at + 3]!,
          session,
          // A copy, so a consumer may keep it without pinning the whole receive buffer.
          payload: Buffer.from(this.buf.subarray(at + HEADER_SIZE, at + HEADER_SIZE + length)),
        },
      });
      at += HEADER_SIZE + length;
    }
    this.buf = at >= this.buf.length ? Buffer.alloc(0) : Buffer.from(this.buf.subarray(at));
    return out;
  }
}
