import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { parseDisk, parseVolume } from "./storage.js";
import { InvalidStorageError } from "../errors.js";

const dir = mkdtempSync(join(tmpdir(), "mvm-storage-"));
const raw = join(dir, "a:b.img");
writeFileSync(raw, Buffer.alloc(1024));
const qcow = join(dir, "q.qcow2");
writeFileSync(qcow, Buffer.concat([Buffer.from("QFI\xfb", "latin1"), Buffer.alloc(100)]));

test("disks: the format comes from the content; only an exact :ro/:rw suffix is parsed", () => {
  assert.deepEqual(parseDisk(raw), { path: raw, readOnly: false, format: "raw" });
  assert.deepEqual(parseDisk(`${raw}:ro`), { path: raw, readOnly: true, format: "raw" });
  assert.deepEqual(parseDisk(`${qcow}:rw`), { path: qcow, readOnly: false, format: "qcow2" });
  for (const bad of ["relative.img", join(dir, "missing.img"), dir]) assert.throws(() => parseDisk(bad), InvalidStorageError, bad);
});

test("shared folders: absolute paths, existing folders, no sharing over system paths", () => {
  assert.deepEqual(parseVolume(`${dir}:/data`), { hostPath: dir, guestPath: "/data", readOnly: false });
  assert.deepEqual(parseVolume(`${dir}:/data:ro`), { hostPath: dir, guestPath: "/data", readOnly: true });
  for (const bad of [`${dir}`, `${dir}:data`, `${dir}:/`, `${dir}:/proc/x`, `${dir}:/data:rx`, `${raw}:/data`, "/missing:/data", `${dir}:/a:ro:x`]) {
    assert.throws(() => parseVolume(bad), InvalidStorageError, bad);
  }
});

test("a shared folder's guest path over 511 bytes is refused before any boot", () => {
  assert.throws(() => parseVolume(`/tmp:/${"a".repeat(511)}`), (e: unknown) => e instanceof InvalidStorageError && /511/.test(e.message));
  assert.equal(parseVolume(`/tmp:/${"a".repeat(510)}`).guestPath.length, 511);
});
