// API tokens in the home's SQLite file: a name, the SHA-256 of the token (never the token), a role, the
// quotas, when it was made and last used. The table is added on first open (CREATE TABLE IF NOT EXISTS):
// a home made before tokens gains it and loses nothing, and an older mvm just does not look at it.

import type Database from "better-sqlite3";
import type { Quota, TokenRole } from "../auth/caller.js";
import { checkRole, checkTokenName, generateToken, hashToken, matchToken } from "../auth/tokens.js";
import { NameTakenError, NotFoundError } from "../errors.js";
import { openDatabase } from "./database.js";

export interface TokenRecord {
  name: string;
  role: TokenRole;
  quota: Quota;
  createdAt: string;
  lastUsedAt?: string;
}

interface Row {
  name: string;
  hash: Buffer;
  role: string;
  max_vms: number | null;
  max_cpus: number | null;
  max_memory_mib: number | null;
  created_at: string;
  last_used_at: string | null;
}

const toRecord = (r: Row): TokenRecord => {
  const quota: Quota = {};
  if (r.max_vms !== null) quota.maxVms = r.max_vms;
  if (r.max_cpus !== null) quota.maxCpus = r.max_cpus;
  if (r.max_memory_mib !== null) quota.maxMemoryMiB = r.max_memory_mib;
  return { name: r.name, role: checkRole(r.role), quota, createdAt: r.created_at, ...(r.last_used_at ? { lastUsedAt: r.last_used_at } : {}) };
};

/** How often a token's last use is written (every request would be a write per request). */
const LAST_USED_EVERY_MS = 60_000;

export class TokenStore {
  private readonly db: Database.Database;
  private readonly all: Database.Statement;
  private readonly lastWritten = new Map<string, number>();

  constructor(path: string) {
    this.db = openDatabase(path);
    this.db.exec(`CREATE TABLE IF NOT EXISTS tokens (
      name TEXT PRIMARY KEY,
      hash BLOB NOT NULL UNIQUE,
      role TEXT NOT NULL,
      max_vms INTEGER,
      max_cpus INTEGER,
      max_memory_mib INTEGER,
      created_at TEXT NOT NULL,
      last_used_at TEXT
    )`);
    this.all = this.db.prepare("SELECT * FROM tokens ORDER BY name");
  }

  close(): void {
    this.db.close();
  }

  list(): TokenRecord[] {
    return (this.all.all() as Row[]).map(toRecord);
  }

  get(name: string): TokenRecord {
    const r = this.list().find((t) => t.name === name);
    if (!r) throw new NotFoundError(`no token named ${name}`, { hint: "list them with mvm token ls", details: { token: name } });
    return r;
  }

  /** Makes a token: the record, and the token itself, which is nowhere else and cannot be shown again. */
  create(name: string, role: TokenRole, quota: Quota = {}): { token: string; record: TokenRecord } {
    checkTokenName(name);
    checkRole(role);
    const token = generateToken();
    try {
      this.db
        .prepare("INSERT INTO tokens (name, hash, role, max_vms, max_cpus, max_memory_mib, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)")
        .run(name, hashToken(token), role, quota.maxVms ?? null, quota.maxCpus ?? null, quota.maxMemoryMiB ?? null, new Date().toISOString());
    } catch (e) {
      if (String((e as { code?: string }).code).startsWith("SQLITE_CONSTRAINT")) throw new NameTakenError(`a token named ${name} already exists`, { hint: `pick another name, or remove it first (mvm token rm ${name})`, details: { token: name } });
      throw e;
    }
    return { token, record: this.get(name) };
  }

  /** Removes a token (NOT_FOUND if there is none): requests showing it are refused from now on. */
  remove(name: string): void {
    if (this.db.prepare("DELETE FROM tokens WHERE name = ?").run(name).changes === 0) this.get(name);
    this.lastWritten.delete(name);
  }

  /** The token's record if it is one of ours (every stored hash compared in constant time); its last use noted. */
  verify(token: string): TokenRecord | undefined {
    const row = matchToken(token, this.all.all() as Row[]);
    if (!row) return undefined;
    const now = Date.now();
    if (now - (this.lastWritten.get(row.name) ?? 0) >= LAST_USED_EVERY_MS) {
      this.lastWritten.set(row.name, now);
      row.last_used_at = new Date(now).toISOString();
      this.db.prepare("UPDATE tokens SET last_used_at = ? WHERE name = ?").run(row.last_used_at, row.name);
    }
    return toRecord(row);
  }
}
