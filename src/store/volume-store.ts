// Named volumes: host folders the host's root registered (mvm volume create NAME PATH), which any caller
// may then share with a VM as -v NAME:/guest/dir. In the same SQLite file as the VMs. The table is added
// on first open (CREATE TABLE IF NOT EXISTS): a home made before volumes existed gains it and loses
// nothing, and an older mvm opening the file again just does not look at it.

import type Database from "better-sqlite3";
import { NameTakenError, NotFoundError } from "../errors.js";
import { openDatabase } from "./database.js";

export interface VolumeRecord {
  name: string;
  /** The folder on the host, resolved (realpath) when it was registered. */
  path: string;
  readOnly: boolean;
  createdAt: string;
}

export class VolumeStore {
  private readonly db: Database.Database;

  constructor(path: string) {
    this.db = openDatabase(path);
    this.db.exec("CREATE TABLE IF NOT EXISTS volumes (name TEXT PRIMARY KEY, path TEXT NOT NULL, read_only INTEGER NOT NULL, created_at TEXT NOT NULL)");
  }

  close(): void {
    this.db.close();
  }

  list(): VolumeRecord[] {
    const rows = this.db.prepare("SELECT * FROM volumes ORDER BY name").all() as Array<Record<string, string | number>>;
    return rows.map((r) => ({ name: String(r.name), path: String(r.path), readOnly: Boolean(r.read_only), createdAt: String(r.created_at) }));
  }

  find(name: string): VolumeRecord | undefined {
    return this.list().find((v) => v.name === name);
  }

  get(name: string): VolumeRecord {
    const v = this.find(name);
    if (!v) throw new NotFoundError(`no volume named ${name}`, { hint: "list them with mvm volume ls; the host's root registers one with mvm volume create NAME PATH", details: { volume: name } });
    return v;
  }

  add(v: Omit<VolumeRecord, "createdAt">): VolumeRecord {
    try {
      this.db.prepare("INSERT INTO volumes (name, path, read_only, created_at) VALUES (?, ?, ?, ?)").run(v.name, v.path, v.readOnly ? 1 : 0, new Date().toISOString());
    } catch (e) {
      if (String((e as { code?: string }).code).startsWith("SQLITE_CONSTRAINT")) throw new NameTakenError(`a volume named ${v.name} already exists`, { hint: `pick another name, or remove it first (mvm volume rm ${v.name})`, details: { volume: v.name } });
      throw e;
    }
    return this.get(v.name);
  }

  remove(name: string): void {
    this.db.prepare("DELETE FROM volumes WHERE name = ?").run(name);
  }
}
