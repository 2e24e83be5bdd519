// At daemon start: make the records true again. Every record in a live state is checked against reality:
// a QEMU still running (same pid and start time) is adopted; one that is gone makes the VM crashed (or
// stopped if it was stopping). Then the reaper: a QEMU with this home's label that no record owns is
// reported and stopped, so nothing mvm started runs unseen.

import { adoptGuest, type Guest } from "../vm/launch.js";
import { readFileSync } from "node:fs";
import { unlink } from "node:fs/promises";
import { vmDir, vmFiles } from "../vm/layout.js";
import { findLabelledQemus, type LabelledQemu } from "../vm/orphans.js";
import { processStartTime } from "../vm/qemu-process.js";
import { isLive } from "../vm/state.js";
import type { VmRecord, VmStore } from "../store/vm-store.js";

export interface ReconcileHooks {
  store: VmStore;
  home: string;
  /** A QEMU was adopted: the manager takes it over (watching its exit, adopting its commands). */
  adopted: (rec: VmRecord, guest: Guest, state: "running" | "paused") => Promise<void>;
  log: (line: string) => void;
  /** How long an adopted QEMU has to reconnect and answer. */
  timeoutMs?: number;
}

/**
 * Returns the labels of the QEMUs that ended, here or while no daemon ran (their control groups, named by
 * label, can go at once: nothing else spawns into this home's groups), once the QEMUs it killed are gone.
 */
export async function reconcile(h: ReconcileHooks): Promise<string[]> {
  const ended = new Set<string>();
  const killed: number[] = [];
  for (const rec of h.store.list()) {
    if (!isLive(rec.state)) continue;
    const alive = rec.pid !== undefined && rec.pidStart !== undefined && processStartTime(rec.pid) === rec.pidStart;
    // A VM caught mid-boot is not adopted: its boot had no one to finish it. It is killed below.
    // A suspend whose state was saved (the record names it) is finished, not undone: that QEMU goes.
    const suspendSaved = rec.state === "stopping" && rec.suspended !== undefined;
    if (alive && rec.state !== "starting" && !suspendSaved) {
      let guest: Guest | undefined;
      try {
        guest = await adoptGuest({
          dir: vmDir(h.home, rec.id),
          pid: rec.pid!,
          pidStart: rec.pidStart!,
          readiness: rec.spec.ready ? { kind: "console", pattern: rec.spec.ready.consoleLine } : { kind: "agent" },
          timeoutMs: h.timeoutMs ?? 10000,
        });
        const status = await guest.qmp.execute<{ status: string }>("query-status");
        const state = status?.status === "paused" ? "paused" : "running";
        h.store.transition(rec.id, [rec.state], state);
        await h.adopted(rec, guest, state);
        continue;
      } catch {
        // Not answering: killed, as it cannot be managed; its sockets go before anything can listen anew.
        await guest?.kill().catch(() => undefined);
      }
    }
    for (const l of labelsOf(rec, alive ? rec.pid : undefined)) ended.add(l);
    if (alive) {
      killPid(rec.pid!);
      killed.push(rec.pid!);
    }
    // The dead daemon's listening sockets (QEMU is their client) and the guest's configuration file go
    // with the QEMU; the logs stay. A later start makes the sockets anew.
    await removeSockets(vmDir(h.home, rec.id));
    if (suspendSaved) {
      h.store.transition(rec.id, ["stopping"], "suspended", { pid: undefined, pidStart: undefined, lastExit: { exitCode: null, signal: null, at: new Date().toISOString(), reason: "suspended to disk (recorded by the next daemon)" } });
      continue;
    }
    h.store.transition(rec.id, [rec.state], rec.state === "stopping" ? "stopped" : "crashed", {
      pid: undefined,
      pidStart: undefined,
      lastExit: {
        exitCode: null,
        signal: null,
        at: new Date().toISOString(),
        reason: alive
          ? rec.state === "starting"
            ? "the daemon stopped while the VM was booting; its QEMU was killed"
            : "its QEMU stopped answering while the daemon was away; it was killed"
          : rec.state === "starting"
            ? // QEMU 7.2 can crash (SIGSEGV) when its monitor goes away while it loads a state: a clone caught mid-start.
              "the daemon stopped while the VM was booting, and its QEMU ended meanwhile"
            : "its QEMU ended while the daemon was away (or the host restarted)",
      },
    });
  }
  for (const q of reapOrphans(h)) {
    ended.add(`mvm-${q.id}`);
    killed.push(q.pid);
  }
  // SIGKILL is sent, not done: a group can be removed once its last process has exited.
  for (const end = Date.now() + 3000; killed.some((p) => processStartTime(p) !== undefined) && Date.now() < end; ) await new Promise((r) => setTimeout(r, 20));
  return [...ended];
}

/** The labels a VM's QEMU ran under: `mvm-<id>`, the one its last argv names (a pool VM's), and its live process's. */
export function labelsOf(rec: VmRecord, pid?: number): string[] {
  const labels = new Set([`mvm-${rec.id}`]);
  const add = (argv: string[] | undefined) => {
    const at = argv?.indexOf("-name") ?? -1;
    if (at >= 0 && argv![at + 1]) labels.add(argv![at + 1]!);
  };
  add(rec.argv);
  if (pid !== undefined) {
    try {
      add(readFileSync(`/proc/${pid}/cmdline`, "latin1").split("\0"));
    } catch {
      /* gone meanwhile */
    }
  }
  return [...labels].filter((l) => /^mvm-[0-9a-f]{8,64}$/.test(l));
}

/** Stops every QEMU labelled for this home that no live record names. Returns those it stopped. */
export function reapOrphans(h: Pick<ReconcileHooks, "store" | "home" | "log">): LabelledQemu[] {
  const reaped: LabelledQemu[] = [];
  const byPid = new Map(h.store.list().flatMap((r) => (r.pid === undefined ? [] : [[r.pid, r] as const])));
  for (const q of findLabelledQemus(h.home)) {
    // A VM that took a parked QEMU from the pool runs under that QEMU's label: its record names the pid.
    const rec = h.store.find(q.id) ?? byPid.get(q.pid);
    if (rec && isLive(rec.state) && rec.pid === q.pid) continue;
    h.log(`reaping QEMU pid ${q.pid} labelled mvm-${q.id}: ${rec ? `VM ${rec.name} is ${rec.state} and names ${rec.pid ?? "no"} pid` : "no VM record has that id"}`);
    killPid(q.pid);
    reaped.push(q);
  }
  return reaped;
}

async function removeSockets(dir: string): Promise<void> {
  const f = vmFiles(dir);
  await Promise.all([f.agentSocket, f.qmpSocket, f.consoleSocket, f.config].map((p) => unlink(p).catch(() => undefined)));
}

function killPid(pid: number): void {
  try {
    process.kill(pid, "SIGKILL");
  } catch {
    /* gone meanwhile */
  }
}
