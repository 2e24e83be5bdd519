// One schema for a VM, whichever door it comes through: CLI flags, a config file, the HTTP API or the
// library. Unknown keys are refused. checkSpec() turns what a user wrote into a resolved spec: defaults
// filled in, sizes parsed, files checked.

import { Type, type Static } from "@sinclair/typebox";
import { InvalidSpecError } from "../errors.js";
import { checkAgainst } from "./schema-check.js";
import { checkKernelFile, checkReadableFile } from "./kernel-file.js";
import { parsePort, type PortMapping } from "./ports.js";
import { parseDisk, parseVolume, type DiskSpec, type NamedVolume, type VolumeSpec } from "./storage.js";
import { parseMemoryMiB } from "./size.js";
import { checkLimits } from "./limits.js";
import { parseDurationMs } from "./duration.js";

import { NAME_PATTERN } from "./names.js";

export { NAME_PATTERN };
const ENV_NAME_PATTERN = "^[A-Za-z_][A-Za-z0-9_]*$";

/**
 * Environment variables (a VM's, a command's): names as a shell takes them, so no name can carry a '=' (or
 * anything else) into another variable when the agent joins NAME=VALUE.
 */
export const EnvSchema = Type.Record(Type.String({ pattern: ENV_NAME_PATTERN }), Type.String(), {
  additionalProperties: false,
  description: "environment variable names: letters, digits and _, not starting with a digit",
});

/** Labels: a VM's own key/value notes (an E2B sandbox's metadata), kept in its record and shown by ps and inspect. */
export const LabelsSchema = Type.Record(Type.String({ pattern: "^[A-Za-z0-9_.:/-]{1,128}$" }), Type.String({ maxLength: 1024 }), {
  additionalProperties: false,
  maxProperties: 64,
  description: "key/value labels (at most 64; keys: letters, digits and _ . : / -, at most 128; values at most 1024 characters)",
});

const OnOffAuto = Type.Union([Type.Literal("on"), Type.Literal("off"), Type.Literal("auto")]);

/**
 * The -M microvm options a spec may set: an allowlist with typed values, nothing passed through as text.
 * mvm's guest needs ACPI for its configuration (fw_cfg); rtc=off under TCG can hang the boot.
 */
export const MachineSchema = Type.Object(
  { acpi: Type.Optional(OnOffAuto), pit: Type.Optional(OnOffAuto), pic: Type.Optional(OnOffAuto), rtc: Type.Optional(OnOffAuto) },
  { additionalProperties: false },
);
export type MachineOptions = Static<typeof MachineSchema>;

