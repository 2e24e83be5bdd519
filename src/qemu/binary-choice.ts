// Which QEMU binary runs a VM: the stripped qemu-system-x86_64-microvm (10 shared libraries instead of
// ~50, a smaller attack surface) when KVM is real and the VM needs nothing it lacks; else the full binary
// with -M microvm. The choice is recorded with its reason.

import type { QemuBinaryInfo } from "./probe.js";

export interface BinaryNeeds {
  accel: "kvm" | "tcg";
  devices: string[];
  netdevs: string[];
  sandbox?: boolean;
}

export interface BinaryChoice {
  kind: "microvm" | "full";
  path: string;
  reason: string;
  usable: boolean;
  /** The chosen binary has QEMU's seccomp filter (-sandbox). */
  sandbox?: boolean;
}

function lacks(info: QemuBinaryInfo, needs: BinaryNeeds): string | undefined {
  if (!info.accels.includes(needs.accel)) return `it has no ${needs.accel.toUpperCase()} accelerator`;
  const device = needs.devices.find((d) => !info.devices.includes(d));
  if (device) return `it has no ${device} device`;
  const netdev = needs.netdevs.find((n) => !info.netdevs.includes(n));
  if (netdev) return `it has no '${netdev}' network backend`;
  if (needs.sandbox && !info.sandbox) return "it has no -sandbox (seccomp) support";
  return undefined;
}

function pick(
  requested: "auto" | "full" | "microvm",
  needs: BinaryNeeds,
  binaries: { full?: QemuBinaryInfo; microvm?: QemuBinaryInfo },
): BinaryChoice {
  const { full, microvm } = binaries;
  const microvmProblem = microvm ? lacks(microvm, needs) : "it is not installed";
  const fullProblem = full ? lacks(full, needs) : "it is not installed";
  if (requested === "microvm") {
    return { kind: "microvm", path: microvm?.path ?? "", usable: !microvmProblem, reason: microvmProblem ? `the stripped microvm binary cannot run this VM: ${microvmProblem}` : "requested" };
  }
  if (requested === "full") {
    return { kind: "full", path: full?.path ?? "", usable: !fullProblem, reason: fullProblem ? `the full QEMU binary cannot run this VM: ${fullProblem}` : "requested" };
  }
  if (!microvmProblem) return { kind: "microvm", path: microvm!.path, usable: true, reason: "the stripped microvm binary has everything this VM needs (smaller attack surface)" };
  if (!fullProblem) return { kind: "full", path: full!.path, usable: true, reason: `the stripped microvm binary cannot be used: ${microvmProblem}` };
  return { kind: "full", path: full?.path ?? "", usable: false, reason: `no QEMU binary can run this VM: full: ${fullProblem}; microvm: ${microvmProblem}` };
}

export function chooseBinary(...a: Parameters<typeof pick>): BinaryChoice {
  const choice = pick(...a);
  const info = choice.kind === "microvm" ? a[2].microvm : a[2].full;
  return { ...choice, sandbox: info?.sandbox ?? false };
}
