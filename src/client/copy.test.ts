import assert from "node:assert/strict";
import { lstat, mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import type { FileEntry } from "../api/resource-schemas.js";
import { copyOut, parseCopyArg } from "./copy.js";
import type { GuestFiles } from "./files.js";

const entry = (name: string, type: FileEntry["type"], target?: string): FileEntry => ({ name, type, mode: 0o755, uid: 0, gid: 0, size: 1, mtimeMs: 0, ...(target ? { target } : {}) });

/** A guest that answers with whatever listing it likes: a hostile or broken agent. */
function fakeGuest(listing: FileEntry[]): GuestFiles {
  return {
    stat: (path: string) => Promise.resolve(entry(path, "dir")),
    list: () => Promise.resolve(listing),
    readTo: async (_path: string, onData: (c: Buffer) => Promise<void> | void) => {
      await onData(Buffer.from("payload"));
      return { size: 7, crc32: "0", mode: 0o644 };
    },
  } as unknown as GuestFiles;
}

async function tempDirs(t: { after: (fn: () => Promise<void>) => void }) {
  const base = await mkdtemp(join(tmpdir(), "mvm-copy-"));
  t.after(() => rm(base, { recursive: true, force: true }));
  return { dest: join(base, "dest"), outside: base };
}

test("copying out never writes through a symlink the guest listed, or outside the destination", async (t) => {
  const { dest, outside } = await tempDirs(t);
  // A symlink to the parent, then a file "through" it: would land in `outside` if followed.
  const guest = fakeGuest([entry("up", "symlink", ".."), entry("up/escaped", "file")]);
  await assert.rejects(copyOut(guest, "/src", dest), (e: Error & { code?: string }) => e.code === "COPY_FAILED" && /not a directory made by this copy/.test(e.message));
  assert.deepEqual((await readdir(outside)).sort(), ["dest"]);
  assert.ok((await lstat(join(dest, "up"))).isSymbolicLink());
});

test("copying out refuses names that are not plain relative paths", async (t) => {
  for (const bad of ["../x", "/etc/passwd", "a/../../x", "a//b", "."]) {
    const { dest, outside } = await tempDirs(t);
    await assert.rejects(copyOut(fakeGuest([entry(bad, "file")]), "/src", dest), /not a plain relative path/, bad);
    assert.deepEqual(await readdir(outside), ["dest"], bad);
  }
});

test("copying out: directories before their files, files written whole", async (t) => {
  const { dest } = await tempDirs(t);
  const stats = await copyOut(fakeGuest([entry("d", "dir"), entry("d/f", "file"), entry("l", "symlink", "d/f")]), "/src", dest);
  assert.deepEqual([stats.files, stats.dirs, stats.symlinks, stats.bytes], [1, 2, 1, 7]);
  assert.equal(await readFile(join(dest, "d", "f"), "utf8"), "payload");
  assert.equal(await readFile(join(dest, "l"), "utf8"), "payload"); // a link inside, followed by us reading it only
});

test("VM:PATH and host paths are told apart as docker cp does", () => {
  assert.deepEqual(parseCopyArg("web:/etc/hosts"), { vm: "web", path: "/etc/hosts" });
  assert.deepEqual(parseCopyArg("web:"), { vm: "web", path: "/" });
  assert.deepEqual(parseCopyArg("./web:x"), { path: "./web:x" });
  assert.deepEqual(parseCopyArg("/abs/web:x"), { path: "/abs/web:x" });
  assert.deepEqual(parseCopyArg("plain.txt"), { path: "plain.txt" });
});
