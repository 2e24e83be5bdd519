import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { sniff } from "./image-builder.js";
import { InvalidImageError } from "../errors.js";
import { tempDir } from "../../test/support/temp-dirs.js";

const dir = tempDir("mvm-sniff-");
const file = (name: string, bytes: Buffer) => {
  const p = join(dir, name);
  writeFileSync(p, bytes);
  return p;
};

test("image kinds are told from their first bytes", () => {
  assert.equal(sniff(file("q", Buffer.concat([Buffer.from("QFI\xfb", "latin1"), Buffer.alloc(2000)]))), "qcow2");
  const ext4 = Buffer.alloc(2048);
  ext4.writeUInt16LE(0xef53, 1080);
  assert.equal(sniff(file("e", ext4)), "ext4");
  assert.equal(sniff(file("g", Buffer.from([0x1f, 0x8b, 8, 0, ...Array<number>(100).fill(0)]))), "tar");
  const tar = Buffer.alloc(1024);
  tar.write("ustar", 257, "latin1");
  assert.equal(sniff(file("t", tar)), "tar");
});

test("anything else, or nothing, is refused with a hint", () => {
  for (const [name, bytes] of [["zeros", Buffer.alloc(4096)], ["empty", Buffer.alloc(0)], ["text", Buffer.from("hello")]] as const) {
    assert.throws(() => sniff(file(name, bytes)), (e: unknown) => e instanceof InvalidImageError && Boolean(e.hint), name);
  }
  assert.throws(() => sniff(join(dir, "missing")), InvalidImageError);
});
