// The flags that describe a VM, shared by `run` and `create`, turned into the one VM spec schema.

import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import type { Command } from "commander";
import { InvalidArgumentError, InvalidSpecError } from "../errors.js";
import type { VmSpecInput } from "../vmspec/vm-spec.js";
import { isVolumeName } from "../vmspec/storage.js";

export interface VmFlags {
  file?: string;
  name?: string;
  env: string[];
  workdir?: string;
  user?: string;
  hostname?: string;
  cpus?: string;
  memory?: string;
  kernel?: string;
  initrd?: string;
  append?: string;
  cmdline?: string;
  accel?: string;
  binary?: string;
  machine?: string;
  network?: string;
  ip?: string;
  publish: string[];
  disk: string[];
  volume: string[];
  image?: string;
  diskSize?: string;
  boot?: string;
  snapshot?: string;
  diskBps?: string;
  diskIops?: string;
  netBps?: string;
  cpuShare?: string;
  cpuMax?: string;
  memoryMax?: string;
  ttl?: string;
  label?: string[];
  json?: boolean;
}

const collect = (value: string, list: string[]) => [...list, value];

export function addVmFlags(cmd: Command): Command {
  return cmd
    .option("-f, --file <spec.json>", "a VM spec file (JSON, docs/vm-spec.md); flags given beside it override its keys")
    .option("--name <name>", "the VM's name (lower-case letters, digits, '-'); generated when left out")
    .option("-e, --env <NAME=VALUE>", "an environment variable for the command (repeatable)", collect, [])
    .option("-w, --workdir <dir>", "working directory of the command")
    .option("-u, --user <user>", "run the command as this user (name or uid)")
    .option("--hostname <name>", "the guest's hostname (default: the VM's name)")
    .option("--cpus <n>", "vCPUs (default 1)")
    .option("--memory <size>", "memory: MiB or with a unit: 256, 512M, 1G (default 256M)")
    .option("--kernel <path>", "boot this vmlinux or bzImage instead of mvm's kernel")
    .option("--initrd <path>", "use this initramfs instead of mvm's")
    .option("--append <args>", "add to the default kernel command line")
    .option("--cmdline <args>", "replace the default kernel command line")
    .option("--accel <accel>", "auto (KVM only where it is real), kvm or tcg")
    .option("--binary <binary>", "auto, full or microvm (the stripped QEMU)")
    .option("--image <name>", "boot this registered image as root (a copy-on-write overlay per VM); debian is built on first use")
    .option("--disk-size <size>", "grow the image's root disk to this size (e.g. 4G), filesystem included")
    .option("--disk <path[:ro]>", "attach a raw or qcow2 image as /dev/vda, /dev/vdb... (repeatable)", collect, [])
    .option("-v, --volume <hostdir:guestdir[:ro]>", "share a host folder, or a named volume (NAME:guestdir, mvm volume ls), over virtio-9p (repeatable)", collect, [])
    .option("--network <mode>", "none (default: no NIC), user (outbound via slirp), user,restrict (published ports only), or a bridged network's name")
    .option("--ip <address>", "the VM's address on a bridged network (default: the next free one)")
    .option("-p, --publish <[ip:]host:guest[/proto]>", "publish a guest port on the host, 127.0.0.1 unless ip says otherwise (repeatable)", collect, [])
    .option("--snapshot <name>", "start as this snapshot's machine (mvm snapshot create); beside it only --name, --hostname, -e, -p, -w, -u and the command")
    .option("--boot <how>", "auto (default: clone a memory template where the VM allows it) or cold (always boot the kernel)")
    .option("--machine <opts>", "microvm machine options: acpi, pit, pic, rtc = on|off|auto (e.g. pit=off,rtc=on)")
    .option("--disk-bps <rate>", "disk bandwidth shared by all the VM's disks, bytes per second: 5M, 512K (mvm limits changes it live)")
    .option("--disk-iops <n>", "disk I/O operations per second, shared by all the VM's disks")
    .option("--net-bps <rate>", "network bandwidth each way, bytes per second (10M); bridged networks only")
    .option("--cpu-share <n>", "relative CPU weight against other VMs, 1 to 10000 (default 100); needs the jail (a root daemon)")
    .option("--cpu-max <cores>", "a cap on the VM's CPU time in cores, 0.01 to vCPUs + 1: 0.5, 1.5; needs the jail")
    .option("--memory-max <size>", "a cap on QEMU's whole memory, guest RAM included (at least --memory + 128M): 768M, 2G; needs the jail")
    .option("--ttl <duration>", "time to live: the VM is killed and removed this long after it is created: 90s, 10m, 1h30m, 2d, or seconds (mvm ttl changes it)")
    .option("-l, --label <KEY=VALUE>", "a label kept with the VM, shown by ps and inspect (repeatable)", collect, [])
    .option("--json", "print JSON on stdout");
}

