// Where the daemon's events come from: the VM store's committed changes (created, state, removed) and the
// session registry's commands (start, end), turned into events on the bus. Images and snapshots publish
// theirs where they happen (image-manager.ts, vm-manager.ts).

import type { StoreChange, VmStore } from "../store/vm-store.js";
import type { EventBus } from "./events.js";
import type { SessionRegistry } from "./session-registry.js";

/** A command's argv in an event: its first words, each cut short (an event is no place for a script). */
const shortArgv = (argv: string[]): string[] => argv.slice(0, 16).map((a) => (a.length > 256 ? `${a.slice(0, 255)}…` : a));

export function publishStoreChanges(store: VmStore, bus: EventBus): void {
  store.onChange = (c: StoreChange) => {
    const vm = { id: c.rec.id, name: c.rec.name };
    if (c.kind === "state") bus.publish({ type: "vm.state", vm, from: c.from, to: c.rec.state });
    else bus.publish({ type: c.kind === "created" ? "vm.created" : "vm.removed", vm });
  };
}

export function publishCommands(sessions: SessionRegistry, store: VmStore, bus: EventBus): void {
  // The VM's name as the record has it; a VM removed meanwhile is named by its id.
  const vmOf = (id: string) => ({ id, name: store.find(id)?.name ?? id });
  sessions.onCommand = (what, vmId, t) => {
    if (what === "start") {
      bus.publish({ type: "command.start", vm: vmOf(vmId), session: t.id, argv: shortArgv(t.argv), background: t.background });
      return;
    }
    const end = t.result;
    if (end?.type === "exit") bus.publish({ type: "command.exit", vm: vmOf(vmId), session: t.id, status: end.status, exitCode: end.exitCode, signal: end.signal, durationMs: end.durationMs });
    else bus.publish({ type: "command.exit", vm: vmOf(vmId), session: t.id, status: null, exitCode: null, signal: null, error: end?.type === "error" ? end.error : "UNKNOWN" });
  };
}
