// The wire contract for commands in a VM: the exec request (HTTP body, or the first line of an upgraded
// exec stream), a command's info and result, and the NDJSON lines that stream its output.

import { Type, type Static } from "@sinclair/typebox";
import { EnvSchema } from "../vmspec/vm-spec.js";

const TermSize = Type.Integer({ minimum: 1, maximum: 65535 });
const NonEmptyArgv = Type.Array(Type.String(), { minItems: 1, maxItems: 4096, description: "the command and its arguments; no shell unless you run one" });

export const ExecBodySchema = Type.Object(
  {
    argv: NonEmptyArgv,
    timeoutMs: Type.Optional(Type.Number({ exclusiveMinimum: 0, maximum: 0xffffffff, description: "killed (status 124) when it runs longer" })),
    env: Type.Optional(EnvSchema),
    cwd: Type.Optional(Type.String()),
    user: Type.Optional(Type.String()),
    input: Type.Optional(Type.String({ contentEncoding: "base64", description: "stdin, sent whole and then closed" })),
    background: Type.Optional(Type.Boolean({ description: "keep running when the client goes away; answers at once with the command's info" })),
    stdin: Type.Optional(Type.Boolean({ description: "background only: keep stdin open for POST .../stdin" })),
    tty: Type.Optional(Type.Object({ rows: TermSize, cols: TermSize }, { description: "upgraded exec only: run on a pseudo-terminal of this size" })),
  },
  { additionalProperties: false },
);
export type ExecBody = Static<typeof ExecBodySchema>;

export const ExecResultSchema = Type.Object({
  exitCode: Type.Union([Type.Integer(), Type.Null()]),
  signal: Type.Union([Type.Integer(), Type.Null()]),
  status: Type.Integer({ description: "shell/Docker convention: the exit code, 128+N for signal N, 126/127 when it could not run, 124 on timeout" }),
  message: Type.Optional(Type.String()),
  timedOut: Type.Optional(Type.Boolean()),
  pid: Type.Optional(Type.Integer()),
  durationMs: Type.Number(),
});
export type ExecResult = Static<typeof ExecResultSchema>;

export const ErrorBodySchema = Type.Object({
  error: Type.String({ description: "a stable code (docs/api.md lists them with their statuses)" }),
  message: Type.String(),
  hint: Type.Optional(Type.String()),
  details: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
});
export type ErrorBody = Static<typeof ErrorBodySchema>;

export const SessionInfoSchema = Type.Object({
  id: Type.String(),
  argv: Type.Array(Type.String()),
  background: Type.Boolean(),
  tty: Type.Boolean(),
  pid: Type.Optional(Type.Integer()),
  startedAt: Type.String(),
  state: Type.Union([Type.Literal("running"), Type.Literal("exited"), Type.Literal("failed")]),
  result: Type.Optional(ExecResultSchema),
  error: Type.Optional(Type.Object({ error: Type.String(), message: Type.String(), hint: Type.Optional(Type.String()) })),
  droppedBytes: Type.Integer({ description: "output dropped because nobody read it and the keep limit was reached" }),
});
export type SessionInfo = Static<typeof SessionInfoSchema>;

/** The lines of an exec stream (POST .../exec, .../sessions/:id/attach), in order: session, output..., exit or error. */
export const ExecEventSchema = Type.Union([
  Type.Object({ type: Type.Literal("session"), id: Type.String() }),
  Type.Object({ type: Type.Literal("started"), pid: Type.Optional(Type.Integer()) }),
  Type.Object({ type: Type.Union([Type.Literal("stdout"), Type.Literal("stderr")]), data: Type.String({ contentEncoding: "base64" }) }),
  Type.Object({ type: Type.Literal("exit"), ...ExecResultSchema.properties }),
  Type.Object({ type: Type.Literal("error"), ...ErrorBodySchema.properties }),
]);

export const SignalBodySchema = Type.Object({ signal: Type.Optional(Type.Integer({ minimum: 1, maximum: 64, description: "default 15 (SIGTERM)" })) }, { additionalProperties: false });
export const StdinQuery = Type.Object({ eof: Type.Optional(Type.Union([Type.Literal("true"), Type.Literal("false")])) }, { additionalProperties: false });