function parseEnv(list: string[]): Record<string, string> {
  const env: Record<string, string> = {};
  for (const item of list) {
    const eq = item.indexOf("=");
    if (eq <= 0) throw new InvalidArgumentError(`invalid environment entry ${JSON.stringify(item)}`, { hint: "write -e NAME=VALUE" });
    env[item.slice(0, eq)] = item.slice(eq + 1);
  }
  return env;
}

function parseLabels(list: string[]): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const item of list) {
    const eq = item.indexOf("=");
    if (eq <= 0) throw new InvalidArgumentError(`invalid label ${JSON.stringify(item)}`, { hint: "write -l KEY=VALUE" });
    labels[item.slice(0, eq)] = item.slice(eq + 1);
  }
  return labels;
}

/** The file's object, unchecked: the daemon validates the merged spec with the same schema as any other. */
function readSpecFile(path: string | undefined): Record<string, unknown> {
  if (path === undefined) return {};
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    throw new InvalidArgumentError(`cannot read spec file ${path}: ${(e as NodeJS.ErrnoException).code}`, { hint: "check the path given to --file" });
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new InvalidSpecError(`spec file ${path} is not valid JSON: ${(e as Error).message}`, { hint: "see docs/vm-spec.md for the format" });
  }
  if (!value || typeof value !== "object" || Array.isArray(value)) throw new InvalidSpecError(`spec file ${path} must hold one JSON object`, { hint: "see docs/vm-spec.md" });
  return value as Record<string, unknown>;
}

/** "pit=off,rtc=on" -> { pit: "off", rtc: "on" }; the schema then checks keys and values. */
function parseMachine(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of text.split(",")) {
    const [k, v, ...rest] = part.split("=");
    if (!k || v === undefined || rest.length) throw new InvalidArgumentError(`invalid machine option ${JSON.stringify(part)}`, { hint: "write --machine key=value[,key=value], keys acpi, pit, pic, rtc" });
    out[k] = v;
  }
  return out;
}

function parseCount(text: string): number | string {
  return /^\d+$/.test(text) ? Number(text) : text; // the schema names the problem if it is not a number
}

/** Builds the spec; validation (and its error messages) is the schema's, as for every other door. */
export function specFromFlags(flags: VmFlags, command: string[] | undefined): VmSpecInput {
  const spec: Record<string, unknown> = {
    name: flags.name,
    env: flags.env.length ? parseEnv(flags.env) : undefined,
    workdir: flags.workdir,
    user: flags.user,
    hostname: flags.hostname,
    cpus: flags.cpus === undefined ? undefined : parseCount(flags.cpus),
    memory: flags.memory,
    kernel: flags.kernel === undefined ? undefined : resolve(flags.kernel),
    initrd: flags.initrd === undefined ? undefined : resolve(flags.initrd),
    // The daemon has another working directory: host paths travel absolute.
    disks: flags.disk.length ? flags.disk.map((d) => (d.startsWith("/") ? d : resolve(d))) : undefined,
    // NAME:GUESTDIR is a named volume, sent as it is (a relative folder is written ./dir, as with Docker).
    volumes: flags.volume.length ? flags.volume.map((v) => (v.startsWith("/") || isVolumeName(v.split(":")[0]!) ? v : resolve(v))) : undefined,
    append: flags.append,
    cmdline: flags.cmdline,
    accel: flags.accel,
    binary: flags.binary,
    machine: flags.machine === undefined ? undefined : parseMachine(flags.machine),
    network: flags.network,
    ip: flags.ip,
    image: flags.image,
    boot: flags.boot,
    snapshot: flags.snapshot,
    diskSize: flags.diskSize,
    diskBps: flags.diskBps,
    diskIops: flags.diskIops === undefined ? undefined : parseCount(flags.diskIops),
    netBps: flags.netBps,
    cpuShare: flags.cpuShare === undefined ? undefined : parseCount(flags.cpuShare),
    cpuMax: flags.cpuMax,
    memoryMax: flags.memoryMax,
    ports: flags.publish.length ? flags.publish : undefined,
    ttl: flags.ttl === undefined ? undefined : parseCount(flags.ttl),
    labels: flags.label?.length ? parseLabels(flags.label) : undefined,
    command: command && command.length ? command : undefined,
  };
  for (const k of Object.keys(spec)) if (spec[k] === undefined) delete spec[k];
  return { ...readSpecFile(flags.file), ...spec };
}
