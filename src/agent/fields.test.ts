import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { FieldWriter, Fields, MalformedFieldsError } from "./fields.js";
import { decodeExit, decodeHello, encodeExec } from "./messages.js";
import { Field } from "./protocol.js";

test("fields round-trip, repeated tags in order", () => {
  const f = new Fields(new FieldWriter().str(1, "a").str(1, "b").u32(7, 0xfffffffe).u8(5, 1).build());
  assert.deepEqual(f.strs(1), ["a", "b"]);
  assert.equal(f.u32(7), 0xfffffffe);
  assert.equal(f.all(5)[0]![0], 1);
  assert.equal(f.str(99), undefined);
});

test("a field running past the payload is malformed", () => {
  const good = new FieldWriter().str(1, "hello").build();
  assert.throws(() => new Fields(good.subarray(0, good.length - 1)), MalformedFieldsError);
  assert.throws(() => new Fields(good.subarray(0, 3)), MalformedFieldsError);
});

test("exec requests carry argv, env, cwd, user and stdin", () => {
  const f = new Fields(encodeExec({ argv: ["sh", "-c", "echo ü"], env: { A: "1", B: "x=y" }, cwd: "/tmp", user: "nobody", stdin: true }));
  assert.deepEqual(f.strs(Field.ARG), ["sh", "-c", "echo ü"]);
  assert.deepEqual(f.strs(Field.ENV), ["A=1", "B=x=y"]);
  assert.equal(f.str(Field.CWD), "/tmp");
  assert.equal(f.str(Field.USER), "nobody");
  assert.equal(f.all(Field.STDIN)[0]![0], 1);
});

test("exit messages: a code, or a signal, never both", () => {
  assert.deepEqual(decodeExit(new FieldWriter().u32(Field.EXIT_CODE, 3).build()), { exitCode: 3, signal: null, message: undefined });
  assert.deepEqual(decodeExit(new FieldWriter().u32(Field.TERM_SIGNAL, 9).build()), { exitCode: null, signal: 9, message: undefined });
});

test("a hello without fields decodes to defaults, unknown fields are ignored", () => {
  const h = decodeHello(new FieldWriter().u32(Field.PROTO, 1).str(999, "future").build());
  assert.equal(h.protocol, 1);
  assert.deepEqual(h.capabilities, []);
});

test("property: any field list round-trips", () => {
  fc.assert(
    fc.property(fc.array(fc.tuple(fc.integer({ min: 0, max: 65535 }), fc.uint8Array({ maxLength: 300 }))), (list) => {
      const w = new FieldWriter();
      for (const [tag, v] of list) w.bytes(tag, v);
      const f = new Fields(w.build());
      for (const tag of new Set(list.map(([t]) => t))) {
        assert.deepEqual(
          f.all(tag).map((b) => b.toString("hex")),
          list.filter(([t]) => t === tag).map(([, v]) => Buffer.from(v).toString("hex")),
        );
      }
    }),
  );
});
