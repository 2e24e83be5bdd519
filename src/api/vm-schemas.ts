// The wire contract for VMs: the spec a client sends (the one schema every door uses, from src/vmspec/),
// the checked spec and the record the daemon answers with, and what following a VM's command streams.

import { Type, type Static } from "@sinclair/typebox";
import { MachineSchema, VmSpecSchema } from "../vmspec/vm-spec.js";
import { AppliedLimitsSchema } from "./limit-schemas.js";

export { VmSpecSchema };
export type VmSpecInput = Static<typeof VmSpecSchema>;

const Nullable = <T extends Parameters<typeof Type.Union>[0][number]>(t: T) => Type.Union([t, Type.Null()]);

export const PortMappingSchema = Type.Object({ hostIp: Type.String(), hostPort: Type.Integer(), guestPort: Type.Integer(), proto: Type.Union([Type.Literal("tcp"), Type.Literal("udp")]) });

/** The spec as checked: defaults filled in, sizes in MiB, ports, disks and folders parsed. */
export const CheckedSpecSchema = Type.Object({
  name: Type.String(),
  cpus: Type.Integer(),
  memoryMiB: Type.Integer(),
  kernel: Type.Optional(Type.String()),
  initrd: Type.Optional(Type.String()),
  append: Type.Optional(Type.String()),
  cmdline: Type.Optional(Type.String()),
  accel: Type.Union([Type.Literal("auto"), Type.Literal("kvm"), Type.Literal("tcg")]),
  binary: Type.Union([Type.Literal("auto"), Type.Literal("full"), Type.Literal("microvm")]),
  hostname: Type.String(),
  machine: MachineSchema,
  network: Type.String(),
  ip: Type.Optional(Type.String()),
  ports: Type.Array(PortMappingSchema),
  image: Type.Optional(Type.String()),
  diskSizeMiB: Type.Optional(Type.Integer()),
  disks: Type.Array(Type.Object({ path: Type.String(), readOnly: Type.Boolean(), format: Type.Union([Type.Literal("raw"), Type.Literal("qcow2")]) })),
  volumes: Type.Array(Type.Object({ hostPath: Type.String(), guestPath: Type.String(), readOnly: Type.Boolean(), volume: Type.Optional(Type.String({ description: "the named volume it is (its hostPath as registered when the VM was created)" })) })),
  command: Type.Optional(Type.Array(Type.String())),
  env: Type.Record(Type.String(), Type.String()),
  workdir: Type.Optional(Type.String()),
  user: Type.Optional(Type.String()),
  ready: Type.Optional(Type.Object({ consoleLine: Type.String() })),
  boot: Type.Union([Type.Literal("auto"), Type.Literal("cold")]),
  snapshot: Type.Optional(Type.String()),
  diskBps: Type.Optional(Type.Integer({ description: "bytes per second" })),
  diskIops: Type.Optional(Type.Integer()),
  netBps: Type.Optional(Type.Integer({ description: "bytes per second, each way" })),
  cpuShare: Type.Optional(Type.Integer({ description: "relative CPU weight, 1 to 10000" })),
  cpuMax: Type.Optional(Type.Number({ description: "cores" })),
  memoryMax: Type.Optional(Type.Integer({ description: "bytes, guest RAM included" })),
  ttlMs: Type.Optional(Type.Integer({ description: "time to live asked at create, ms (expiresAt is the end time in force)" })),
  labels: Type.Optional(Type.Record(Type.String(), Type.String())),
});

export const VmStateSchema = Type.Union([
  Type.Literal("created"),
  Type.Literal("starting"),
  Type.Literal("running"),
  Type.Literal("paused"),
  Type.Literal("stopping"),
  Type.Literal("stopped"),
  Type.Literal("crashed"),
  Type.Literal("suspended"),
]);

export const VmExitSchema = Type.Object({
  exitCode: Nullable(Type.Integer()),
  signal: Type.Union([Type.Integer(), Type.String(), Type.Null()]),
  status: Type.Optional(Type.Integer()),
  at: Type.String(),
  reason: Type.String(),
  message: Type.Optional(Type.String({ description: "what the agent said about the command's end, or the error that lost it" })),
});

export const ChoiceSchema = Type.Object({ chosen: Type.String(), reason: Type.String() });

