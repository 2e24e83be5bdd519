import { test } from "node:test";
import assert from "node:assert/strict";
import { entryInfo, resolvePath } from "./filesystem-service.js";
import { E2bError } from "./errors.js";

test("paths: relative and ~ resolve against the user's home; .. cannot climb above /; bad ones are invalid_argument", () => {
  assert.equal(resolvePath("a/b.txt", "root"), "/root/a/b.txt");
  assert.equal(resolvePath("~/x", "ann"), "/home/ann/x");
  assert.equal(resolvePath("~", "ann"), "/home/ann");
  assert.equal(resolvePath("/tmp/../etc/./hosts", "root"), "/etc/hosts");
  assert.equal(resolvePath("../../../../x", "root"), "/x");
  for (const bad of ["", 7, "a\0b", "x".repeat(5000)]) assert.throws(() => resolvePath(bad, "root"), (e: unknown) => e instanceof E2bError && e.code === "invalid_argument");
});

test("EntryInfo: envd's type names, Go FileMode bits, ls permissions, RFC 3339 time", () => {
  const dir = entryInfo({ name: "d", type: "dir", mode: 0o755, uid: 0, gid: 0, size: 4096, mtimeMs: 0 }, "/tmp/d");
  assert.deepEqual(dir, { name: "d", type: "FILE_TYPE_DIRECTORY", path: "/tmp/d", size: 4096, mode: 2 ** 31 + 0o755, permissions: "drwxr-xr-x", owner: "root", group: "root", modifiedTime: "1970-01-01T00:00:00.000Z" });
  const link = entryInfo({ name: "sub/l", type: "symlink", mode: 0o777, uid: 1000, gid: 1000, size: 3, mtimeMs: 1000, target: "/etc" }, "/tmp/sub/l");
  assert.deepEqual([link.name, link.type, link.mode, link.permissions, link.owner, link.symlinkTarget], ["l", "FILE_TYPE_SYMLINK", 2 ** 27 + 0o777, "Lrwxrwxrwx", "1000", "/etc"]);
  const file = entryInfo({ name: "f", type: "file", mode: 0o4640, uid: 0, gid: 0, size: 1, mtimeMs: 0 }, "/f");
  assert.deepEqual([file.type, file.mode, file.permissions], ["FILE_TYPE_FILE", 0o640, "-rw-r-----"]);
});
