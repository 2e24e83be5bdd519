// The wire contract for the daemon's events (GET /v1/events, server-sent events) and for one VM's
// resource figures (GET /v1/vms/:ref/stats). Every event names the VM it is about (id and name) when it is
// about one, so that a caller's view of the stream can be cut to the VMs it may see.

import { Type, type Static } from "@sinclair/typebox";
import { VmStateSchema } from "./vm-schemas.js";

const VmRef = Type.Object({ id: Type.String(), name: Type.String() }, { description: "the VM the event is about" });
const Base = { at: Type.String({ description: "when the daemon published it (ISO 8601)" }) };

/** The event types, as ?types= takes them. */
export const EVENT_TYPES = [
  "vm.created",
  "vm.state",
  "vm.removed",
  "command.start",
  "command.exit",
  "image.progress",
  "image.done",
  "image.error",
  "snapshot.created",
  "snapshot.removed",
] as const;
export type EventType = (typeof EVENT_TYPES)[number];

export const MvmEventSchema = Type.Union(
  [
    Type.Object({ type: Type.Literal("vm.created"), ...Base, vm: VmRef }),
    Type.Object({ type: Type.Literal("vm.state"), ...Base, vm: VmRef, from: VmStateSchema, to: VmStateSchema }),
    Type.Object({ type: Type.Literal("vm.removed"), ...Base, vm: VmRef }),
    Type.Object({
      type: Type.Literal("command.start"),
      ...Base,
      vm: VmRef,
      session: Type.String({ description: "the session id (job: the VM's own command)" }),
      argv: Type.Array(Type.String(), { description: "the command, cut to its first 16 words of at most 256 characters" }),
      background: Type.Boolean(),
    }),
    Type.Object({
      type: Type.Literal("command.exit"),
      ...Base,
      vm: VmRef,
      session: Type.String(),
      status: Type.Union([Type.Integer(), Type.Null()], { description: "the shell-style status (128+N for signal N); null when the command failed without one" }),
      exitCode: Type.Union([Type.Integer(), Type.Null()]),
      signal: Type.Union([Type.Integer(), Type.Null()]),
      error: Type.Optional(Type.String({ description: "the error code, for a command lost (VM_GONE...)" })),
      durationMs: Type.Optional(Type.Number()),
    }),
    Type.Object({ type: Type.Literal("image.progress"), ...Base, image: Type.String(), op: Type.Union([Type.Literal("import"), Type.Literal("build")]), line: Type.String() }),
    Type.Object({ type: Type.Literal("image.done"), ...Base, image: Type.String(), op: Type.Union([Type.Literal("import"), Type.Literal("build")]) }),
    Type.Object({ type: Type.Literal("image.error"), ...Base, image: Type.String(), op: Type.Union([Type.Literal("import"), Type.Literal("build")]), error: Type.String(), message: Type.String() }),
    Type.Object({ type: Type.Literal("snapshot.created"), ...Base, vm: VmRef, snapshot: Type.String() }),
    Type.Object({ type: Type.Literal("snapshot.removed"), ...Base, snapshot: Type.String(), vm: Type.Optional(VmRef) }),
  ],
  { description: "one event (the data line of an SSE message; its event field is the type, its id the event's id)" },
);
export type MvmEvent = Static<typeof MvmEventSchema>;

/** What a stream says when it could not give everything asked for: resumed from an id no longer kept. */
export const ResetEventSchema = Type.Object(
  {
    type: Type.Literal("reset"),
    requested: Type.Integer({ description: "the Last-Event-ID (or since) the client gave" }),
    oldest: Type.Union([Type.Integer(), Type.Null()], { description: "the oldest id still kept; the stream goes on from there" }),
    reason: Type.String(),
  },
  { description: "sent without an id before the replay when events after the requested id were lost (older than the daemon keeps, or from before it restarted)" },
);

export const EventsQuery = Type.Object(
  {
    vm: Type.Optional(Type.String({ description: "only events about this VM (name, id or unique id prefix, resolved when the stream opens; a removed VM's id keeps matching)" })),
    types: Type.Optional(Type.String({ description: `comma-separated event types, or prefixes ending in '.' (vm.,command.exit); any of ${EVENT_TYPES.join(", ")}` })),
    since: Type.Optional(Type.String({ pattern: "^[0-9]+$", description: "resume after this event id (as the Last-Event-ID header does; the header wins)" })),
  },
  { additionalProperties: false },
);

const Counter = (d: string) => Type.Number({ description: d });

export const VmStatsSchema = Type.Object({
  id: Type.String(),
  name: Type.String(),
  state: VmStateSchema,
  at: Type.String({ description: "when the figures were read" }),
  pid: Type.Optional(Type.Integer({ description: "QEMU's pid (the jail's QEMU itself, not bwrap)" })),
  uptimeSeconds: Type.Optional(Type.Number({ description: "since the start that is running now" })),
  boot: Type.Optional(
    Type.Object({
      how: Type.String(),
      readyMs: Type.Optional(Type.Number({ description: "start request → ready" })),
      qmpMs: Type.Optional(Type.Number()),
      helloMs: Type.Optional(Type.Number()),
      restoredMs: Type.Optional(Type.Number()),
    }),
  ),
  cpu: Type.Optional(Type.Object({ userSeconds: Counter("utime / CLK_TCK"), systemSeconds: Counter("stime / CLK_TCK"), totalSeconds: Counter("user + system") }, { description: "QEMU's CPU time (/proc/PID/stat), the guest's vCPUs included" })),
  memory: Type.Optional(
    Type.Object({ rssBytes: Type.Number(), pssBytes: Type.Optional(Type.Number({ description: "proportional set size: shared pages (a template's RAM) split between their users" })) }, { description: "QEMU's memory (/proc/PID/smaps_rollup)" }),
  ),
  block: Type.Optional(
    Type.Array(
      Type.Object({ device: Type.String(), readBytes: Type.Number(), writeBytes: Type.Number(), readOps: Type.Number(), writeOps: Type.Number(), flushOps: Type.Number() }),
      { description: "per disk, from QMP query-blockstats" },
    ),
  ),
  net: Type.Optional(
    Type.Object(
      { available: Type.Boolean(), reason: Type.Optional(Type.String()), tap: Type.Optional(Type.String()), rxBytes: Type.Optional(Type.Number()), txBytes: Type.Optional(Type.Number()), rxPackets: Type.Optional(Type.Number()), txPackets: Type.Optional(Type.Number()) },
      { description: "a bridged VM's tap, as the host counts it (rx: what the guest sent)" },
    ),
  ),
  unavailable: Type.Array(Type.String(), { description: "figures that could not be read now, and why (a QEMU that did not answer QMP in time...)" }),
});
export type VmStats = Static<typeof VmStatsSchema>;