/** What clients see of a VM: the record as stored plus derived fields. `inspect` prints this. */
export const VmViewSchema = Type.Object({
  id: Type.String(),
  name: Type.String(),
  owner: Type.Optional(Type.String({ description: "the token that created it; absent for the host's root" })),
  state: VmStateSchema,
  spec: CheckedSpecSchema,
  lastExit: Type.Optional(VmExitSchema),
  commandExit: Type.Optional(VmExitSchema),
  createdAt: Type.String(),
  updatedAt: Type.String(),
  pid: Type.Optional(Type.Integer()),
  pidStart: Type.Optional(Type.String()),
  accel: Type.Optional(ChoiceSchema),
  binary: Type.Optional(Type.Object({ kind: Type.String(), path: Type.String(), reason: Type.String() })),
  argv: Type.Optional(Type.Array(Type.String())),
  timings: Type.Optional(
    Type.Object({
      startedAt: Type.Optional(Type.String()),
      qmpMs: Type.Optional(Type.Number()),
      restoredMs: Type.Optional(Type.Number({ description: "a clone, pool take, snapshot or resume: when its saved state was in" })),
      helloMs: Type.Optional(Type.Number()),
      guestInitUptimeMs: Type.Optional(Type.Number()),
      guestHelloUptimeMs: Type.Optional(Type.Number()),
    }),
  ),
  kernelRelease: Type.Optional(Type.String()),
  boot: Type.Optional(
    Type.Object(
      {
        how: Type.Union([Type.Literal("cold"), Type.Literal("clone"), Type.Literal("pool"), Type.Literal("snapshot"), Type.Literal("resume")]),
        reason: Type.String(),
        template: Type.Optional(Type.String()),
        readyMs: Type.Optional(Type.Number()),
      },
      { description: "how the last start went: a cold boot, a clone of a memory template, a parked QEMU from the warm pool, a snapshot's or a suspend's state; why; start request → ready" },
    ),
  ),
  suspended: Type.Optional(
    Type.Object({
      stateFile: Type.String(),
      qemuBuild: Type.Object({ sha256: Type.String(), version: Type.String() }),
      savedAt: Type.String(),
      wasPaused: Type.Boolean(),
      stateBytes: Type.Integer(),
    }),
  ),
  diskUsed: Type.Optional(Type.Boolean({ description: "the root overlay has run a guest (a clone can no longer take it over)" })),
  bridged: Type.Optional(Type.Object({ network: Type.String(), ip: Type.String(), prefix: Type.Integer(), gateway: Type.String(), tap: Type.String() })),
  limits: Type.Optional(AppliedLimitsSchema),
  expiresAt: Type.Optional(Type.String({ description: "when the daemon kills and removes the VM (its time to live; mvm ttl changes it)" })),
  uptimeMs: Type.Optional(Type.Number()),
  bootMs: Type.Optional(Type.Number()),
  jail: Type.Optional(
    Type.Object(
      {
        enabled: Type.Boolean(),
        reason: Type.Optional(Type.String()),
        uid: Type.Optional(Type.Integer()),
        mode: Type.Optional(Type.Union([Type.Literal("uid"), Type.Literal("root")], { description: "uid: QEMU runs as a uid of its own; root: as uid 0 without capabilities (reason says why)" })),
        groups: Type.Optional(Type.Array(Type.Integer(), { description: "QEMU's supplementary groups: the one all jailed QEMUs share, device groups" })),
        usernsFilter: Type.Optional(Type.Boolean({ description: "mvm's seccomp filter against new user namespaces is installed beneath QEMU's own" })),
        noNewPrivs: Type.Optional(Type.Boolean()),
        seccomp: Type.Optional(Type.Integer({ description: "0: no filter; 2: QEMU's -sandbox filter" })),
        capabilities: Type.Optional(Type.String({ description: "QEMU's effective capability set (CapEff, hex)" })),
        namespaces: Type.Optional(Type.Array(Type.String(), { description: "namespaces QEMU does not share with the host" })),
        cgroup: Type.Optional(
          Type.Object({
            mode: Type.String(),
            path: Type.Optional(Type.String()),
            memoryBytes: Type.Optional(Type.Number()),
            pids: Type.Optional(Type.Number()),
            cpuQuotaUs: Type.Optional(Type.Number({ description: "CPU time per 100 ms period (100000: one core)" })),
            cpuWeight: Type.Optional(Type.Number({ description: "relative CPU weight (v1: from cpu.shares, × 100 / 1024)" })),
          }),
        ),
      },
      { description: "the jail QEMU runs in, read from /proc and its control group (one VM's view only)" },
    ),
  ),
});
export type VmView = Static<typeof VmViewSchema>;

/** Output of a VM's own command, as NDJSON lines (base64 data). */
export const OutputEventSchema = Type.Object({ type: Type.Union([Type.Literal("stdout"), Type.Literal("stderr")]), data: Type.String(), at: Type.Optional(Type.String()) });
export const ExitEventSchema = Type.Object({ type: Type.Literal("exit"), commandExit: Type.Optional(VmExitSchema), state: Type.String() });
export type ExitEvent = Static<typeof ExitEventSchema>;
export const AttachEventSchema = Type.Union([OutputEventSchema, ExitEventSchema]);
/** The lines of POST .../start?attach=true: started (the VM's view), the command's output, its exit; or an error if the start failed. */
export const StartAttachEventSchema = Type.Union([
  Type.Object({ type: Type.Literal("started"), vm: Type.Unknown({ description: "the VM's view, as GET /v1/vms/:ref" }) }),
  OutputEventSchema,
  ExitEventSchema,
  Type.Object({ type: Type.Literal("error"), error: Type.String(), message: Type.String(), hint: Type.Optional(Type.String()), details: Type.Optional(Type.Record(Type.String(), Type.Unknown())) }),
]);

/** PUT /v1/vms/:ref/ttl: a new time to live from now, or null for none. */
export const TtlBodySchema = Type.Object(
  { ttl: Type.Union([Type.Integer(), Type.String(), Type.Null()], { description: "seconds, or 90s, 10m, 1h30m, 2d, from now; null: the VM lives until removed" }) },
  { additionalProperties: false },
);
export type TtlBody = Static<typeof TtlBodySchema>;

export const DaemonInfoSchema = Type.Object({ version: Type.String(), home: Type.String(), pid: Type.Integer(), accel: ChoiceSchema });
export type DaemonInfo = Static<typeof DaemonInfoSchema>;

export const RemoveQuery = Type.Object({ force: Type.Optional(Type.Union([Type.Literal("true"), Type.Literal("false")])) }, { additionalProperties: false });
export const StartQuery = Type.Object({ attach: Type.Optional(Type.Union([Type.Literal("true"), Type.Literal("false")])) }, { additionalProperties: false });
export const LogsQuery = Type.Object(
  { console: Type.Optional(Type.Union([Type.Literal("true"), Type.Literal("false")])), follow: Type.Optional(Type.Union([Type.Literal("true"), Type.Literal("false")])) },
  { additionalProperties: false },
);
export type AttachEvent = Static<typeof AttachEventSchema>;
