import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { isVolumeName, parseDisk, parseVolume, splitDisk, splitVolume, type NamedVolume } from "./storage.js";
import { InvalidStorageError, NotFoundError } from "../errors.js";
import { tempDir } from "../../test/support/temp-dirs.js";

const dir = tempDir("mvm-storage-");
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

test("named volumes: NAME:GUESTDIR resolved by the registry; read-only ones mount read-only, never :rw", () => {
  const registry: Record<string, NamedVolume> = { data: { name: "data", path: dir, readOnly: false }, docs: { name: "docs", path: dir, readOnly: true } };
  const named = (n: string): NamedVolume => {
    const v = registry[n];
    if (!v) throw new NotFoundError(`no volume named ${n}`);
    return v;
  };
  assert.deepEqual(parseVolume("data:/data", named), { hostPath: dir, guestPath: "/data", readOnly: false, volume: "data" });
  assert.deepEqual(parseVolume("data:/data:ro", named), { hostPath: dir, guestPath: "/data", readOnly: true, volume: "data" });
  assert.deepEqual(parseVolume("docs:/docs", named), { hostPath: dir, guestPath: "/docs", readOnly: true, volume: "docs" });
  assert.deepEqual(parseVolume("docs:/docs:ro", named), { hostPath: dir, guestPath: "/docs", readOnly: true, volume: "docs" });
  assert.throws(() => parseVolume("docs:/docs:rw", named), (e: unknown) => e instanceof InvalidStorageError && /read-only/.test(e.message) && e.details.volume === "docs");
  assert.throws(() => parseVolume("nope:/x", named), NotFoundError);
  // The guest side is checked as for any folder; without a registry a name is not taken for a path.
  for (const bad of ["data:x", "data:/", "data:/proc"]) assert.throws(() => parseVolume(bad, named), InvalidStorageError, bad);
  assert.throws(() => parseVolume("data:/data"), InvalidStorageError);
  // Not a name: upper case, a leading '-', relative paths.
  for (const bad of ["Data:/x", "-data:/x", "./data:/x"]) assert.throws(() => parseVolume(bad, named), (e: unknown) => e instanceof InvalidStorageError && /absolute/.test(e.message), bad);
  assert.equal(isVolumeName("data"), true);
  assert.equal(isVolumeName("/data"), false);
});

test("the mode is parsed only as an exact last suffix: a path that itself ends in :ro keeps its meaning", () => {
  const odd = join(dir, "odd:ro");
  writeFileSync(odd, Buffer.alloc(512));
  assert.deepEqual(parseDisk(`${odd}:rw`), { path: odd, readOnly: false, format: "raw" });
  assert.deepEqual(splitDisk(`${odd}:rw`), { path: odd, mode: "rw" });
  assert.deepEqual(splitVolume("a:/b"), { host: "a", guest: "/b", mode: undefined });
});
