// Bridged networks and their address allocations, in the same SQLite file. An address is taken with an
// INSERT under a primary key, so two VMs can never get the same one.

import type Database from "better-sqlite3";
import { AddressTakenError, NameTakenError, NotFoundError } from "../errors.js";
import { openDatabase } from "./database.js";

export interface NetworkRecord {
  name: string;
  id: string;
  bridge: string;
  subnet: string;
  nat: boolean;
  createdAt: string;
}

export class NetworkStore {
  private readonly db: Database.Database;

  constructor(path: string) {
    this.db = openDatabase(path);
    this.db.exec(`CREATE TABLE IF NOT EXISTS networks (name TEXT PRIMARY KEY, id TEXT NOT NULL, bridge TEXT NOT NULL UNIQUE, subnet TEXT NOT NULL, nat INTEGER NOT NULL, created_at TEXT NOT NULL);
      CREATE TABLE IF NOT EXISTS allocations (network TEXT NOT NULL, ip TEXT NOT NULL, vm_id TEXT NOT NULL UNIQUE, PRIMARY KEY (network, ip));`);
  }

  close(): void {
    this.db.close();
  }

  list(): NetworkRecord[] {
    const rows = this.db.prepare("SELECT * FROM networks ORDER BY name").all() as Array<Record<string, string | number>>;
    return rows.map((r) => ({ name: String(r.name), id: String(r.id), bridge: String(r.bridge), subnet: String(r.subnet), nat: Boolean(r.nat), createdAt: String(r.created_at) }));
  }

  get(name: string): NetworkRecord {
    const n = this.list().find((x) => x.name === name);
    if (!n) throw new NotFoundError(`no network named ${name}`, { hint: "create it (mvm network create NAME) or list them (mvm network ls)", details: { network: name } });
    return n;
  }

  add(n: Omit<NetworkRecord, "createdAt">): NetworkRecord {
    try {
      this.db.prepare("INSERT INTO networks (name, id, bridge, subnet, nat, created_at) VALUES (?, ?, ?, ?, ?, ?)").run(n.name, n.id, n.bridge, n.subnet, n.nat ? 1 : 0, new Date().toISOString());
    } catch (e) {
      if (String((e as { code?: string }).code).startsWith("SQLITE_CONSTRAINT")) throw new NameTakenError(`a network named ${n.name} already exists`, { hint: "pick another name" });
      throw e;
    }
    return this.get(n.name);
  }

  remove(name: string): void {
    this.db.prepare("DELETE FROM networks WHERE name = ?").run(name);
  }

  allocations(network: string): Array<{ ip: string; vmId: string }> {
    return (this.db.prepare("SELECT ip, vm_id FROM allocations WHERE network = ?").all(network) as Array<{ ip: string; vm_id: string }>).map((r) => ({ ip: r.ip, vmId: r.vm_id }));
  }

  /** Takes an address chosen by `pick` (given the taken ones) atomically. */
  allocate(network: string, vmId: string, pick: (taken: Set<string>) => string): string {
    return this.db.transaction(() => {
      const ip = pick(new Set(this.allocations(network).map((a) => a.ip)));
      try {
        this.db.prepare("INSERT INTO allocations (network, ip, vm_id) VALUES (?, ?, ?)").run(network, ip, vmId);
      } catch (e) {
        if (String((e as { code?: string }).code).startsWith("SQLITE_CONSTRAINT")) throw new AddressTakenError(`address ${ip} is already taken on ${network}`, { hint: "pick another --ip" });
        throw e;
      }
      return ip;
    }).immediate();
  }

  release(vmId: string): void {
    this.db.prepare("DELETE FROM allocations WHERE vm_id = ?").run(vmId);
  }
}
