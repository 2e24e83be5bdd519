// The daemon's planning step: (record, host facts) → what to launch. Pure: no files, no processes, so every
// branch (networks, disks, shares, images, readiness) is unit-tested without QEMU. The spec was checked
// when the VM was created (src/vmspec/); the record adds what create allocated (bridged address, tap).

import type { GuestArtifacts } from "../guest/artifacts.js";
import type { GuestConfig } from "../guest/config-file.js";
import type { VmRecord } from "../store/vm-store.js";
import { vmDir, vmFiles } from "../vm/layout.js";
import type { Readiness } from "../vm/readiness.js";
import type { DiskPlan, MachinePlan, NicPlan } from "./machine.js";
import type { JailHost } from "../jail/jail.js";

export interface HostFacts {
  /** The daemon's home: VM directories live under it. */
  home: string;
  accel: "kvm" | "tcg";
  qemuBinary: string;
  artifacts: GuestArtifacts;
  /** Nameservers a bridged guest should use (the host's, loopback ones left out). */
  nameservers: string[];
  /** The chosen binary has QEMU's seccomp filter. */
  seccomp?: boolean;
  jail?: JailHost;
}

export interface VmPlan extends MachinePlan {
  dir: string;
  qemuBinary: string;
  artifacts: GuestArtifacts;
}

/** The label every QEMU of a daemon VM carries (-name): `mvm-<id>`. */
export const vmLabel = (id: string): string => `mvm-${id}`;

/**
 * The plan moved to another directory under another label (a warm pool's parked QEMU): the root overlay is
 * the one path a plan takes from its directory, so it moves too. Keeping the old path made a parked QEMU
 * open the disk of the VM whose plan refilled the pool, and the VM that took it run on that disk.
 */
export function planIn(plan: VmPlan, dir: string, label: string): VmPlan {
  const overlay = vmFiles(plan.dir).rootOverlay;
  return { ...plan, dir, label, disks: plan.disks?.map((d) => (d.path === overlay ? { ...d, path: vmFiles(dir).rootOverlay } : d)) };
}

/** A locally administered MAC from the VM's id: stable across restarts, distinct between VMs. */
export const macFor = (id: string): string => `52:54:00:${id.slice(0, 6).match(/../g)!.join(":")}`;

// slirp's fixed addresses: the guest 10.0.2.15, the host's loopback as 10.0.2.2, its DNS relay 10.0.2.3.
const SLIRP = { iface: "eth0", address: "10.0.2.15/24", gateway: "10.0.2.2", dns: ["10.0.2.3"] };

export function planVm(rec: VmRecord, host: HostFacts): VmPlan {
  const spec = rec.spec;
  const dir = vmDir(host.home, rec.id);
  const userNet = spec.network === "user" || spec.network === "user,restrict";
  const bridged = rec.bridged;
  const nic: NicPlan | undefined = userNet
    ? { kind: "user", restrict: spec.network === "user,restrict", ports: spec.ports ?? [], mac: macFor(rec.id) }
    : bridged
      ? { kind: "tap", ifname: bridged.tap, mac: macFor(rec.id) }
      : undefined;
  const config: GuestConfig = {
    hostname: spec.hostname,
    env: spec.env,
    network: userNet ? SLIRP : bridged ? { iface: "eth0", address: `${bridged.ip}/${bridged.prefix}`, gateway: bridged.gateway, dns: host.nameservers } : undefined,
    // 9p tags are mvm0, mvm1...: the order of the spec's volumes, the same on QEMU's side (argv.ts).
    mounts: (spec.volumes ?? []).map((v, i) => ({ tag: `mvm${i}`, path: v.guestPath, readOnly: v.readOnly })),
    // An image is the root: init mounts it and switch_roots, growing it first when diskSize asked.
    root: spec.image ? { device: "/dev/vda", resize: spec.diskSizeMiB !== undefined } : undefined,
  };
  // The image's overlay (made at create) is /dev/vda; the spec's own disks follow it.
  const disks: DiskPlan[] = [...(spec.image ? [{ path: vmFiles(dir).rootOverlay, readOnly: false, format: "qcow2" as const }] : []), ...(spec.disks ?? [])];
  const readiness: Readiness = spec.ready ? { kind: "console", pattern: spec.ready.consoleLine } : { kind: "agent" };
  return {
    label: vmLabel(rec.id),
    dir,
    qemuBinary: host.qemuBinary,
    artifacts: host.artifacts,
    accel: host.accel,
    cpus: spec.cpus,
    memoryMiB: spec.memoryMiB,
    machine: spec.machine,
    kernel: spec.kernel,
    initrd: spec.initrd,
    append: spec.append,
    cmdline: spec.cmdline,
    config,
    disks,
    volumes: spec.volumes ?? [],
    network: nic,
    readiness,
    seccomp: host.seccomp,
    jail: host.jail,
  };
}
