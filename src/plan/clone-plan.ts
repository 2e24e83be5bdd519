// Instant start, as plans: which VMs may start from a memory template (and why the others boot cold), the
// template's plan (the VM's without what makes one VM distinct), the key that names a template (any change
// to what QEMU or the guest is made of makes a new one), and a clone's plan (the VM's own, on the
// template's RAM, parked for its state). Pure, like vm-plan.ts.

import { createHash } from "node:crypto";
import type { GuestArtifacts } from "../guest/artifacts.js";
import type { TscInfo } from "../host/tsc.js";
import { flattenArgv } from "../qemu/microvm-argv.js";
import type { VmRecord } from "../store/vm-store.js";
import { buildArgv } from "./argv.js";
import type { VmPlan } from "./vm-plan.js";

/** Why this VM boots cold, or undefined when it can be a clone. */
export function coldReason(rec: VmRecord, plan: VmPlan): string | undefined {
  const s = rec.spec;
  if (s.boot === "cold") return "asked for (boot: cold)";
  if (s.kernel || s.initrd || s.cmdline) return "it has a kernel, initrd or command line of its own";
  // A template per added flag would mostly be built for one VM (and a flag can make the boot fail or hang).
  if (s.append) return "it adds to the kernel command line (append)";
  if (s.ready) return "it is ready on a console line (no mvm agent to hand its identity to)";
  if (s.volumes.length) return "shared folders are mounted at boot";
  if (s.disks.length) return "disks of its own are found at boot";
  if (plan.network?.kind === "tap") return "bridged networks boot cold (a clone would carry the template's MAC and address)";
  if (plan.machine?.acpi === "off") return "without ACPI the guest reads no configuration";
  if (s.image && rec.diskUsed) return "its disk has run a guest since it was made (a clone starts from the template's disk)";
  return undefined;
}

/** The guest's hostname while it is a template; a clone gets its own through the agent. */
export const TEMPLATE_HOSTNAME = "mvm-template";

/**
 * The MAC of every template's NIC, and so of its clones: it is part of the saved device state. Clones are
 * on user networks only (each its own slirp), where no two NICs ever meet.
 */
export const TEMPLATE_MAC = "52:54:00:00:00:01";

/**
 * The template's plan: the VM's, without its hostname, environment, published ports and label. `disk` is
 * the template's own overlay over the image (made by the caller).
 */
export function templatePlan(plan: VmPlan, o: { dir: string; label: string; disk?: string }): VmPlan {
  const nic = plan.network?.kind === "user" ? { ...plan.network, ports: [], mac: TEMPLATE_MAC } : plan.network;
  return {
    ...plan,
    label: o.label,
    dir: o.dir,
    network: nic,
    config: { ...plan.config, hostname: TEMPLATE_HOSTNAME, env: {} },
    disks: o.disk ? [{ path: o.disk, readOnly: false, format: "qcow2" }] : [],
  };
}

export interface KeyInputs {
  /** The QEMU build (sha256 of the binary). */
  qemuBuild: string;
  artifacts: GuestArtifacts;
  tsc?: TscInfo;
  /** The image the template boots from: its path, size and modification time, and the disk size asked for. */
  image?: { path: string; size: number; mtimeMs: number; diskSizeMiB?: number };
}

/**
 * A template's key: a hash of the QEMU build, the image, and the template's whole argv with its own paths
 * left out, which is everything the guest is made of (kernel, initramfs with the agent, command line,
 * machine options, CPU model, memory, vCPUs, devices, network mode, disk size).
 */
export function templateKey(plan: VmPlan, k: KeyInputs): string {
  const dir = "/TEMPLATE";
  const argv = flattenArgv(
    buildArgv(templatePlan(plan, { dir, label: "mvm-template", disk: plan.disks?.length ? `${dir}/disk.qcow2` : undefined }), {
      artifacts: k.artifacts,
      dir,
      tsc: k.tsc,
      configFile: `${dir}/config`,
      console: "socket",
    }),
  );
  const rootResize = plan.config?.root?.resize ?? false;
  return createHash("sha256").update(JSON.stringify({ v: 1, qemu: k.qemuBuild, image: k.image, rootResize, argv })).digest("hex").slice(0, 24);
}

/** A clone's plan: the VM's own (label, sockets, ports, root overlay), its RAM mapped privately from the template's file, parked. */
export function clonePlan(plan: VmPlan, ramFile: string): VmPlan {
  const network = plan.network?.kind === "user" ? { ...plan.network, mac: TEMPLATE_MAC } : plan.network;
  return { ...plan, network, ram: { kind: "file", path: ramFile, share: false }, incoming: true };
}
