import assert from "node:assert/strict";
import { test } from "node:test";
import { parseMemoryMiB } from "./size.js";
import { InvalidSizeError } from "../errors.js";

test("sizes in MiB, with or without units", () => {
  assert.equal(parseMemoryMiB("256"), 256);
  assert.equal(parseMemoryMiB(512), 512);
  assert.equal(parseMemoryMiB("256M"), 256);
  assert.equal(parseMemoryMiB("1G"), 1024);
  assert.equal(parseMemoryMiB("2GiB"), 2048);
});

test("bad, negative, fractional, tiny and huge sizes are refused with a hint", () => {
  for (const bad of ["", "-256", "1.5G", "12T", "abc", "64k", "1", "99999999999999999999", "4096G"]) {
    assert.throws(() => parseMemoryMiB(bad), (e: unknown) => e instanceof InvalidSizeError && Boolean(e.hint), bad);
  }
});
