// How a VM's start becomes a running guest: a clone of a memory template where the VM allows it (built on
// first use), a cold boot otherwise, and a cold boot again when a clone fails (the template is then
// removed, to be rebuilt). Whatever happened is returned as BootInfo, which inspect shows.

import { randomBytes } from "node:crypto";
import { appendFile, copyFile, readFile, stat } from "node:fs/promises";
import type { IdentityRequest } from "../agent/messages.js";
import { AbortError, PortInUseError, StateFileError } from "../errors.js";
import { hostTsc } from "../host/tsc.js";
import { createOverlay } from "../images/overlay.js";
import { clonePlan, coldReason, templateKey } from "../plan/clone-plan.js";
import type { VmPlan } from "../plan/vm-plan.js";
import type { BootInfo, VmRecord } from "../store/vm-store.js";
import { launchGuest, startParked, type Guest, type LaunchOptions } from "../vm/launch.js";
import { vmFiles } from "../vm/layout.js";
import type { ImageManager } from "./image-manager.js";
import type { QemuBinaries } from "./qemu-binaries.js";
import { requireBuild, type QemuBuild } from "./snapshots.js";
import type { Template, TemplateManager } from "./template-manager.js";
import type { WarmPool } from "./warm-pool.js";

/** A state saved earlier: a snapshot's (with its disk, copied for the VM) or the VM's own suspend. */
export interface SavedState {
  kind: "snapshot" | "resume";
  stateFile: string;
  disk?: string;
  qemuBuild: QemuBuild;
  what: string;
}

export interface LaunchRequest {
  rec: VmRecord;
  plan: VmPlan;
  from?: SavedState;
  /** Deadline, abort signal and the pid callback, as launchGuest takes them. */
  launch: Pick<LaunchOptions, "helloTimeoutMs" | "signal" | "onSpawn" | "onQmp">;
}

/** What makes a clone this VM and no other: its clock, name, entropy and environment (through the agent). */
export function identityFor(rec: VmRecord): IdentityRequest {
  return { realtimeNs: BigInt(Date.now()) * 1_000_000n, hostname: rec.spec.hostname, entropy: randomBytes(64), env: rec.spec.env };
}

/** Published ports on a running user network (slirp's hostfwd_add, through the human monitor). */
async function publishPorts(guest: Guest, plan: VmPlan): Promise<void> {
  if (plan.network?.kind !== "user") return;
  for (const p of plan.network.ports) {
    const rule = `${p.proto}:${p.hostIp}:${p.hostPort}-:${p.guestPort}`;
    const out = await guest.qmp.execute<string>("human-monitor-command", { "command-line": `hostfwd_add net0 ${rule}` });
    if (out.trim()) throw new PortInUseError(`cannot publish ${rule}: ${out.trim()}`);
  }
}

/**
 * A clone's console log begins with the boot its memory remembers (the template's), so `mvm logs --console`
 * reads as for a cold boot; QEMU appends what the clone prints.
 */
export async function inheritConsole(t: Template, dir: string): Promise<void> {
  const log = vmFiles(dir).consoleLog;
  const boot = await readFile(vmFiles(t.dir).consoleLog).catch(() => Buffer.alloc(0));
  await appendFile(log, Buffer.concat([boot, Buffer.from(`[mvm: cloned from memory template ${t.key}]\r\n`)]));
}

export class VmLauncher {
  constructor(private readonly o: { templatesOn: boolean; templates: TemplateManager; pool: WarmPool; binaries: QemuBinaries; images: ImageManager; log?: (line: string) => void }) {}

  async launch(req: LaunchRequest): Promise<{ guest: Guest; boot: BootInfo }> {
    const t0 = performance.now();
    if (req.from) {
      const guest = await this.restore(req, req.from);
      return { guest, boot: { how: req.from.kind, reason: req.from.what, readyMs: Math.round(performance.now() - t0) } };
    }
    const source = await this.templateFor(req.rec, req.plan);
    if ("template" in source) {
      try {
        const pooled = await this.fromPool(req, source.template);
        const guest = pooled ?? (await this.clone(req, source.template));
        // Once this VM is up (and its first command under way): a QEMU spawned sooner slows its start.
        setTimeout(() => this.o.pool.refill(source.template, req.plan), 300).unref();
        const how = pooled ? "pool" : "clone";
        return { guest, boot: { how, reason: pooled ? `a parked QEMU, then ${source.reason}` : source.reason, template: source.template.key, readyMs: Math.round(performance.now() - t0) } };
      } catch (e) {
        if (req.launch.signal?.aborted || e instanceof AbortError) throw e;
        // A state QEMU cannot load condemns the template (the next start builds a new one). A clone that
        // was merely slow or lost its QEMU on a loaded host does not: removing the template then failed
        // every clone starting beside it (seen at 300 VMs). Either way this start boots cold.
        if (e instanceof StateFileError) await this.o.templates.remove(source.template.key, `a clone failed: ${e.message}`);
        if (req.rec.spec.image) await this.freshOverlay(req.rec, req.plan);
        const guest = await launchGuest({ ...req.plan, ...req.launch });
        // QEMU's last words, when it said any: the reason is all a user (or a benchmark) keeps of a fallback.
        const stderr = (e as { details?: { qemuStderr?: unknown } }).details?.qemuStderr;
        const said = typeof stderr === "string" ? stderr.trim().split("\n").at(-1) : undefined;
        const what = `${(e as Error).message}${said ? `: ${said.slice(0, 300)}` : ""}`;
        const why = e instanceof StateFileError ? `the template failed (${what}); it will be rebuilt` : `the clone failed (${what})`;
        return { guest, boot: { how: "cold", reason: why, readyMs: Math.round(performance.now() - t0) } };
      }
    }
    const guest = await launchGuest({ ...req.plan, ...req.launch });
    return { guest, boot: { how: "cold", reason: source.reason, readyMs: Math.round(performance.now() - t0) } };
  }

