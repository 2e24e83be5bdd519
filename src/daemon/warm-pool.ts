// The warm pool: a few QEMUs spawned ahead of time per template that VMs are cloned from, parked at
// -incoming defer (about 35 MiB each, no CPU), so a new VM skips QEMU's start-up. A take moves the parked
// QEMU's directory to the VM's and loads the template into it; a refill follows in the background.
// Parked QEMUs are not VMs: they end with the daemon, and the reaper ends those a killed daemon left
// (each lives in a directory under vms/ with an id no record has, like any orphan).

import { randomBytes } from "node:crypto";
import { mkdir, rename, rm, symlink, copyFile } from "node:fs/promises";
import { basename } from "node:path";
import type { GuestArtifacts } from "../guest/artifacts.js";
import { clonePlan } from "../plan/clone-plan.js";
import type { VmPlan } from "../plan/vm-plan.js";
import { planIn, vmLabel } from "../plan/vm-plan.js";
import { parkGuest, type Parked } from "../vm/launch.js";
import { vmDir, vmFiles } from "../vm/layout.js";
import type { Template } from "./template-manager.js";
import { inheritConsole } from "./vm-launcher.js";

interface Slot {
  dir: string;
  parked: Parked;
  /** The template RAM it maps: a template rebuilt under the same key has another, and its slots are useless. */
  ramFile: string;
}

export interface PoolStats {
  template: string;
  parked: number;
  takes: number;
  misses: number;
}

export class WarmPool {
  private readonly slots = new Map<string, Slot[]>();
  private readonly filling = new Map<string, Promise<void>>();
  private readonly counts = new Map<string, { takes: number; misses: number }>();
  /** Every directory the pool holds (parked or being parked): not VMs', and not leftovers. */
  private readonly dirs = new Set<string>();
  private closed = false;

  constructor(private readonly o: { home: string; size: number; artifacts: () => Promise<GuestArtifacts>; log?: (line: string) => void }) {}

  /**
   * A parked QEMU for this template, moved to `dir` (the VM's directory, which it replaces); undefined when
   * none is ready. The caller refills once its VM is up: a QEMU spawned meanwhile would slow that boot.
   */
  async take(t: Template, dir: string): Promise<Parked | undefined> {
    const count = this.counts.get(t.key) ?? { takes: 0, misses: 0 };
    this.counts.set(t.key, count);
    const list = this.slots.get(t.key) ?? [];
    for (const stale of list.filter((x) => x.ramFile !== t.ramFile)) {
      list.splice(list.indexOf(stale), 1);
      this.dirs.delete(stale.dir);
      await stale.parked.discard();
      await rm(stale.dir, { recursive: true, force: true });
    }
    const slot = list.shift();
    if (!slot) {
      count.misses++;
      return undefined;
    }
    count.takes++;
    this.dirs.delete(slot.dir);
    await rm(dir, { recursive: true, force: true });
    await rename(slot.dir, dir);
    // QEMU reconnects (after a daemon restart) to the paths it was started with: they lead here.
    await symlink(basename(dir), slot.dir).catch(() => undefined);
    return slot.parked;
  }

  /** Tops the template's pool up to its size, one QEMU after another (boots come first on 2 cores). */
  refill(t: Template, plan: VmPlan): void {
    if (this.closed || this.o.size <= 0 || this.filling.has(t.key)) return;
    const run = (async () => {
      const list = this.slots.get(t.key) ?? [];
      this.slots.set(t.key, list);
      while (!this.closed && list.length < this.o.size) {
        const slot = await this.park(t, plan).catch((e: unknown) => {
          this.o.log?.(`pool for template ${t.key}: ${(e as Error).message}`);
          return undefined;
        });
        if (!slot) break;
        if (this.closed) {
          await slot.parked.discard();
          await rm(slot.dir, { recursive: true, force: true });
          break;
        }
        list.push(slot);
        // A parked QEMU that dies (killed from outside) leaves the pool.
        void slot.parked.exited.then(async () => {
          const i = list.indexOf(slot);
          if (i >= 0) {
            list.splice(i, 1);
            this.dirs.delete(slot.dir);
            await rm(slot.dir, { recursive: true, force: true });
          }
        });
      }
    })().finally(() => this.filling.delete(t.key));
    this.filling.set(t.key, run);
  }

  private async park(t: Template, plan: VmPlan): Promise<Slot> {
    const id = randomBytes(6).toString("hex");
    const dir = vmDir(this.o.home, id);
    this.dirs.add(dir);
    await mkdir(dir, { recursive: true, mode: 0o700 });
    try {
      // The VM's plan minus what a take adds (ports, through the monitor); the disk is the template's, copied.
      const nic = plan.network?.kind === "user" ? { ...plan.network, ports: [] } : plan.network;
      if (t.disk) await copyFile(t.disk, vmFiles(dir).rootOverlay);
      await inheritConsole(t, dir);
      const parked = await parkGuest({ ...clonePlan({ ...planIn(plan, dir, vmLabel(id)), network: nic }, t.ramFile), dir, artifacts: await this.o.artifacts(), laterStates: [t.stateFile] });
      return { dir, parked, ramFile: t.ramFile };
    } catch (e) {
      this.dirs.delete(dir);
      await rm(dir, { recursive: true, force: true });
      throw e;
    }
  }

  owns(dir: string): boolean {
    return this.dirs.has(dir);
  }

  stats(): PoolStats[] {
    return [...this.counts.entries()].map(([template, c]) => ({ template, parked: this.slots.get(template)?.length ?? 0, ...c }));
  }

  /** Ends every parked QEMU (the daemon is stopping). */
  async close(): Promise<void> {
    this.closed = true;
    await Promise.all([...this.filling.values()].map((p) => p.catch(() => undefined)));
    const all = [...this.slots.values()].flat();
    this.slots.clear();
    await Promise.all(all.map(async (s) => {
      await s.parked.discard();
      await rm(s.dir, { recursive: true, force: true });
    }));
  }
}
