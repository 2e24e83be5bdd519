// The Connect protocol's streaming envelopes (https://connectrpc.com/docs/protocol): one flag byte, a
// 4-byte big-endian length, then the message (JSON here). Flag 0x02 marks the end-of-stream message, which
// carries the stream's error, if any; without it a Connect client fails the stream. Sizes are bounded: a
// client announcing more than the limit is refused before its bytes are read.

export const FLAG_END_STREAM = 0x02;
const FLAG_COMPRESSED = 0x01;
/** The largest request message the envd services take (a Start with its args and envs, a SendInput chunk). */
export const MAX_ENVELOPE_BYTES = 4 * 1024 * 1024;

export class EnvelopeError extends Error {
  constructor(
    message: string,
    /** The Connect code the client is answered with. */
    readonly code: "invalid_argument" | "resource_exhausted" | "unimplemented",
  ) {
    super(message);
  }
}

export function encodeEnvelope(message: unknown, flags = 0): Buffer {
  const json = Buffer.from(JSON.stringify(message));
  const head = Buffer.alloc(5);
  head[0] = flags;
  head.writeUInt32BE(json.length, 1);
  return Buffer.concat([head, json]);
}

/** The end of a stream: `{}`, or the error in Connect's shape. */
export const endStream = (error?: { code: string; message: string }): Buffer => encodeEnvelope(error ? { error } : {}, FLAG_END_STREAM);

/**
 * The one message of a server-streaming request's body: exactly one data envelope (a client's end-stream
 * flag is not expected), its JSON an object.
 */
export function decodeSingleEnvelope(body: Buffer, max = MAX_ENVELOPE_BYTES): Record<string, unknown> {
  if (body.length < 5) throw new EnvelopeError(`a Connect envelope has a 5-byte head; the body has ${body.length} bytes`, "invalid_argument");
  const flags = body[0]!;
  const length = body.readUInt32BE(1);
  if (length > max) throw new EnvelopeError(`the message of ${length} bytes is over the limit of ${max}`, "resource_exhausted");
  if (flags & FLAG_COMPRESSED) throw new EnvelopeError("compressed envelopes are not supported (send Connect-Content-Encoding identity)", "unimplemented");
  if (flags !== 0) throw new EnvelopeError(`unexpected envelope flags 0x${flags.toString(16)}`, "invalid_argument");
  if (body.length !== 5 + length) throw new EnvelopeError(`the envelope announces ${length} bytes and ${body.length - 5} follow`, "invalid_argument");
  return parseMessage(body.subarray(5));
}

/** A JSON message: an object, or invalid_argument. */
export function parseMessage(bytes: Buffer): Record<string, unknown> {
  let value: unknown;
  try {
    value = bytes.length ? JSON.parse(bytes.toString("utf8")) : {};
  } catch (e) {
    throw new EnvelopeError(`the message is not JSON: ${(e as Error).message}`, "invalid_argument");
  }
  if (!value || typeof value !== "object" || Array.isArray(value)) throw new EnvelopeError("the message must be a JSON object", "invalid_argument");
  return value as Record<string, unknown>;
}
