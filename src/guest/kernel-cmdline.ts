// The default guest kernel command line: one entry per flag with the reason it is there. Nothing
// VM-specific or secret goes here (that travels in the fw_cfg configuration file instead).

import type { TscInfo } from "../host/tsc.js";

export interface CmdlineFlag {
  flag: string;
  reason: string;
}

export interface CmdlineContext {
  accel: "kvm" | "tcg";
  /** false when the machine has no ACPI tables. */
  acpi?: boolean;
  /** The host TSC, for timer hints under TCG. */
  tsc?: TscInfo;
  /** CONFIG_HZ of the guest kernel when known (mvm's own kernel): needed for lpj. */
  kernelHz?: number;
  /** The patches mvm's own kernel carries (guest/kernel/patches, by file name); none for a user's kernel. */
  kernelPatches?: readonly string[];
}

/** QEMU's emulated local APIC timer counts at 1 GHz under TCG (hw/intc/apic.c: one count per ns). */
export const TCG_APIC_TIMER_HZ = 1_000_000_000;

const hasPatch = (ctx: CmdlineContext, prefix: string): boolean => (ctx.kernelPatches ?? []).some((p) => p.startsWith(prefix));

/** True when the command line tells the kernel its APIC timer period (TCG, mvm's kernel, HZ known). */
const knowsApicTimer = (ctx: CmdlineContext): boolean => ctx.accel === "tcg" && !!ctx.kernelHz && hasPatch(ctx, "0001-");

/**
 * The guest then calibrates nothing against the PIT: it is told its TSC and APIC timer rates, and the
 * kernel's apic_needs_pit() then leaves the PIT alone, so the machine can go without one (and its PIC).
 */
export const guestNeedsNoPit = (ctx: CmdlineContext): boolean => knowsApicTimer(ctx) && !!ctx.tsc;

export function defaultCmdline(ctx: CmdlineContext): CmdlineFlag[] {
  const flags: CmdlineFlag[] = [
    { flag: "console=ttyS0", reason: "kernel and init messages go to the serial console, which mvm logs" },
    { flag: "quiet", reason: "every console byte is a VM exit (slow under TCG); errors still print" },
    { flag: "panic=-1", reason: "a panicking guest reboots at once, which ends QEMU (-no-reboot): no hung VM" },
    { flag: "reboot=t", reason: "a guest reboot ends QEMU too, even without ACPI (triple fault + -no-reboot)" },
    { flag: "pci=off", reason: "microvm has no PCI bus; mvm's kernel has PCI only for ACPI's sake, so skip probing" },
  ];
  if (hasPatch(ctx, "0002-")) {
    flags.push({ flag: "init_poison=off", reason: "do not poison freed boot code (guest/kernel/patches/0002): under TCG the writes discard ~6,000 translated blocks, ~40 ms" });
  }
  if (ctx.acpi === false) {
    // Devices then come from virtio_mmio.device= arguments QEMU appends. fw_cfg cannot work without ACPI
    // in 6.1 (its driver takes the ACPI global lock), so such a guest gets no configuration file.
    flags.push({ flag: "acpi=off", reason: "the machine has no ACPI tables: do not look for them (and do not warn)" });
  }
  if (ctx.accel === "tcg" && ctx.tsc) {
    const khz = ctx.tsc.khz;
    flags.push(
      { flag: `tsc_early_khz=${khz}`, reason: `skip TSC calibration against the emulated PIT, which can hang under TCG (host TSC from ${ctx.tsc.source})` },
      { flag: "tsc=reliable", reason: "trust the TSC instead of watchdog-checking it against slow emulated clocks" },
      { flag: "no_timer_check", reason: "skip the IO-APIC timer check, another calibration that stalls under TCG" },
    );
    if (ctx.kernelHz) {
      flags.push({
        flag: `lpj=${Math.round((khz * 1000) / ctx.kernelHz)}`,
        reason: `skip delay-loop calibration (host TSC kHz × 1000 / guest HZ ${ctx.kernelHz}); only for kernels whose HZ is known`,
      });
    }
  }
  if (knowsApicTimer(ctx)) {
    flags.push({
      flag: `lapic_timer_period=${Math.round(TCG_APIC_TIMER_HZ / ctx.kernelHz!)}`,
      reason: "skip the 100 ms APIC timer calibration (guest/kernel/patches/0001): QEMU's TCG APIC timer counts at 1 GHz, so 1e9 / HZ per tick; KVM calibrates",
    });
  }
  if (ctx.accel === "tcg") {
    flags.push({ flag: "noreplace-smp", reason: "a 1-vCPU kernel would rewrite ~6,000 lock prefixes one by one, each a write TCG must retranslate around (~80 ms); a lock costs nothing extra under TCG" });
  }
  return flags;
}

export const cmdlineString = (flags: CmdlineFlag[]): string => flags.map((f) => f.flag).join(" ");