export const VmSpecSchema = Type.Object(
  {
    name: Type.Optional(Type.String({ pattern: NAME_PATTERN, description: "lower-case letters, digits and '-', at most 63" })),
    cpus: Type.Optional(Type.Integer({ minimum: 1, maximum: 64 })),
    memory: Type.Optional(Type.Union([Type.Integer(), Type.String()], { description: "MiB, or with a unit: 256M, 1G" })),
    kernel: Type.Optional(Type.String({ minLength: 1, description: "a vmlinux or bzImage of your own" })),
    initrd: Type.Optional(Type.String({ minLength: 1 })),
    append: Type.Optional(Type.String({ description: "added to the default kernel command line" })),
    cmdline: Type.Optional(Type.String({ description: "replaces the default kernel command line" })),
    accel: Type.Optional(Type.Union([Type.Literal("auto"), Type.Literal("kvm"), Type.Literal("tcg")])),
    binary: Type.Optional(Type.Union([Type.Literal("auto"), Type.Literal("full"), Type.Literal("microvm")])),
    hostname: Type.Optional(Type.String({ pattern: "^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$" })),
    machine: Type.Optional(MachineSchema),
    network: Type.Optional(
      Type.String({
        pattern: "^(none|user|user,restrict|[a-z0-9][a-z0-9-]{0,62})$",
        description: "none: no NIC; user: slirp, outbound TCP/UDP; user,restrict: only published ports; NAME: a bridged network (mvm network create)",
      }),
    ),
    ip: Type.Optional(Type.String({ description: "the VM's address on a bridged network (default: the next free one)" })),
    image: Type.Optional(Type.String({ pattern: NAME_PATTERN, description: "a registered disk image to boot as root (a copy-on-write overlay per VM)" })),
    diskSize: Type.Optional(Type.Union([Type.Integer(), Type.String()], { description: "grow the image's root disk to this size: 4G, 10240 (MiB)" })),
    disks: Type.Optional(Type.Array(Type.String({ minLength: 1 }), { description: "PATH[:ro|:rw]: raw or qcow2 images, /dev/vda, /dev/vdb... in order" })),
    volumes: Type.Optional(Type.Array(Type.String({ minLength: 1 }), { description: "HOSTDIR:GUESTDIR[:ro], or NAME:GUESTDIR[:ro] for a named volume (mvm volume create): shared folders over virtio-9p" })),
    ports: Type.Optional(Type.Array(Type.String(), { description: "[HOSTIP:]HOSTPORT:GUESTPORT[/tcp|udp]; needs a user network" })),
    command: Type.Optional(Type.Array(Type.String(), { minItems: 1, description: "run when the VM is ready; the VM powers off when it ends" })),
    env: Type.Optional(EnvSchema),
    workdir: Type.Optional(Type.String({ minLength: 1 })),
    user: Type.Optional(Type.String({ minLength: 1 })),
    snapshot: Type.Optional(Type.String({ pattern: NAME_PATTERN, description: "start from this snapshot (mvm snapshot create): its machine, memory and disk; only name, hostname, env, ports, command, workdir and user may be given beside it" })),
    boot: Type.Optional(
      Type.Union([Type.Literal("auto"), Type.Literal("cold")], {
        description: "auto (default): start from a memory template where the VM allows it; cold: always boot the kernel (clones share memory pages with each other)",
      }),
    ),
    diskBps: Type.Optional(Type.Union([Type.Integer(), Type.String()], { description: "disk bandwidth, shared by all the VM's disks: bytes per second, or with a unit: 5M, 512K (powers of 1024)" })),
    diskIops: Type.Optional(Type.Integer({ description: "disk I/O operations per second, shared by all the VM's disks" })),
    netBps: Type.Optional(Type.Union([Type.Integer(), Type.String()], { description: "network bandwidth each way, on a bridged network only (tc on its tap): bytes per second, or 10M" })),
    cpuShare: Type.Optional(Type.Integer({ description: "relative CPU weight against other VMs, 1 to 10000 (default 100; cgroup v2 cpu.weight, v1 cpu.shares = weight × 1024 / 100); needs the jail's control groups" })),
    cpuMax: Type.Optional(Type.Union([Type.Number(), Type.String()], { description: "a cap on QEMU's CPU time in cores, 0.01 to vCPUs + 1 (the jail's default cap): 1.5, \"0.3\"; needs the jail's control groups" })),
    memoryMax: Type.Optional(Type.Union([Type.Integer(), Type.String()], { description: "a cap on QEMU's whole memory, guest RAM included: 768M, 2G, or bytes; at least memory + 128 MiB; needs the jail's control groups" })),
    ttl: Type.Optional(Type.Union([Type.Integer(), Type.String()], { description: "time to live: the VM is killed and removed this long after it is created: seconds, or 90s, 10m, 1h30m, 2d (mvm ttl changes it)" })),
    labels: Type.Optional(LabelsSchema),
    ready: Type.Optional(
      Type.Object(
        { consoleLine: Type.String({ minLength: 1, maxLength: 1000, description: "a regular expression matched against the serial console" }) },
        { additionalProperties: false, description: "when the VM counts as ready, for an initrd without mvm's agent (default: the agent's hello)" },
      ),
    ),
  },
  { additionalProperties: false },
);

export type VmSpecInput = Static<typeof VmSpecSchema>;

export interface VmSpec {
  name: string;
  cpus: number;
  memoryMiB: number;
  kernel?: string;
  initrd?: string;
  append?: string;
  cmdline?: string;
  accel: "auto" | "kvm" | "tcg";
  binary: "auto" | "full" | "microvm";
  hostname: string;
  machine: MachineOptions;
  /** "none", "user", "user,restrict", or the name of a bridged network. */
  network: string;
  ip?: string;
  ports: PortMapping[];
  image?: string;
  diskSizeMiB?: number;
  disks: DiskSpec[];
  volumes: VolumeSpec[];
  command?: string[];
  env: Record<string, string>;
  workdir?: string;
  user?: string;
  /** Ready on a console line instead of the agent's hello (a user's own initrd). */
  ready?: { consoleLine: string };
  /** auto: clone a memory template where the VM allows it (docs/instant-start.md); cold: always boot. */
  boot: "auto" | "cold";
  /** The snapshot the VM starts from (its first start restores it). */
  snapshot?: string;
  /** Disk bandwidth (bytes/s) and IOPS, one QEMU throttle group for all the VM's disks (src/vmspec/limits.ts). */
  diskBps?: number;
  diskIops?: number;
  /** Network bandwidth (bytes/s) each way, tc on a bridged VM's tap. */
  netBps?: number;
  /** CPU weight (1..10000), CPU cap (cores) and memory cap (bytes, guest RAM included): the VM's control group. */
  cpuShare?: number;
  cpuMax?: number;
  memoryMax?: number;
  /** Time to live, from creation (the record's expiresAt is the end time in force). */
  ttlMs?: number;
  labels?: Record<string, string>;
}

/** Validates input against the schema; every problem is named with its path. */
export function validateSpec(input: unknown): VmSpecInput {
  return checkAgainst(VmSpecSchema, input, { what: "VM spec", hint: "see docs/vm-spec.md for the fields and their forms", error: InvalidSpecError });
}

