// Memory templates: a guest booted once and saved the moment its agent said hello, so that VMs like it
// start by mapping its RAM instead of booting (docs/instant-start.md). A template is built on first use,
// kept under the cache by its key (src/plan/clone-plan.ts), shared by every daemon on the host, and never
// written by its clones: they map its RAM file privately (copy-on-write). The file is read-only to all but
// root; it cannot be made immutable (chattr +i), because QEMU 7.2 opens it for writing even for a private
// mapping (its readonly=on would make the guest's RAM read-only). Removing it under running clones is safe
// (their mappings hold it); truncating it would fault their untouched pages (docs/instant-start.md).
//
//   <cache>/templates/<key>/meta.json   what it was built from, when it was last used
//   <cache>/templates/<key>/state       QEMU's device state (RAM left out: x-ignore-shared)
//   <cache>/templates/<key>/disk.qcow2  its root disk, frozen (image VMs; clones copy it)
//   /dev/shm/mvm-templates/<key>-<random>.ram  its RAM (tmpfs: clones' page faults are memory copies),
//                                       named in meta.json: two daemons building one key never share one

import { randomBytes } from "node:crypto";
import { existsSync, statfsSync } from "node:fs";
import { chmod, chown, mkdir, readFile, readdir, rename, rm, stat, utimes, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { createOverlay } from "../images/overlay.js";
import { StateFileError } from "../errors.js";
import { templatePlan, type KeyInputs } from "../plan/clone-plan.js";
import type { VmPlan } from "../plan/vm-plan.js";
import { saveGuestState } from "../vm/state-drop.js";
import { launchGuest } from "../vm/launch.js";
import { findQemusUnder } from "../vm/orphans.js";

export interface Template {
  key: string;
  dir: string;
  stateFile: string;
  ramFile: string;
  /** The frozen root disk (image VMs). */
  disk?: string;
  meta: TemplateMeta;
}

export interface TemplateMeta {
  key: string;
  qemuBuild: string;
  builtAt: string;
  buildMs: number;
  memoryMiB: number;
  image?: string;
  ramFile: string;
}

/** Templates not used for this long are removed (they cost tmpfs memory). */
const STALE_MS = 3 * 24 * 3600 * 1000;
/** At most this many templates are kept; the least recently used go first. */
const MAX_TEMPLATES = 8;

export class TemplateManager {
  private readonly building = new Map<string, Promise<Template>>();
  readonly root: string;
  readonly ramDir: string;

  constructor(private readonly o: { cacheDir: string; ramDir?: string; readyTimeoutMs?: number; log?: (line: string) => void }) {
    this.root = join(o.cacheDir, "templates");
    // tmpfs where there is room (a container's /dev/shm is often 64 MiB); else beside the state, in the
    // page cache of the cache's disk, which works the same, a little slower to fault in.
    this.ramDir = o.ramDir ?? (isTmpfs("/dev/shm") && (freeMiB("/dev/shm") ?? 0) >= 2048 ? "/dev/shm/mvm-templates" : join(this.root, "ram"));
  }

  private files(key: string) {
    const dir = join(this.root, key);
    return { dir, meta: join(dir, "meta.json"), state: join(dir, "state"), disk: join(dir, "disk.qcow2") };
  }

  /** The template with this key, built now if there is none (once, however many starts ask at the same time). */
  get(key: string, plan: VmPlan, inputs: KeyInputs & { qemuBinary: string }): Promise<Template> {
    let p = this.building.get(key);
    if (!p) {
      p = this.find(key).then((t) => t ?? this.build(key, plan, inputs)).finally(() => this.building.delete(key));
      this.building.set(key, p);
    }
    return p;
  }

  /** A complete template on disk, or undefined (a half-made or damaged one is removed). */
  async find(key: string): Promise<Template | undefined> {
    const f = this.files(key);
    let meta: TemplateMeta;
    try {
      meta = JSON.parse(await readFile(f.meta, "utf8")) as TemplateMeta;
      const [state, ram] = await Promise.all([stat(f.state), stat(meta.ramFile)]);
      if (state.size === 0 || ram.size !== meta.memoryMiB * 1048576) throw new Error("truncated");
      // Templates built before the jail made their RAM 0400, which a jailed clone cannot open (see build); the
      // jail itself adds the group of jailed QEMUs (src/jail/access.ts).
      if ((ram.mode & 0o600) !== 0o600) await chmod(meta.ramFile, (ram.mode & 0o777) | 0o600);
    } catch {
      if (existsSync(f.dir)) await this.remove(key, "incomplete or damaged");
      return undefined;
    }
    const now = new Date();
    await utimes(f.meta, now, now).catch(() => undefined); // last use, for the sweep
    return { key, dir: f.dir, stateFile: f.state, ramFile: meta.ramFile, disk: existsSync(f.disk) ? f.disk : undefined, meta };
  }

  private async build(key: string, plan: VmPlan, inputs: KeyInputs & { qemuBinary: string }): Promise<Template> {
    const f = this.files(key);
    const memoryMiB = plan.memoryMiB ?? 256;
    const free = freeMiB(this.ramDir);
    if (free !== undefined && free < memoryMiB + 64) {
      throw new StateFileError(`${this.ramDir} has ${free} MiB free; a template of a ${memoryMiB} MiB guest needs up to that much`, { hint: "free memory in /dev/shm, or start the VM with --boot cold" });
    }
    const t0 = performance.now();
    // The builder's pid in the name: a sweep can tell a dead daemon's build (and end its QEMU) from a live one's.
    const build = join(this.root, `.build-${key}-${process.pid}-${randomBytes(3).toString("hex")}`);
    const ram = join(this.ramDir, `${key}-${randomBytes(4).toString("hex")}.ram`);
    await mkdir(build, { recursive: true, mode: 0o700 });
    await mkdir(this.ramDir, { recursive: true, mode: 0o700 });
    try {
      const disk = inputs.image ? join(build, "disk.qcow2") : undefined;
      if (disk && inputs.image) {
        await createOverlay(inputs.image.path, disk, inputs.image.diskSizeMiB);
      }
      const tpl = templatePlan(plan, { dir: build, label: `mvm-template-${key}`, disk });
      const guest = await launchGuest({ ...tpl, qemuBinary: inputs.qemuBinary, ram: { kind: "file", path: ram, share: true }, helloTimeoutMs: this.o.readyTimeoutMs ?? 60000 });
      try {
        await saveGuestState(guest, join(build, "state"), { ignoreShared: true, timeoutMs: 30000 });
      } finally {
        await guest.kill();
      }
      // The jail made the disk its QEMU's uid's: the template's files are root's again.
      await rm(join(build, "xfer"), { recursive: true, force: true });
      if (disk) await chown(disk, 0, 0).catch(() => undefined);
      const meta: TemplateMeta = { key, qemuBuild: inputs.qemuBuild, builtAt: new Date().toISOString(), buildMs: Math.round(performance.now() - t0), memoryMiB, image: inputs.image?.path, ramFile: ram };
      await writeFile(join(build, "meta.json"), `${JSON.stringify(meta, null, 2)}\n`);
      await rm(join(build, "qemu.log"), { force: true });
      // Owner read-write: QEMU 7.2 opens a private (share=off) mapping's file O_RDWR, and a jailed QEMU, root
      // without capabilities, may not open a 0400 file so. It never writes through a private mapping; a
      // compromised clone could (docs/threat-model.md). QEMU 8.2's rom=off would allow 0400 again.
      await chmod(ram, 0o600);
      try {
        await rename(build, f.dir);
      } catch (e) {
        // Another daemon finished the same template first: theirs is as good, and ours goes.
        const theirs = await this.find(key);
        if (!theirs) throw e;
        await rm(build, { recursive: true, force: true });
        await rm(ram, { force: true });
        return theirs;
      }
      this.o.log?.(`template ${key} built in ${meta.buildMs} ms`);
      void this.sweep();
      return { key, dir: f.dir, stateFile: f.state, ramFile: ram, disk: disk ? f.disk : undefined, meta };
    } catch (e) {
      await rm(build, { recursive: true, force: true });
      await rm(ram, { force: true });
      throw e;
    }
  }

  /** Removes a template (clones running on it keep their mappings; their disks are copies). */
  async remove(key: string, why: string): Promise<void> {
    const f = this.files(key);
    this.o.log?.(`removing template ${key}: ${why}`);
    const meta = await readFile(f.meta, "utf8").then((t) => JSON.parse(t) as TemplateMeta, () => undefined);
    if (meta?.ramFile) await rm(meta.ramFile, { force: true });
    await rm(f.dir, { recursive: true, force: true });
  }

  /** Removes templates unused for days, over the cap, or left half-built by a killed daemon. */
  async sweep(): Promise<void> {
    const entries = await readdir(this.root).catch(() => [] as string[]);
    const kept: Array<{ key: string; used: number }> = [];
    for (const name of entries) {
      if (name.startsWith(".build-")) {
        const pid = Number(/^\.build-[0-9a-f]+-(\d+)-/.exec(name)?.[1]);
        if (pid && isAlive(pid)) continue;
        const dir = join(this.root, name);
        for (const q of findQemusUnder(dir)) killQuietly(q);
        await rm(dir, { recursive: true, force: true });
        continue;
      }
      if (name === "ram") continue;
      const used = (await stat(this.files(name).meta).catch(() => undefined))?.mtimeMs;
      if (used === undefined || Date.now() - used > STALE_MS) await this.remove(name, used === undefined ? "incomplete" : "unused for days");
      else kept.push({ key: name, used });
    }
    kept.sort((a, b) => b.used - a.used);
    for (const t of kept.slice(MAX_TEMPLATES)) await this.remove(t.key, `more than ${MAX_TEMPLATES} templates`);
    // RAM files no template names: a build a killed daemon left, or a removal that stopped half-way.
    const named = new Set((await this.list()).map((t) => t.ramFile));
    for (const name of await readdir(this.ramDir).catch(() => [] as string[])) {
      const path = join(this.ramDir, name);
      const age = Date.now() - ((await stat(path).catch(() => undefined))?.mtimeMs ?? Date.now());
      if (name.endsWith(".ram") && !named.has(path) && age > 10 * 60000) await rm(path, { force: true });
    }
  }

  async list(): Promise<Template[]> {
    const keys = (await readdir(this.root).catch(() => [] as string[])).filter((n) => !n.startsWith(".") && n !== "ram");
    return (await Promise.all(keys.map((k) => this.find(k)))).filter((t): t is Template => t !== undefined);
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

function killQuietly(pid: number): void {
  try {
    process.kill(pid, "SIGKILL");
  } catch {
    /* gone already */
  }
}

function isTmpfs(path: string): boolean {
  try {
    return statfsSync(path).type === 0x01021994;
  } catch {
    return false;
  }
}

function freeMiB(path: string): number | undefined {
  try {
    const s = statfsSync(existsSync(path) ? path : join(path, ".."));
    return Math.floor((s.bavail * s.bsize) / 1048576);
  } catch {
    return undefined;
  }
}