  /**
   * A parked QEMU from the warm pool, for a VM's first start (its directory then holds nothing yet that a
   * take could lose); its published ports are added through the monitor once the guest runs.
   */
  private async fromPool(req: LaunchRequest, t: Template): Promise<Guest | undefined> {
    if (req.rec.state !== "created") return undefined;
    const parked = await this.o.pool.take(t, req.plan.dir);
    if (!parked) return undefined;
    req.launch.onSpawn?.(parked.pid);
    try {
      const guest = await startParked(parked, {
        dir: req.plan.dir,
        restore: { stateFile: t.stateFile, ignoreShared: true },
        readiness: { kind: "restored", identity: () => identityFor(req.rec) },
        timeoutMs: req.launch.helloTimeoutMs,
        signal: req.launch.signal,
        onQmp: req.launch.onQmp,
      });
      await publishPorts(guest, req.plan);
      return guest;
    } catch (e) {
      await parked.discard();
      throw e;
    }
  }

  private async clone(req: LaunchRequest, t: Template): Promise<Guest> {
    // The template's frozen disk, copied: the clone's own, backed by the image as the template's was.
    if (t.disk) await copyFile(t.disk, vmFiles(req.plan.dir).rootOverlay);
    await inheritConsole(t, req.plan.dir);
    return launchGuest({
      ...clonePlan(req.plan, t.ramFile),
      ...req.launch,
      restore: { stateFile: t.stateFile, ignoreShared: true },
      readiness: { kind: "restored", identity: () => identityFor(req.rec) },
    });
  }

  /** Everything from the state file (RAM included) into a fresh memfd; the clock and entropy made true again. */
  private async restore(req: LaunchRequest, from: SavedState): Promise<Guest> {
    requireBuild(from.qemuBuild, await this.o.binaries.build(req.plan.qemuBinary), from.what);
    if (from.disk) await copyFile(from.disk, vmFiles(req.plan.dir).rootOverlay);
    return launchGuest({
      ...req.plan,
      ...req.launch,
      ram: { kind: "anonymous" },
      incoming: true,
      restore: { stateFile: from.stateFile, ignoreShared: false },
      readiness: { kind: "restored", identity: () => identityFor(req.rec) },
    });
  }

  /** The template this VM can be cloned from (built now if needed), or why it boots cold. */
  private async templateFor(rec: VmRecord, plan: VmPlan): Promise<{ template: Template; reason: string } | { reason: string }> {
    const cold = coldReason(rec, plan) ?? (this.o.templatesOn ? undefined : "memory templates are turned off (MVM_TEMPLATES=0)");
    if (cold) return { reason: cold };
    const build = await this.o.binaries.build(plan.qemuBinary);
    if (!build) return { reason: `QEMU (${plan.qemuBinary}) could not be probed, so no template can name its build` };
    let image;
    if (rec.spec.image) {
      const img = this.o.images.get(rec.spec.image);
      const st = await stat(img.path);
      image = { path: img.path, size: st.size, mtimeMs: Math.trunc(st.mtimeMs), diskSizeMiB: rec.spec.diskSizeMiB };
    }
    const inputs = { qemuBuild: build.sha256, artifacts: plan.artifacts, tsc: hostTsc(), image };
    const key = templateKey(plan, inputs);
    try {
      const existing = await this.o.templates.find(key);
      const template = existing ?? (await this.o.templates.get(key, plan, { ...inputs, qemuBinary: plan.qemuBinary }));
      return { template, reason: existing ? "a matching memory template" : "a memory template, built for this start" };
    } catch (e) {
      this.o.log?.(`template ${key}: ${(e as Error).message}`);
      return { reason: `no template could be built: ${(e as Error).message}` };
    }
  }

  /** The image overlay as create made it (a failed clone may have written to its copy). */
  private async freshOverlay(rec: VmRecord, plan: VmPlan): Promise<void> {
    const image = this.o.images.get(rec.spec.image!);
    await createOverlay(image.path, vmFiles(plan.dir).rootOverlay, rec.spec.diskSizeMiB);
  }
}
