// What a VM is made of, as QEMU and the guest will see it: the input of argv assembly (argv.ts). The
// daemon's plan (vm-plan.ts) produces one from a record; benchmarks and tests write one by hand.

import type { PortMapping } from "../vmspec/ports.js";
import type { GuestConfig } from "../guest/config-file.js";
import type { Readiness } from "../vm/readiness.js";
import type { JailHost } from "../jail/jail.js";

export type MachineOptions = Partial<Record<"acpi" | "pit" | "pic" | "rtc", "on" | "off" | "auto">>;

export type NicPlan = { kind: "user"; restrict: boolean; ports: PortMapping[]; mac: string } | { kind: "tap"; ifname: string; mac: string };

export interface DiskPlan {
  path: string;
  readOnly: boolean;
  format: "raw" | "qcow2";
}

export interface MachinePlan {
  /** The label on QEMU's argv (-name): how a reaper tells mvm's QEMUs, and which VM each is. */
  label?: string;
  accel?: "kvm" | "tcg";
  /**
   * false boots without ACPI: QEMU names the virtio-mmio devices on the kernel command line. The guest then
   * cannot read its configuration file (6.1's fw_cfg driver needs ACPI), so `config` is ignored by it.
   */
  acpi?: boolean;
  machine?: MachineOptions;
  cpus?: number;
  memoryMiB?: number;
  /** Guest RAM backend (default a memfd); a template's file for templates and clones (see MicrovmSpec.ram). */
  ram?: { kind: "memfd" } | { kind: "anonymous" } | { kind: "file"; path: string; share: boolean };
  /** Start parked at -incoming defer: the guest's state is loaded over QMP (clones, snapshots, resumes). */
  incoming?: boolean;
  /** TCG tuning (CPU model, translation buffer MiB); defaults in src/qemu/microvm-argv.ts. */
  tcg?: { cpu?: string; tbSizeMiB?: number };
  /** A kernel of the user's own (vmlinux or bzImage) instead of mvm's; its HZ is unknown, so no lpj hint. */
  kernel?: string;
  /** An initramfs of the user's own instead of mvm's. */
  initrd?: string;
  /** Replaces the default kernel command line. */
  cmdline?: string;
  /** Added to the default kernel command line. */
  append?: string;
  disks?: DiskPlan[];
  volumes?: Array<{ hostPath: string; readOnly: boolean }>;
  /** A NIC; the guest side is configured through `config.network`. */
  network?: NicPlan;
  config?: GuestConfig;
  /** When the VM counts as ready: the agent's hello unless a console pattern is given. */
  readiness?: Readiness;
  /** Appended to QEMU's argv (disks in tests). */
  extraArgs?: string[];
  /** QEMU's own seccomp filter (-sandbox): where the binary has it (src/qemu/probe.ts). */
  seccomp?: boolean;
  /** The jail QEMU starts in (src/jail/jail.ts); none when the daemon does not run as root. */
  jail?: JailHost;
}
