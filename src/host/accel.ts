// Choosing the accelerator: KVM only where it is real, TCG otherwise, always with the reason.
// Real means /dev/kvm opens read-write and the CPU has VMX or SVM. PVM (kvm_pvm, a paravirtual KVM that
// some cloud VMs expose) does not count: unmodified guests fail or run 50-100x slower under it.

import { accessSync, constants, existsSync, readFileSync } from "node:fs";

export interface AccelChoice {
  chosen: "kvm" | "tcg";
  reason: string;
}

export interface HostFacts {
  kvmDevice: "absent" | "no-access" | "ok";
  pvm: boolean;
  cpuVirtFlags: boolean;
}

export function readHostFacts(): HostFacts {
  let kvmDevice: HostFacts["kvmDevice"] = "absent";
  if (existsSync("/dev/kvm")) {
    try {
      accessSync("/dev/kvm", constants.R_OK | constants.W_OK);
      kvmDevice = "ok";
    } catch {
      kvmDevice = "no-access";
    }
  }
  let cpuinfo = "";
  try {
    cpuinfo = readFileSync("/proc/cpuinfo", "utf8");
  } catch {
    /* not Linux */
  }
  return { kvmDevice, pvm: existsSync("/sys/module/kvm_pvm"), cpuVirtFlags: /^flags\s*:.*\b(vmx|svm)\b/m.test(cpuinfo) };
}

/** Decides the accelerator for a request of auto, kvm or tcg; throws nothing, the caller checks `chosen`. */
export function chooseAccel(requested: "auto" | "kvm" | "tcg", facts: HostFacts): AccelChoice & { usable: boolean } {
  const kvmProblem =
    facts.kvmDevice === "absent"
      ? "/dev/kvm does not exist (no KVM module, or no nested virtualisation)"
      : facts.kvmDevice === "no-access"
        ? "/dev/kvm is not readable and writable by this user (add it to the kvm group)"
        : facts.pvm
          ? "/dev/kvm is PVM (kvm_pvm loaded): unmodified guests run 50-100x slower or fail"
          : !facts.cpuVirtFlags
            ? "the CPU shows no vmx/svm flag, so /dev/kvm cannot run ordinary guests"
            : undefined;
  if (requested === "tcg") return { chosen: "tcg", reason: "requested", usable: true };
  if (requested === "kvm") {
    return kvmProblem ? { chosen: "kvm", reason: kvmProblem, usable: false } : { chosen: "kvm", reason: "requested", usable: true };
  }
  return kvmProblem
    ? { chosen: "tcg", reason: `${kvmProblem}; using software emulation`, usable: true }
    : { chosen: "kvm", reason: "/dev/kvm is usable and the CPU has hardware virtualisation", usable: true };
}
