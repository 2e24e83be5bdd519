// The one SQLite file under $MVM_HOME, opened the same way by every store.

import Database from "better-sqlite3";

export function openDatabase(path: string): Database.Database {
  const db = new Database(path);
  // WAL lets readers run beside a writer; the busy timeout makes concurrent writers queue, not fail.
  db.pragma("journal_mode = WAL");
  db.pragma("busy_timeout = 5000");
  db.pragma("synchronous = NORMAL");
  return db;
}
