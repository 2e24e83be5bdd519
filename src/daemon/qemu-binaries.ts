// Which QEMU binary a VM gets: the stripped microvm one where it has everything the VM needs, the full one
// otherwise. Each binary is probed once per daemon (its devices, netdevs, accelerators) and the answer kept.

import { chooseBinary, type BinaryChoice } from "../qemu/binary-choice.js";
import { probeBinary, type QemuBinaryInfo } from "../qemu/probe.js";
import type { VmSpec } from "../vmspec/vm-spec.js";
import { isBridged } from "./network-manager.js";

export class QemuBinaries {
  private readonly probes = new Map<string, Promise<QemuBinaryInfo | undefined>>();

  constructor(
    /** From the daemon's configuration only, never from a VM spec. */
    private readonly paths: { full: string; microvm: string },
    private readonly cacheDir: string,
  ) {}

  private probe(path: string): Promise<QemuBinaryInfo | undefined> {
    let p = this.probes.get(path);
    if (!p) this.probes.set(path, (p = probeBinary(path, this.cacheDir).catch(() => undefined)));
    return p;
  }

  /** Which build a binary is (its content's sha256 and version): templates and saved states name it. */
  async build(path: string): Promise<{ sha256: string; version: string } | undefined> {
    const info = await this.probe(path);
    return info && { sha256: info.sha256, version: info.version };
  }

  async choose(accel: "kvm" | "tcg", requested: "auto" | "full" | "microvm", spec?: VmSpec): Promise<BinaryChoice> {
    const [full, microvm] = await Promise.all([this.probe(this.paths.full), this.probe(this.paths.microvm)]);
    const userNet = spec?.network === "user" || spec?.network === "user,restrict";
    const anyNet = userNet || isBridged(spec?.network);
    const needs = {
      accel,
      devices: [
        "virtio-serial-device",
        "virtserialport",
        "virtio-rng-device",
        ...(anyNet ? ["virtio-net-device"] : []),
        ...(spec?.disks?.length || spec?.image ? ["virtio-blk-device"] : []),
        ...(spec?.volumes?.length ? ["virtio-9p-device"] : []),
      ],
      netdevs: userNet ? ["user"] : isBridged(spec?.network) ? ["tap"] : [],
    };
    return chooseBinary(requested, needs, { full, microvm });
  }
}
