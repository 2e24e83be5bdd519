// mvm snapshot create|ls|inspect|rm: a VM's whole state and root disk at one moment, kept by the daemon;
// `mvm run|create --snapshot NAME` makes VMs of one.

import { connect } from "../../client/client.js";
import type { SnapshotView } from "../../api/snapshot-schemas.js";
import { formatTable } from "../table.js";
import { printJson, progress, removeEach } from "../output.js";

const mib = (bytes: number | undefined) => (bytes === undefined ? "-" : `${Math.max(1, Math.round(bytes / 1048576))}M`);

export async function snapshotCreateCommand(vm: string, flags: { name?: string; json?: boolean }): Promise<number> {
  const client = await connect();
  // Saving the memory takes a while for a large VM (seconds under TCG), and the VM is stopped meanwhile.
  progress(`snapshot: saving the state and disk of VM ${vm} (it is stopped while they are copied)`);
  const snap = await client.createSnapshot(vm, { name: flags.name });
  if (flags.json) printJson(snap);
  else {
    progress(`snapshot: ${snap.name}: ${mib(snap.stateBytes)} state${snap.diskBytes === undefined ? "" : `, ${mib(snap.diskBytes)} disk`}, VM stopped for ${snap.pausedMs} ms`);
    process.stdout.write(`${snap.name}\n`);
  }
  return 0;
}

export function snapshotTable(snaps: SnapshotView[]): string {
  const rows = [["NAME", "VM", "CPUS", "MEMORY", "IMAGE", "STATE", "DISK", "PAUSED", "CREATED"]];
  for (const s of snaps) rows.push([s.name, s.vm.name, String(s.spec.cpus), `${s.spec.memoryMiB}M`, s.spec.image ?? "-", mib(s.stateBytes), mib(s.diskBytes), `${s.pausedMs}ms`, s.createdAt]);
  return formatTable(rows);
}

export async function snapshotLsCommand(flags: { json?: boolean }): Promise<number> {
  const snaps = await (await connect()).snapshots();
  if (flags.json) printJson(snaps);
  else process.stdout.write(snapshotTable(snaps));
  return 0;
}

export async function snapshotInspectCommand(names: string[]): Promise<number> {
  const client = await connect();
  const views = [];
  for (const n of names) views.push(await client.getSnapshot(n));
  printJson(names.length === 1 ? views[0] : views);
  return 0;
}

export async function snapshotRmCommand(names: string[], flags: { json?: boolean }): Promise<number> {
  const client = await connect();
  return removeEach(names, (n) => client.removeSnapshot(n), flags.json);
}
