// Registered disk images, beside the VM records in the same SQLite file.

import type Database from "better-sqlite3";
import { openDatabase } from "./database.js";
import { NameTakenError, NotFoundError } from "../errors.js";

export interface ImageRecord {
  name: string;
  path: string;
  virtualBytes: number;
  source: string;
  createdAt: string;
}

export class ImageStore {
  private readonly db: Database.Database;

  constructor(path: string) {
    this.db = openDatabase(path);
    this.db.exec(`CREATE TABLE IF NOT EXISTS images (
      name TEXT PRIMARY KEY, path TEXT NOT NULL, virtual_bytes INTEGER NOT NULL, source TEXT NOT NULL, created_at TEXT NOT NULL)`);
  }

  close(): void {
    this.db.close();
  }

  list(): ImageRecord[] {
    const rows = this.db.prepare("SELECT * FROM images ORDER BY name").all() as Array<Record<string, string | number>>;
    return rows.map((r) => ({ name: String(r.name), path: String(r.path), virtualBytes: Number(r.virtual_bytes), source: String(r.source), createdAt: String(r.created_at) }));
  }

  find(name: string): ImageRecord | undefined {
    return this.list().find((i) => i.name === name);
  }

  get(name: string): ImageRecord {
    const i = this.find(name);
    if (!i) {
      throw new NotFoundError(`no image named ${name}`, {
        hint: name === "debian" ? "build it: mvm image build debian" : `import one: mvm image import FILE --name ${name} (mvm image ls lists them)`,
        details: { image: name },
      });
    }
    return i;
  }

  add(i: Omit<ImageRecord, "createdAt">): ImageRecord {
    try {
      this.db.prepare("INSERT INTO images (name, path, virtual_bytes, source, created_at) VALUES (?, ?, ?, ?, ?)").run(i.name, i.path, i.virtualBytes, i.source, new Date().toISOString());
    } catch (e) {
      if ((e as { code?: string }).code === "SQLITE_CONSTRAINT_PRIMARYKEY") throw new NameTakenError(`an image named ${i.name} already exists`, { hint: `remove it first (mvm image rm ${i.name}) or pick another --name` });
      throw e;
    }
    return this.get(i.name);
  }

  remove(name: string): void {
    this.db.prepare("DELETE FROM images WHERE name = ?").run(name);
  }
}
