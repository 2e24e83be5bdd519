// The QEMU command line of a microVM, from a table of defaults where each entry says why it is there.

import type { PortMapping } from "../vmspec/ports.js";
import type { MachineOptions } from "../plan/machine.js";
import { impliedValue, optList, plainValue } from "./escape.js";

export interface MicrovmSpec {
  /** -name: a label in QEMU's argv, so a reaper can find mvm's QEMUs (and which VM each is). */
  label?: string;
  accel: "kvm" | "tcg";
  /** ACPI on (default): devices found through the DSDT, guest power-off works. Off: QEMU lists the devices on the kernel command line. */
  acpi?: boolean;
  /** Allowlisted machine options (see MachineSchema in src/vmspec/vm-spec.ts). */
  machine?: MachineOptions;
  /**
   * No i8254 PIT and no i8259 PIC unless `machine` asks for them: for a guest told its APIC timer period
   * (TCG with mvm's kernel), which then never touches either.
   */
  noLegacyTimers?: boolean;
  cpus: number;
  memoryMiB: number;
  /**
   * Guest RAM, always a named backend (ram0) so that a saved state loads into any of them: a memfd (cold
   * boots), or a file: a template's, shared (share=on: the template writes it) or privately mapped by a
   * clone (share=off: copy-on-write, the template's pages are never written).
   */
  ram?: { kind: "memfd" } | { kind: "anonymous" } | { kind: "file"; path: string; share: boolean };
  /** Start parked, waiting for a saved state over QMP (-incoming defer): clones, snapshots, resumes. */
  incoming?: boolean;
  /** Under TCG: the CPU model (default qemu64 with ARAT) and the translation buffer in MiB. */
  tcg?: { cpu?: string; tbSizeMiB?: number };
  kernel: string;
  initrd?: string;
  cmdline: string;
  /** Unix socket the host listens on; QEMU connects to it for the agent's virtio-serial port. */
  agentSocket: string;
  /** Unix socket the host listens on for QEMU's QMP monitor (QEMU connects, as for the agent). */
  qmpSocket?: string;
  /** Block devices, in order (/dev/vda, /dev/vdb...). */
  disks?: Array<{ path: string; readOnly: boolean; format: "raw" | "qcow2" }>;
  /** Host folders exported over virtio-9p, mounted by mvm-init as tag mvmN. */
  volumes?: Array<{ hostPath: string; readOnly: boolean }>;
  /** A NIC on QEMU's user-mode network (slirp), with published ports; none when absent. */
  network?: { kind: "user"; restrict: boolean; ports: PortMapping[]; mac: string } | { kind: "tap"; ifname: string; mac: string };
  /** The guest configuration file, handed to mvm-init through fw_cfg. */
  configFile?: string;
  /**
   * Where the serial console goes: QEMU's stdout, a file, or a socket mvm listens on (for an interactive
   * console) with QEMU itself logging everything to a file, connected or not.
   */
  console: { kind: "stdio" } | { kind: "file"; path: string } | { kind: "socket"; path: string; logfile: string };
}

export interface ArgvEntry {
  args: string[];
  reason: string;
}

