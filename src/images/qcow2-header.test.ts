import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { backingChain, backingFile } from "./qcow2-header.js";

test("the backing chain of qcow2 images, read from their headers: absolute and relative names, raw ends, garbage", () => {
  const dir = mkdtempSync(join(tmpdir(), "mvm-qcow2-"));
  try {
    const q = (...a: string[]) => execFileSync("qemu-img", ["create", "-q", ...a], { cwd: dir });
    q("-f", "raw", join(dir, "base.raw"), "1M");
    q("-f", "qcow2", "-F", "raw", "-b", join(dir, "base.raw"), join(dir, "mid.qcow2"));
    q("-f", "qcow2", "-F", "qcow2", "-b", "mid.qcow2", join(dir, "top,odd.qcow2"));
    assert.deepEqual(backingChain(join(dir, "top,odd.qcow2")), [join(dir, "mid.qcow2"), join(dir, "base.raw")]);
    assert.equal(backingFile(join(dir, "base.raw")), undefined, "a raw file has no backing");
    writeFileSync(join(dir, "junk"), Buffer.from("QFI\xfb\0\0\0\x03\xff\xff\xff\xff\xff\xff\xff\xff\0\0\x10\0", "latin1"));
    assert.equal(backingFile(join(dir, "junk")), undefined, "a header pointing past the file");
    assert.equal(backingFile(join(dir, "missing")), undefined);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
