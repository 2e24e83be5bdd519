// The one place a plan becomes a QEMU argv: the kernel command line with its timer hints, the console's
// wiring, the VM's sockets, and every device, each entry with the reason it is there.

import type { GuestArtifacts } from "../guest/artifacts.js";
import { cmdlineString, defaultCmdline, guestNeedsNoPit } from "../guest/kernel-cmdline.js";
import type { TscInfo } from "../host/tsc.js";
import { microvmArgv, type ArgvEntry } from "../qemu/microvm-argv.js";
import { SECCOMP_OPTIONS } from "../jail/jail.js";
import { vmFiles } from "../vm/layout.js";
import type { MachinePlan } from "./machine.js";

export interface ArgvContext {
  artifacts: GuestArtifacts;
  /** The VM's directory: its sockets and logs. */
  dir: string;
  /** The host TSC (timer hints under TCG); undefined where it cannot be read. */
  tsc?: TscInfo;
  /** The configuration file is written (the plan has a config). */
  configFile?: string;
  /** stdio: QEMU's stdout is the console (one-off launches); socket: mvm's console socket and console.log. */
  console: "stdio" | "socket";
}

export function buildArgv(plan: MachinePlan, ctx: ArgvContext): ArgvEntry[] {
  const accel = plan.accel ?? "tcg";
  const files = vmFiles(ctx.dir);
  const acpi = plan.machine?.acpi === "off" ? false : plan.acpi;
  // A user's kernel: its HZ and patches are unknown, so it gets no hints that depend on them.
  const own = plan.kernel ? {} : { kernelHz: ctx.artifacts.kernel.info.hz, kernelPatches: ctx.artifacts.kernel.info.patches };
  const cmdlineCtx = { accel, acpi, tsc: ctx.tsc, ...own };
  const cmdline = plan.cmdline ?? [cmdlineString(defaultCmdline(cmdlineCtx)), plan.append].filter(Boolean).join(" ");
  const argv = microvmArgv({
    label: plan.label,
    accel,
    acpi,
    machine: plan.machine,
    noLegacyTimers: plan.cmdline === undefined && guestNeedsNoPit(cmdlineCtx),
    network: plan.network,
    disks: plan.disks,
    volumes: plan.volumes,
    cpus: plan.cpus ?? 1,
    memoryMiB: plan.memoryMiB ?? 256,
    ram: plan.ram,
    incoming: plan.incoming,
    tcg: plan.tcg,
    kernel: plan.kernel ?? ctx.artifacts.kernel.vmlinux,
    initrd: plan.initrd ?? ctx.artifacts.initramfs.path,
    cmdline,
    agentSocket: files.agentSocket,
    qmpSocket: files.qmpSocket,
    configFile: ctx.configFile,
    console: ctx.console === "stdio" ? { kind: "stdio" } : { kind: "socket", path: files.consoleSocket, logfile: files.consoleLog },
  });
  if (plan.seccomp) {
    argv.push({ args: ["-sandbox", SECCOMP_OPTIONS], reason: "QEMU's seccomp filter: no obsolete syscalls, no privilege changes, no scheduler or memory-locking calls (spawn stays allowed: states are saved and loaded through `exec:cat`)" });
  }
  if (plan.extraArgs) argv.push({ args: plan.extraArgs, reason: "requested by the caller" });
  return argv;
}
