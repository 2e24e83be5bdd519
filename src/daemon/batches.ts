// Request bodies arrive in socket-sized pieces (often 64 KiB); the agent handles fewer, bigger frames
// much faster under TCG, so bodies bound for the guest are regrouped into batches of about BATCH bytes
// (1 MiB: four full frames, written back to back).

import { MAX_PAYLOAD } from "../agent/protocol.js";

const BATCH = 4 * MAX_PAYLOAD;

export async function* batches(body: AsyncIterable<Buffer | string>): AsyncGenerator<Buffer> {
  let parts: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    const b = typeof chunk === "string" ? Buffer.from(chunk) : chunk;
    parts.push(b);
    size += b.length;
    if (size >= BATCH) {
      yield parts.length === 1 ? parts[0]! : Buffer.concat(parts, size);
      parts = [];
      size = 0;
    }
  }
  if (size) yield parts.length === 1 ? parts[0]! : Buffer.concat(parts, size);
}