export function microvmArgv(spec: MicrovmSpec): ArgvEntry[] {
  const e = (reason: string, ...args: string[]): ArgvEntry => ({ args, reason });
  const entries: ArgvEntry[] = [
    ...(spec.label ? [e("mvm's label: a reaper finds QEMUs that mvm started and no record knows", "-name", impliedValue(spec.label, "VM label"))] : []),
    e("no default devices (VGA, NICs, drives): the VM gets only what the spec asks for", "-nodefaults"),
    e("host-wide QEMU config files must not change what mvm built", "-no-user-config"),
    e("headless: no window, no VNC", "-display", "none"),
    e(
      spec.noLegacyTimers
        ? "microvm: no PCI bus or legacy devices, virtio-mmio only, qboot firmware for direct kernel boot; no PIT or PIC either (pit=off,pic=off): the guest knows its APIC timer period and uses neither (10–15 ms less boot under TCG)"
        : "microvm: no PCI bus or legacy devices, virtio-mmio only, qboot firmware for direct kernel boot",
      "-M",
      machineValue(spec),
    ),
    ...accelArgs(spec, e),
  ];
  entries.push(
    e("guest memory, in MiB", "-m", `${spec.memoryMiB}M`),
    ramArgs(spec, e),
    e("guest vCPU count", "-smp", String(spec.cpus)),
    e("a guest reboot or panic ends QEMU instead of looping", "-no-reboot"),
    ...consoleArgs(spec.console, e),
    e("direct kernel boot (qboot; PVH entry when the kernel is an uncompressed vmlinux)", "-kernel", spec.kernel),
  );
  if (spec.initrd) entries.push(e("the initramfs holding mvm-init and the agent", "-initrd", spec.initrd));
  entries.push(
    e("kernel command line (see src/guest/kernel-cmdline.ts for each flag)", "-append", spec.cmdline),
    e("virtio-serial bus for the agent channel", "-device", "virtio-serial-device"),
    e(
      "QEMU connects to the socket mvm already listens on: nothing polls for a socket file, and it reconnects after a host-side restart",
      "-chardev",
      `socket,${optList([["id", "agent"], ["path", spec.agentSocket], ["reconnect", 1]])}`,
    ),
    e("the agent's port, found by name in the guest", "-device", "virtserialport,chardev=agent,name=org.mvm.agent"),
    e("entropy for the guest from the host, so early getrandom() never blocks", "-device", "virtio-rng-device"),
  );
  if (spec.qmpSocket) {
    entries.push(
      e("QMP monitor: QEMU connects to mvm's socket, and reconnects after a host-side restart", "-chardev", `socket,${optList([["id", "qmp"], ["path", spec.qmpSocket], ["reconnect", 1]])}`),
      e("the monitor speaks QMP (JSON), never the human monitor", "-mon", "chardev=qmp,mode=control"),
    );
  }
  (spec.disks ?? []).forEach((d, i) => {
    entries.push(
      e(
        "a disk through -blockdev JSON: no file name can inject an option; QEMU's image locking keeps two VMs from writing one image",
        "-blockdev",
        JSON.stringify({ driver: d.format, "node-name": `disk${i}`, "read-only": d.readOnly, file: { driver: "file", filename: d.path, "read-only": d.readOnly } }),
      ),
      e(
        "its virtio-blk device, with a stable id (vdN) so that QMP can name it (disk limits: block_set_io_throttle); ids are not in the saved state's device paths",
        "-device",
        `virtio-blk-device,id=${blockDeviceId(i)},drive=disk${i}`,
      ),
    );
  });
  (spec.volumes ?? []).forEach((v, i) => {
    entries.push(
      e(
        v.readOnly ? "a shared folder, read-only on the host side (readonly=on)" : "a shared folder (files get the daemon user's ownership)",
        "-fsdev",
        `local,${optList([["id", `fs${i}`], ["path", v.hostPath], ["security_model", "none"], ...(v.readOnly ? [["readonly", true] as [string, boolean]] : [])])}`,
      ),
      e("its virtio-9p device; mvm-init mounts the tag", "-device", `virtio-9p-device,fsdev=fs${i},mount_tag=mvm${i}`),
    );
  });
  const n = spec.network;
  if (n?.kind === "user") {
    const hostfwd = n.ports.map((p): [string, string] => ["hostfwd", `${p.proto}:${p.hostIp}:${p.hostPort}-:${p.guestPort}`]);
    entries.push(
      e(
        n.restrict ? "user-mode network, cut off from everything but the published ports (restrict=on)" : "user-mode network (slirp): outbound TCP/UDP without root; published ports as hostfwd",
        "-netdev",
        `user,${optList([["id", "net0"], ...(n.restrict ? [["restrict", true] as [string, boolean]] : []), ...hostfwd])}`,
      ),
    );
  } else if (n?.kind === "tap") {
    entries.push(e("a tap on the network's bridge, made by mvm before QEMU starts (QEMU runs no scripts)", "-netdev", `tap,${optList([["id", "net0"], ["ifname", n.ifname], ["script", "no"], ["downscript", "no"]])}`));
  }
  if (n) {
    entries.push(e("the guest's NIC, with a MAC derived from the VM's id (stable across restarts)", "-device", `virtio-net-device,${optList([["netdev", "net0"], ["mac", n.mac]])}`));
  }
  if (spec.incoming) entries.push(e("parked: the guest's state arrives later over QMP (migrate-incoming), not from a boot", "-incoming", "defer"));
  if (spec.configFile) {
    entries.push(e("the guest configuration, read by mvm-init through fw_cfg (never on the command line)", "-fw_cfg", optList([["name", "opt/mvm/config"], ["file", spec.configFile]])));
  }
  return entries;
}

