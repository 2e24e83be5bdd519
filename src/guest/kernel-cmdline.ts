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
}

export function defaultCmdline(ctx: CmdlineContext): CmdlineFlag[] {
  const flags: CmdlineFlag[] = [
    { flag: "console=ttyS0", reason: "kernel and init messages go to the serial console, which mvm logs" },
    { flag: "quiet", reason: "every console byte is a VM exit (slow under TCG); errors still print" },
    { flag: "panic=-1", reason: "a panicking guest reboots at once, which ends QEMU (-no-reboot): no hung VM" },
    { flag: "reboot=t", reason: "a guest reboot ends QEMU too, even without ACPI (triple fault + -no-reboot)" },
    { flag: "pci=off", reason: "microvm has no PCI bus; mvm's kernel has PCI only for ACPI's sake, so skip probing" },
  ];
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
  return flags;
}

export const cmdlineString = (flags: CmdlineFlag[]): string => flags.map((f) => f.flag).join(" ");
