// A writer of a home's database in a child process, for the SQLite fault tests (faults.test.ts):
//   node sqlite-child.js mid-transaction DB N   N records committed through VmStore, then a transaction
//                                               left open with thousands of rows spilled into the WAL;
//                                               says "in-transaction" and waits to be killed with -9
//   node sqlite-child.js writer DB PREFIX N     N records, each created and moved created → starting →
//                                               running → stopping → stopped; says "done N" (every step
//                                               must succeed: a busy database waits, it does not fail)
//   node sqlite-child.js hold DB MS             a write transaction held open MS ms; "holding", "committed"

import { openDatabase } from "../../src/store/database.js";
import { VmStore } from "../../src/store/vm-store.js";
import { checkSpec } from "../../src/vmspec/vm-spec.js";

const [mode, db, a, b] = process.argv.slice(2);
const say = (line: string) => process.stdout.write(`${line}\n`);

if (mode === "mid-transaction") {
  const store = new VmStore(db!);
  for (let i = 0; i < Number(a); i++) store.create(checkSpec({ name: `committed-${i}` }));
  const raw = openDatabase(db!);
  // A small page cache: the open transaction's pages go to the WAL before any commit, as a big one's would.
  raw.pragma("cache_size = 8");
  raw.exec("BEGIN IMMEDIATE");
  const insert = raw.prepare("INSERT INTO vms (id, name, state, data, created_at, updated_at) VALUES (?, ?, 'created', ?, '', '')");
  for (let i = 0; i < 3000; i++) insert.run(`open${i}`, `uncommitted-${i}`, "x".repeat(2000));
  raw.prepare("UPDATE vms SET state = 'crashed' WHERE name LIKE 'committed-%'").run();
  say("in-transaction");
  setInterval(() => undefined, 1 << 30);
} else if (mode === "writer") {
  const store = new VmStore(db!);
  const n = Number(b);
  for (let i = 0; i < n; i++) {
    const rec = store.create(checkSpec({ name: `${a}-${i}` }));
    store.transition(rec.id, ["created"], "starting");
    store.update(rec.id, { pid: 1000 + i });
    store.transition(rec.id, ["starting"], "running");
    store.transition(rec.id, ["running"], "stopping");
    store.transition(rec.id, ["stopping"], "stopped", { pid: undefined });
  }
  say(`done ${n}`);
  store.close();
} else if (mode === "hold") {
  const raw = openDatabase(db!);
  raw.exec("CREATE TABLE IF NOT EXISTS held (n INTEGER)");
  raw.exec("BEGIN IMMEDIATE");
  raw.prepare("INSERT INTO held VALUES (1)").run();
  say("holding");
  setTimeout(() => {
    raw.exec("COMMIT");
    say("committed");
    raw.close();
  }, Number(a));
} else {
  throw new Error(`unknown mode ${mode}`);
}
