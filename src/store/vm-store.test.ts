import assert from "node:assert/strict";
import { fork } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { checkSpec } from "../vmspec/vm-spec.js";
import { VmStore } from "./vm-store.js";
import { NameTakenError, NotFoundError, WrongStateError } from "../errors.js";

async function withStore(fn: (store: VmStore, path: string) => Promise<void> | void) {
  const dir = await mkdtemp(join(tmpdir(), "mvm-store-"));
  const path = join(dir, "mvm.db");
  const store = new VmStore(path);
  try {
    await fn(store, path);
  } finally {
    store.close();
    await rm(dir, { recursive: true, force: true });
  }
}

test("create, find by name, id and id prefix, list", () =>
  withStore((s) => {
    const a = s.create(checkSpec({ name: "alpha" }));
    s.create(checkSpec({ name: "beta" }));
    assert.equal(a.state, "created");
    assert.equal(s.get("alpha").id, a.id);
    assert.equal(s.get(a.id).name, "alpha");
    assert.equal(s.get(a.id.slice(0, 6)).name, "alpha");
    assert.deepEqual(s.list().map((r) => r.name), ["alpha", "beta"]);
    assert.throws(() => s.get("gamma"), NotFoundError);
  }));

test("a duplicate name is refused and the first record is untouched", () =>
  withStore((s) => {
    const a = s.create(checkSpec({ name: "dup", cpus: 2 }));
    assert.throws(() => s.create(checkSpec({ name: "dup", cpus: 4 })), NameTakenError);
    assert.deepEqual(s.get("dup"), a);
  }));

test("transitions are compare-and-set", () =>
  withStore((s) => {
    const a = s.create(checkSpec({ name: "vm" }));
    const started = s.transition(a.id, ["created"], "starting", { pid: 42 });
    assert.deepEqual([started.state, started.pid], ["starting", 42]);
    assert.throws(() => s.transition(a.id, ["created"], "starting"), (e: unknown) => e instanceof WrongStateError && e.details.state === "starting");
    assert.throws(() => s.remove(a.id, ["created", "stopped"]), WrongStateError);
    s.transition(a.id, ["starting"], "stopped");
    s.remove(a.id, ["stopped"]);
    assert.equal(s.find("vm"), undefined);
  }));

test("six processes creating one name at once: exactly one wins", () =>
  withStore(async (_s, path) => {
    const script = `
      const { VmStore } = await import(${JSON.stringify(new URL("./vm-store.js", import.meta.url).href)});
      const { checkSpec } = await import(${JSON.stringify(new URL("../vmspec/vm-spec.js", import.meta.url).href)});
      if (!process.argv[2]) throw new Error("no database path");
      const store = new VmStore(process.argv[2]);
      try { store.create(checkSpec({ name: "contested" })); process.send("won"); }
      catch (e) { process.send(e.code); }
      store.close();`;
    const scriptPath = join(path, "..", "contender.mjs");
    await writeFile(scriptPath, script);
    const results = await Promise.all(
      Array.from({ length: 6 }, () => new Promise<string>((resolve, reject) => {
        const child = fork(scriptPath, [path], { stdio: ["ignore", "ignore", "inherit", "ipc"] });
        child.on("message", (m) => resolve(m as string));
        child.on("error", reject);
        child.on("exit", (code) => code !== 0 && reject(new Error(`child exited ${code}`)));
      }).catch((e: Error) => e.message)),
    );
    assert.deepEqual(results.sort(), ["NAME_TAKEN", "NAME_TAKEN", "NAME_TAKEN", "NAME_TAKEN", "NAME_TAKEN", "won"]);
  }));

test("the cache of parsed records: this store's and another connection's writes are seen at once; records are frozen", () =>
  withStore((s, path) => {
    const a = s.create(checkSpec({ name: "alpha" }));
    assert.deepEqual(s.list().map((r) => r.name), ["alpha"]); // read: now cached
    const other = new VmStore(path);
    try {
      // Another connection (another daemon's CLI helper, a test) commits: SQLite's data_version tells.
      other.create(checkSpec({ name: "beta" }));
      assert.deepEqual(s.list().map((r) => r.name), ["alpha", "beta"]);
      other.update(a.id, { pid: 4242 });
      assert.equal(s.get("alpha").pid, 4242);
      other.remove(s.get("beta").id, ["created"]);
      assert.equal(s.find("beta"), undefined);
    } finally {
      other.close();
    }
    // This store's own writes (data_version does not change for them).
    s.list();
    s.transition(a.id, ["created"], "stopped");
    assert.equal(s.get("alpha").state, "stopped");
    // Lookups through the cache: exact name and id, a unique id prefix, nothing for an ambiguous or short one.
    const b = s.create(checkSpec({ name: "beta" }));
    s.list();
    assert.equal(s.get(b.id).name, "beta");
    assert.equal(s.get(b.id.slice(0, 5)).name, "beta");
    assert.equal(s.find(b.id.slice(0, 2)), undefined);
    assert.equal(s.find(""), undefined);
    // The same objects go to every caller: none may change one, and a listed array is the caller's own.
    const rec = s.get("alpha");
    assert.throws(() => ((rec as { state: string }).state = "running"), TypeError);
    assert.throws(() => ((rec.spec as { cpus: number }).cpus = 64), TypeError);
    const listed = s.list();
    listed.pop();
    assert.equal(s.list().length, 2);
  }));
