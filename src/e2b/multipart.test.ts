import { test } from "node:test";
import assert from "node:assert/strict";
import { boundaryOf, parseMultipart } from "./multipart.js";
import { EnvelopeError } from "./envelope.js";

test("multipart: what undici's FormData sends, full paths kept in file names, binary data intact", async () => {
  const form = new FormData();
  form.append("file", new Blob(["one"]), "/home/user/a/one.txt");
  form.append("file", new Blob([new Uint8Array([0, 13, 10, 45, 45, 255])]), "b/two.bin");
  const r = new Response(form);
  const type = r.headers.get("content-type")!;
  const parts = parseMultipart(Buffer.from(await r.arrayBuffer()), boundaryOf(type)!);
  assert.deepEqual(parts.map((p) => [p.name, p.filename]), [["file", "/home/user/a/one.txt"], ["file", "b/two.bin"]]);
  assert.equal(parts[0]!.data.toString(), "one");
  assert.deepEqual([...parts[1]!.data], [0, 13, 10, 45, 45, 255]);
});

test("multipart: no boundary, a body cut short, or no closing boundary is invalid_argument", () => {
  assert.equal(boundaryOf("application/octet-stream"), undefined);
  assert.throws(() => boundaryOf("multipart/form-data"), EnvelopeError);
  const b = "XyZ";
  const bad = [
    "no boundary at all",
    `--${b}\r\nContent-Disposition: form-data; name="file"; filename="x"\r\n\r\nunterminated`,
    `--${b}\r\nContent-Disposition: form-data; name="file"`,
    `--${b}garbage`,
  ];
  for (const body of bad) assert.throws(() => parseMultipart(Buffer.from(body), b), (e: unknown) => e instanceof EnvelopeError && e.code === "invalid_argument", body);
  assert.deepEqual(parseMultipart(Buffer.from(`--${b}--\r\n`), b), []);
});
