// Frames: a 16-byte header (magic "mv", version, type, session, payload length, CRC-32 of the first 12
// bytes) and a payload. The decoder turns a byte stream into frames, refusing oversized ones and skipping
// garbage up to the next valid header, so one bad frame never poisons the rest of the stream.

import { crc32 } from "../api/crc32.js";
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

/**
 * Turns a byte stream into frames. Received chunks are kept as they came and joined only when a frame
 * spans several of them, so bulk data (file transfers) is copied at most once on its way through.
 */
export class FrameDecoder {
  private chunks: Buffer[] = [];
  private total = 0;
  private discardLeft = 0;
  private resyncing = false;

  constructor(private readonly maxPayload = MAX_PAYLOAD) {}

  /** Bytes held while waiting for the rest of a frame. */
  get pending(): number {
    return this.total;
  }

  push(chunk: Buffer): Decoded[] {
    if (chunk.length) {
      this.chunks.push(chunk);
      this.total += chunk.length;
    }
    const out: Decoded[] = [];
    for (;;) {
      if (this.discardLeft) {
        const n = Math.min(this.discardLeft, this.total);
        this.take(n);
        this.discardLeft -= n;
        if (this.discardLeft) break;
      }
      if (this.total < HEADER_SIZE) break;
      const head = this.front(HEADER_SIZE);
      if (!headerValid(head, 0)) {
        if (!this.resyncing) {
          out.push({ kind: "error", code: ErrorCode.BAD_FRAME, session: 0, message: "bad frame header; skipping to the next valid frame" });
        }
        this.resyncing = true;
        const all = this.front(this.total);
        const next = all.indexOf(MAGIC[0]!, 1);
        this.take(next < 0 ? this.total : next);
        continue;
      }
      this.resyncing = false;
      const session = head.readUInt32LE(4);
      const length = head.readUInt32LE(8);
      if (length > this.maxPayload) {
        out.push({
          kind: "error",
          code: ErrorCode.FRAME_TOO_LARGE,
          session,
          message: `frame of ${length} bytes is over the limit of ${this.maxPayload}`,
        });
        this.take(HEADER_SIZE);
        this.discardLeft = length;
        continue;
      }
      if (this.total < HEADER_SIZE + length) break;
      const frame = this.take(HEADER_SIZE + length);
      // A view, not a copy: it pins at most the chunk (or the joined chunks) it came in.
      out.push({ kind: "frame", frame: { version: frame[2]!, type: frame[3]!, session, payload: frame.subarray(HEADER_SIZE) } });
    }
    return out;
  }

  /** The first n held bytes as one buffer, joining chunks only when the first is too short. */
  private front(n: number): Buffer {
    if (this.chunks[0]!.length < n) {
      let k = 0;
      let len = 0;
      while (len < n) len += this.chunks[k++]!.length;
      this.chunks.splice(0, k, Buffer.concat(this.chunks.slice(0, k), len));
    }
    return this.chunks[0]!;
  }

  /** Removes and returns the first n held bytes. */
  private take(n: number): Buffer {
    if (n === 0) return Buffer.alloc(0);
    const first = this.front(n);
    const out = first.subarray(0, n);
    if (first.length === n) this.chunks.shift();
    else this.chunks[0] = first.subarray(n);
    this.total -= n;
    return out;
  }
}
