import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { FrameDecoder, encodeFrame, encodeHeader, type Decoded } from "./frame.js";
import { ErrorCode, HEADER_SIZE, MAX_PAYLOAD } from "./protocol.js";

const frames = (ds: Decoded[]) => ds.flatMap((d) => (d.kind === "frame" ? [d.frame] : []));
const errors = (ds: Decoded[]) => ds.flatMap((d) => (d.kind === "error" ? [d] : []));

test("a frame round-trips", () => {
  const out = new FrameDecoder().push(encodeFrame(0x83, 7, Buffer.from("hello")));
  assert.deepEqual(frames(out), [{ version: 1, type: 0x83, session: 7, payload: Buffer.from("hello") }]);
});

test("frames split at every byte boundary decode the same", () => {
  const bytes = Buffer.concat([encodeFrame(1, 0), encodeFrame(0x83, 2, Buffer.from("abc")), encodeFrame(0x85, 3, Buffer.alloc(300, 9))]);
  for (let cut = 0; cut <= bytes.length; cut++) {
    const d = new FrameDecoder();
    const got = frames([...d.push(bytes.subarray(0, cut)), ...d.push(bytes.subarray(cut))]);
    assert.equal(got.length, 3, `cut at ${cut}`);
    assert.equal(got[2]!.payload.length, 300);
    assert.equal(d.pending, 0);
  }
});

test("garbage before a frame is reported once and skipped", () => {
  const d = new FrameDecoder();
  const out = d.push(Buffer.concat([Buffer.from("mvgarbage, not a header at all"), encodeFrame(0x83, 1, Buffer.from("x"))]));
  assert.equal(errors(out).length, 1);
  assert.equal(errors(out)[0]!.code, ErrorCode.BAD_FRAME);
  assert.deepEqual(frames(out).map((f) => f.payload.toString()), ["x"]);
});

test("a header with a wrong checksum is refused", () => {
  const bad = encodeFrame(0x83, 1, Buffer.from("payload"));
  bad[5] = bad[5]! ^ 0xff; // the session id changes, the CRC no longer matches
  const out = new FrameDecoder().push(Buffer.concat([bad, encodeFrame(0x84, 2, Buffer.from("ok"))]));
  assert.equal(errors(out)[0]!.code, ErrorCode.BAD_FRAME);
  assert.deepEqual(frames(out).map((f) => [f.session, f.payload.toString()]), [[2, "ok"]]);
});

test("an oversized frame is refused, its payload skipped, and the next frame decoded", () => {
  const huge = MAX_PAYLOAD + 10;
  const d = new FrameDecoder();
  const out = [
    ...d.push(encodeHeader(0x03, 9, huge)),
    ...d.push(Buffer.alloc(huge - 100, 0x6d)), // full of magic bytes, which must not be mistaken for headers
    ...d.push(Buffer.concat([Buffer.alloc(100, 0x6d), encodeFrame(0x83, 4, Buffer.from("next"))])),
  ];
  assert.equal(errors(out).length, 1);
  assert.equal(errors(out)[0]!.code, ErrorCode.FRAME_TOO_LARGE);
  assert.equal(errors(out)[0]!.session, 9);
  assert.deepEqual(frames(out).map((f) => f.payload.toString()), ["next"]);
});

test("a truncated frame costs at most the frames it swallows; the stream recovers", () => {
  const truncated = encodeFrame(0x83, 1, Buffer.alloc(40, 1)).subarray(0, HEADER_SIZE + 10);
  const after = Array.from({ length: 10 }, (_, i) => encodeFrame(0x83, 100 + i, Buffer.from(`frame ${i}`)));
  const out = new FrameDecoder().push(Buffer.concat([truncated, ...after]));
  const got = frames(out);
  // The truncated frame's header asked for 40 bytes: it took them from what followed, garbling one frame.
  assert.ok(got.length >= 8, `recovered ${got.length} frames`);
  assert.deepEqual(got.at(-1)!.payload.toString(), "frame 9");
});

test("encodeFrame refuses payloads over the cap", () => {
  assert.throws(() => encodeFrame(0x03, 1, Buffer.alloc(MAX_PAYLOAD + 1)), RangeError);
});

test("property: any split of any frame sequence decodes to the same frames", () => {
  const frameArb = fc.record({
    type: fc.integer({ min: 0, max: 255 }),
    session: fc.nat(),
    payload: fc.uint8Array({ maxLength: 2000 }),
  });
  fc.assert(
    fc.property(fc.array(frameArb, { maxLength: 8 }), fc.array(fc.nat(), { maxLength: 10 }), (list, cuts) => {
      const bytes = Buffer.concat(list.map((f) => encodeFrame(f.type, f.session, f.payload)));
      const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
      const d = new FrameDecoder();
      const out: Decoded[] = [];
      let prev = 0;
      for (const p of [...points, bytes.length]) {
        out.push(...d.push(bytes.subarray(prev, p)));
        prev = p;
      }
      assert.equal(errors(out).length, 0);
      assert.deepEqual(
        frames(out).map((f) => [f.type, f.session, Buffer.from(f.payload).toString("hex")]),
        list.map((f) => [f.type, f.session, Buffer.from(f.payload).toString("hex")]),
      );
    }),
  );
});

test("property: random garbage never throws, and a valid frame after it still arrives", () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 4000 }), (garbage) => {
      const d = new FrameDecoder();
      d.push(Buffer.from(garbage));
      // Whatever the garbage left half-parsed, a run of valid frames gets through once it is flushed.
      const tail = Array.from({ length: 3 }, () => encodeFrame(0x83, 5, Buffer.from("after")));
      const out = d.push(Buffer.concat([Buffer.alloc(HEADER_SIZE), ...tail]));
      assert.ok(frames(out).some((f) => f.session === 5 && f.payload.toString() === "after"));
    }),
  );
});