/** A short random name (Docker-like) for VMs created without one. */
export function generateName(taken: (name: string) => boolean): string {
  const words = ["amber", "brisk", "calm", "deft", "eager", "fleet", "glad", "hale", "keen", "lucid", "merry", "nimble", "quick", "swift", "vivid"];
  const things = ["otter", "heron", "lynx", "finch", "marten", "osprey", "wren", "ibex", "vole", "newt", "kite", "stoat", "tern", "shrew", "gecko"];
  for (;;) {
    const pick = (a: string[]) => a[Math.floor(Math.random() * a.length)]!;
    const name = `${pick(words)}-${pick(things)}-${Math.floor(Math.random() * 1000)}`;
    if (!taken(name)) return name;
  }
}

export function checkSpec(input: unknown, options: { nameTaken?: (name: string) => boolean; volume?: (name: string) => NamedVolume } = {}): VmSpec {
  const s = validateSpec(input);
  if (s.append !== undefined && s.cmdline !== undefined) {
    throw new InvalidSpecError("append and cmdline cannot be used together", { hint: "append adds to the default kernel command line, cmdline replaces it" });
  }
  const ports = (s.ports ?? []).map(parsePort);
  const net = s.network ?? "none";
  if (ports.length && !net.startsWith("user")) {
    throw new InvalidSpecError("publishing ports needs a user network", { hint: "add --network user (or user,restrict to allow nothing but the published ports); VMs on a bridged network are reached at their address" });
  }
  if (s.ip !== undefined && (net === "none" || net.startsWith("user"))) throw new InvalidSpecError("--ip needs a bridged network", { hint: "add --network NAME (mvm network create NAME)" });
  const taken = new Set<string>();
  for (const p of ports) {
    const key = `${p.hostIp}:${p.hostPort}/${p.proto}`;
    if (taken.has(key)) throw new InvalidSpecError(`host port ${key} is published twice`, { hint: "give each mapping its own host port" });
    taken.add(key);
  }
  if (s.diskSize !== undefined && s.image === undefined) throw new InvalidSpecError("diskSize grows an image's root disk, and no image is given", { hint: "add --image NAME" });
  const volumes = (s.volumes ?? []).map((v) => parseVolume(v, options.volume));
  if (new Set(volumes.map((v) => v.guestPath)).size !== volumes.length) throw new InvalidSpecError("two shared folders have the same guest path", { hint: "give each -v its own GUESTDIR" });
  if (s.ready) {
    try {
      new RegExp(s.ready.consoleLine, "m");
    } catch (e) {
      throw new InvalidSpecError(`ready.consoleLine is not a valid regular expression: ${(e as Error).message}`, { hint: "give a JavaScript regular expression, e.g. \"login:\"" });
    }
    if (s.command) throw new InvalidSpecError("a VM ready on a console line has no agent to run its command", { hint: "drop ready to use mvm's agent, or put the command in your initrd" });
  }
  for (const key of ["kernel", "initrd", "append", "cmdline"] as const) {
    // eslint-disable-next-line no-control-regex -- matching control characters is the point
    if (s[key] !== undefined && /[\x00-\x1f\x7f]/.test(s[key])) throw new InvalidSpecError(`${key} contains control characters (a NUL or newline cannot reach QEMU's argv)`, { hint: `remove them from ${key}` });
  }
  const memoryMiB = parseMemoryMiB(s.memory ?? 256);
  const limits = checkLimits(s, { network: net, disks: (s.image === undefined ? 0 : 1) + (s.disks?.length ?? 0), cpus: s.cpus ?? 1, memoryMiB });
  if (s.kernel) checkKernelFile(s.kernel);
  if (s.initrd) checkReadableFile(s.initrd, "initrd");
  const name = s.name ?? generateName(options.nameTaken ?? (() => false));
  return {
    name,
    cpus: s.cpus ?? 1,
    memoryMiB,
    kernel: s.kernel,
    initrd: s.initrd,
    append: s.append,
    cmdline: s.cmdline,
    accel: s.accel ?? "auto",
    binary: s.binary ?? "auto",
    hostname: s.hostname ?? (name.length <= 63 && !name.endsWith("-") ? name : "mvm"),
    machine: s.machine ?? {},
    network: s.network ?? "none",
    ip: s.ip,
    ports,
    image: s.image,
    diskSizeMiB: s.diskSize === undefined ? undefined : parseMemoryMiB(s.diskSize, { min: 64, max: 64 * 1024 * 1024 }),
    disks: (s.disks ?? []).map(parseDisk),
    volumes,
    command: s.command,
    env: s.env ?? {},
    workdir: s.workdir,
    user: s.user,
    ready: s.ready,
    boot: s.boot ?? "auto",
    ...(s.ttl === undefined ? {} : { ttlMs: parseDurationMs(s.ttl) }),
    ...(s.labels && Object.keys(s.labels).length ? { labels: s.labels } : {}),
    ...limits,
  };
}