/** The QOM id of the VM's i-th virtio-blk device (/dev/vda is vd0): what QMP's block commands take. */
export const blockDeviceId = (i: number): string => `vd${i}`;

export const flattenArgv = (entries: ArgvEntry[]): string[] => entries.flatMap((x) => x.args);

function consoleArgs(c: MicrovmSpec["console"], e: (reason: string, ...args: string[]) => ArgvEntry): ArgvEntry[] {
  const why = "the serial console (kernel and init messages, a shell for mvm console)";
  if (c.kind === "stdio") return [e(why, "-serial", "stdio")];
  // The path after file: is taken whole by QEMU (a doubled comma would stay doubled in the file's name).
  if (c.kind === "file") return [e(why, "-serial", `file:${plainValue(c.path, "console log path")}`)];
  return [
    e(
      "console socket: QEMU connects to mvm (reconnecting after a restart) and logs all output itself, connected or not",
      "-chardev",
      `socket,${optList([["id", "console"], ["path", c.path], ["reconnect", 1], ["logfile", c.logfile], ["logappend", true]])}`,
    ),
    e(why, "-serial", "chardev:console"),
  ];
}

type Entry = (reason: string, ...args: string[]) => ArgvEntry;

/** Measured under TCG on these hosts (docs/performance.md): ARAT lets an idle guest go tickless. */
export const TCG_CPU = "qemu64,+arat";

function accelArgs(spec: MicrovmSpec, e: Entry): ArgvEntry[] {
  if (spec.accel === "kvm") return [e("hardware virtualisation", "-accel", "kvm"), e("expose the host CPU's features to the guest", "-cpu", "host")];
  const tb = spec.tcg?.tbSizeMiB;
  return [
    e(
      tb ? `software emulation (KVM absent or unusable here); a ${tb} MiB translation buffer instead of 1 GiB, for a smaller RSS` : "software emulation: KVM is absent or unusable here",
      "-accel",
      tb ? `tcg,tb-size=${Math.trunc(tb)}` : "tcg",
    ),
    e("qemu64 with ARAT (an always-running APIC timer): the guest can stop its tick when idle (2.3% → 0.5% of a core)", "-cpu", cpuModel(spec.tcg?.cpu ?? TCG_CPU)),
  ];
}

/** A CPU model with its feature list ("qemu64,+arat"): commas are its syntax here, so only plain words pass. */
function cpuModel(model: string): string {
  if (!/^[a-z0-9_-]+(,[+-][a-z0-9_.-]+)*$/i.test(model)) throw new RangeError(`CPU model ${JSON.stringify(model)} is not a model name with +feature/-feature flags`);
  return model;
}

function ramArgs(spec: MicrovmSpec, e: Entry): ArgvEntry {
  const size: [string, string] = ["size", `${spec.memoryMiB}M`];
  const r = spec.ram ?? { kind: "memfd" };
  if (r.kind === "anonymous") {
    return e("guest RAM as anonymous memory: a saved state loads faster into it (reading a memfd's holes allocates pages; anonymous ones map the zero page)", "-object", `memory-backend-ram,${optList([["id", "ram0"], size])}`);
  }
  if (r.kind === "memfd") return e("guest RAM in a memfd: no transparent huge pages to zero on first touch, and a named block any saved state loads into", "-object", `memory-backend-memfd,${optList([["id", "ram0"], size])}`);
  return e(
    r.share ? "guest RAM in a template's file, written through (share=on): clones map it later" : "guest RAM mapped privately from a template's file: pages are shared until the guest writes them",
    "-object",
    `memory-backend-file,${optList([["id", "ram0"], size, ["mem-path", r.path], ["share", r.share]])}`,
  );
}

function machineValue(spec: MicrovmSpec): string {
  const opts: Array<[string, string]> = [];
  const allowed = ["acpi", "pit", "pic", "rtc"] as const;
  const machine: MachineOptions = spec.noLegacyTimers ? { pit: "off", pic: "off", ...spec.machine } : { ...spec.machine };
  for (const key of allowed) {
    const v = machine[key];
    if (v === undefined) continue;
    if (v !== "on" && v !== "off" && v !== "auto") throw new RangeError(`machine option ${key} must be on, off or auto`);
    opts.push([key, v]);
  }
  if (spec.acpi === false && !opts.some(([k]) => k === "acpi")) opts.push(["acpi", "off"]);
  opts.push(["memory-backend", "ram0"]);
  return ["microvm", ...opts.map(([k, v]) => `${k}=${v}`)].join(",");
}
