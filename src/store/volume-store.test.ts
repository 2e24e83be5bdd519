import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import Database from "better-sqlite3";
import { NameTakenError, NotFoundError } from "../errors.js";
import { checkSpec } from "../vmspec/vm-spec.js";
import { ImageStore } from "./image-store.js";
import { NetworkStore } from "./network-store.js";
import { VmStore } from "./vm-store.js";
import { VolumeStore } from "./volume-store.js";

const withDb = (fn: (path: string) => void) => {
  const dir = mkdtempSync(join(tmpdir(), "mvm-volumes-"));
  try {
    fn(join(dir, "mvm.db"));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
};

test("add, list in name order, get, remove; a taken name is NAME_TAKEN and keeps the first", () =>
  withDb((path) => {
    const s = new VolumeStore(path);
    const b = s.add({ name: "b", path: "/srv/b", readOnly: true });
    s.add({ name: "a", path: "/srv/a", readOnly: false });
    assert.deepEqual([b.name, b.path, b.readOnly, typeof b.createdAt], ["b", "/srv/b", true, "string"]);
    assert.deepEqual(s.list().map((v) => [v.name, v.readOnly]), [["a", false], ["b", true]]);
    assert.throws(() => s.add({ name: "b", path: "/elsewhere", readOnly: false }), NameTakenError);
    assert.equal(s.get("b").path, "/srv/b");
    s.remove("a");
    assert.equal(s.find("a"), undefined);
    assert.throws(() => s.get("a"), (e: unknown) => e instanceof NotFoundError && /mvm volume/.test(e.hint ?? ""));
    s.close();
    // Kept across opens (a daemon restart).
    const again = new VolumeStore(path);
    assert.deepEqual(again.list().map((v) => v.name), ["b"]);
    again.close();
  }));

test("a home made before volumes existed: the table is added, what was there is untouched", () =>
  withDb((path) => {
    const vms = new VmStore(path);
    const images = new ImageStore(path);
    const nets = new NetworkStore(path);
    const vm = vms.create(checkSpec({ name: "old" }));
    images.add({ name: "img", path: "/x.qcow2", virtualBytes: 1, source: "t" });
    const tablesBefore = (new Database(path).prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").all() as Array<{ name: string }>).map((t) => t.name);
    assert.ok(!tablesBefore.includes("volumes"));
    const s = new VolumeStore(path);
    assert.deepEqual(s.list(), []);
    s.add({ name: "data", path: "/srv/data", readOnly: false });
    assert.deepEqual(vms.get("old"), vm);
    assert.equal(images.get("img").path, "/x.qcow2");
    assert.deepEqual(nets.list(), []);
    for (const x of [s, vms, images, nets]) x.close();
  }));
