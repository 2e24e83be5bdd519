// The unprivileged uid each jailed QEMU runs as: one per QEMU, from a reserved range, claimed host-wide (across
// daemons and homes) by creating /run/mvm/ids/<N> exclusively. A claim names its QEMU once spawned and is
// stale when that process is gone (or, unnamed, after a minute); /run is emptied at boot, so claims never
// outlive the host. The range sits above Debian's subordinate ids (SUB_UID_MAX 600100000) and systemd-nspawn's
// (≤ 0x6FFFFFFF), below 2^31; MVM_UID_BASE moves it. Slot 0 is the group every jailed QEMU is in (the
// files all VMs may read: mvm's kernels, images, templates), slots 1..65535 are the VMs'.

import { closeSync, mkdirSync, openSync, readdirSync, readFileSync, unlinkSync, writeFileSync, writeSync } from "node:fs";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { processStartTime } from "../vm/qemu-process.js";

export const DEFAULT_ID_BASE = 0x7a000000;
const SLOTS = 65535;
/** A claim whose QEMU never got named (the spawn failed and its daemon died) is stale after this. */
const UNNAMED_STALE_MS = 60_000;

export interface IdRange {
  base: number;
  /** Where the claims are kept (root-only). */
  dir: string;
}

export function idRange(env: NodeJS.ProcessEnv = process.env): IdRange {
  const base = env.MVM_UID_BASE ? Number(env.MVM_UID_BASE) : DEFAULT_ID_BASE;
  if (!Number.isSafeInteger(base) || base < 1000 || base + SLOTS >= 2 ** 31) {
    throw new RangeError(`MVM_UID_BASE=${env.MVM_UID_BASE} is not a uid from which 65536 ids fit below 2^31`);
  }
  return { base, dir: env.MVM_ID_CLAIMS ?? "/run/mvm/ids" };
}

/** The group of all jailed QEMUs. */
export const sharedGid = (r: IdRange): number => r.base;

interface Claim {
  label: string;
  at: number;
  pid?: number;
  start?: string;
}

/** A claimed id: its uid (also its own gid), named after spawn, released when its QEMU ends. */
export interface IdClaim {
  uid: number;
  /** Records the QEMU that runs as it, so other daemons can tell the claim is live. */
  name(pid: number): void;
  release(): void;
}

function stale(c: Claim | undefined, now: number): boolean {
  if (!c) return true; // unreadable or half-written: its writer died between create and write
  if (c.pid === undefined) return now - c.at > UNNAMED_STALE_MS;
  return processStartTime(c.pid) !== c.start;
}

function readClaim(path: string): Claim | undefined {
  try {
    return JSON.parse(readFileSync(path, "utf8")) as Claim;
  } catch {
    return undefined;
  }
}

/** The slot a label prefers: the same one for the same VM, so its uid is stable in practice. */
const preferred = (label: string): number => (createHash("sha256").update(label).digest().readUInt32BE(0) % SLOTS) + 1;

/** Claims a free uid for the QEMU labelled `label`; undefined when all 65535 are taken. */
export function claimId(r: IdRange, label: string, now = Date.now()): IdClaim | undefined {
  mkdirSync(r.dir, { recursive: true, mode: 0o700 });
  const taken = new Set(readdirSync(r.dir));
  const start = preferred(label);
  for (let i = 0; i < SLOTS; i++) {
    const slot = ((start - 1 + i) % SLOTS) + 1;
    const path = join(r.dir, String(slot));
    if (taken.has(String(slot))) {
      const c = readClaim(path);
      if (!stale(c, now)) continue;
      try {
        unlinkSync(path);
      } catch {
        continue; // another daemon took it over meanwhile
      }
    }
    let fd: number;
    try {
      fd = openSync(path, "wx", 0o600);
    } catch {
      continue; // claimed by another daemon between the listing and now
    }
    const claim: Claim = { label, at: now };
    writeSync(fd, JSON.stringify(claim));
    closeSync(fd);
    return {
      uid: r.base + slot,
      name: (pid) => writeFileSync(path, JSON.stringify({ ...claim, pid, start: processStartTime(pid) })),
      release: () => {
        const c = readClaim(path);
        if (c?.label === label && c.at === now) {
          try {
            unlinkSync(path);
          } catch {
            /* gone already */
          }
        }
      },
    };
  }
  return undefined;
}
