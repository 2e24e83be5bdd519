import { test } from "node:test";
import assert from "node:assert/strict";
import { decodeSingleEnvelope, encodeEnvelope, endStream, EnvelopeError, FLAG_END_STREAM } from "./envelope.js";

test("envelopes: a message round-trips; end-stream carries the flag and the error", () => {
  const e = encodeEnvelope({ process: { cmd: "/bin/bash" } });
  assert.equal(e[0], 0);
  assert.equal(e.readUInt32BE(1), e.length - 5);
  assert.deepEqual(decodeSingleEnvelope(e), { process: { cmd: "/bin/bash" } });
  const end = endStream({ code: "not_found", message: "no" });
  assert.equal(end[0], FLAG_END_STREAM);
  assert.deepEqual(JSON.parse(end.subarray(5).toString()), { error: { code: "not_found", message: "no" } });
  assert.deepEqual(JSON.parse(endStream().subarray(5).toString()), {});
});

test("envelopes: malformed and oversize ones are refused with the Connect code, never thrown as anything else", () => {
  const code = (b: Buffer, max?: number) => {
    try {
      decodeSingleEnvelope(b, max);
    } catch (e) {
      assert.ok(e instanceof EnvelopeError);
      return e.code;
    }
    return "ok";
  };
  const good = encodeEnvelope({ a: 1 });
  assert.equal(code(Buffer.alloc(3)), "invalid_argument", "shorter than a head");
  assert.equal(code(good.subarray(0, good.length - 1)), "invalid_argument", "cut short");
  assert.equal(code(Buffer.concat([good, Buffer.from("x")])), "invalid_argument", "trailing bytes");
  assert.equal(code(Buffer.concat([Buffer.from([0, 0xff, 0xff, 0xff, 0xff])])), "resource_exhausted", "4 GiB announced");
  assert.equal(code(good, 3), "resource_exhausted");
  assert.equal(code(Buffer.concat([Buffer.from([1]), good.subarray(1)])), "unimplemented", "compressed");
  assert.equal(code(Buffer.concat([Buffer.from([0, 0, 0, 0, 3]), Buffer.from("{x}")])), "invalid_argument", "not JSON");
  assert.equal(code(Buffer.concat([Buffer.from([0, 0, 0, 0, 2]), Buffer.from("[]")])), "invalid_argument", "not an object");
});
