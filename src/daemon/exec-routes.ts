// Commands over HTTP: run one and stream its output (NDJSON), start one in the background, and manage
// background ones by id (list, attach, stdin, wait, signal, remove). See docs/api.md.

import type { FastifyInstance } from "fastify";
import { batches } from "./batches.js";
import { checkBody } from "../api/check.js";
import { ExecBodySchema, ExecEventSchema, SessionInfoSchema, SignalBodySchema, StdinQuery, type ExecBody } from "../api/command-schemas.js";
import { EXEC_BODY_LIMIT, route } from "../api/routes.js";
import { Type } from "@sinclair/typebox";
import { followSession, ndjson } from "./ndjson.js";
import type { VmManager } from "./vm-manager.js";
import { BadRequestError } from "../errors.js";

type Ref = { Params: { ref: string } };
type RefId = { Params: { ref: string; id: string } };

/** Checks the common part of exec requests (HTTP body or upgraded stream's first line) against the schema. */
export function execOptions(body: unknown): Omit<ExecBody, "input" | "tty"> {
  const b = checkBody(ExecBodySchema, body ?? {}, "exec request");
  return { argv: b.argv, env: b.env, cwd: b.cwd, user: b.user, timeoutMs: b.timeoutMs, background: b.background === true, stdin: b.stdin === true };
}

export function registerExecRoutes(app: FastifyInstance, manager: VmManager): void {
  const execDoc = route({ summary: "run a command: NDJSON session, stdout/stderr (base64), exit; background=true answers 201 at once with its info", answer: "ndjson", body: ExecBodySchema, events: ExecEventSchema, bodyLimit: EXEC_BODY_LIMIT, also: [{ when: "background=true: the command's info, at once", status: 201, answer: "json", response: SessionInfoSchema }] });
  app.post<Ref & { Body: ExecBody }>("/v1/vms/:ref/exec", execDoc, (req, reply) => {
    const o = execOptions(req.body);
    const input = req.body.input;
    const t = manager.exec(req.params.ref, { ...o, stdin: input !== undefined || (o.background && o.stdin) });
    if (input !== undefined) void t.session.write(Buffer.from(input, "base64")).then(() => t.session.end()).catch(() => undefined);
    if (o.background) return reply.status(201).send(t.info);
    const raw = ndjson(reply);
    raw.write(`${JSON.stringify({ type: "session", id: t.id })}\n`);
    // A client that goes away takes its command with it: nothing is left running unseen.
    raw.on("close", () => t.result || t.session.kill(9));
    followSession(t, raw, false);
  });

  app.get<Ref>("/v1/vms/:ref/sessions", route({ summary: "the VM's commands: running, and ended background ones", answer: "json", response: Type.Array(SessionInfoSchema) }), (req) => manager.listSessions(req.params.ref));

  app.get<RefId>("/v1/vms/:ref/sessions/:id", route({ summary: "one command", answer: "json", response: SessionInfoSchema }), (req) => manager.session(req.params.ref, req.params.id).info);

  app.get<RefId>("/v1/vms/:ref/sessions/:id/attach", route({ summary: "its kept output, then live, then exit or error", answer: "ndjson", events: ExecEventSchema }), (req, reply) => {
    const t = manager.session(req.params.ref, req.params.id);
    followSession(t, ndjson(reply), true);
  });

  app.post<RefId>("/v1/vms/:ref/sessions/:id/wait", route({ summary: "wait for it to end", answer: "json", response: SessionInfoSchema }), async (req) => {
    const t = manager.session(req.params.ref, req.params.id);
    await t.ended;
    return t.info;
  });

  // The body (application/octet-stream) goes to the command's stdin as it arrives; ?eof=true closes it after.
  const stdinDoc = route({ summary: "bytes to its stdin as the guest takes them; eof=true closes it after", answer: "none", status: 204, octetBody: true, query: StdinQuery });
  app.post<RefId & { Querystring: { eof?: string } }>("/v1/vms/:ref/sessions/:id/stdin", stdinDoc, async (req, reply) => {
    const t = manager.session(req.params.ref, req.params.id);
    if (t.result) throw new BadRequestError(`command ${t.id} has ended; its stdin is closed`, { hint: "mvm session ls shows how it ended" });
    const body = req.body as AsyncIterable<Buffer> | Buffer | undefined;
    if (Buffer.isBuffer(body)) await t.session.write(body);
    else if (body) for await (const chunk of batches(body)) await t.session.write(chunk);
    if (req.query.eof === "true") await t.session.end();
    return reply.status(204).send();
  });

  const signalDoc = route({ summary: "a signal to its process group; id job is the VM's own command", answer: "none", status: 204, body: SignalBodySchema, bodyOptional: true, validateBody: false });
  app.post<RefId & { Body: { signal?: number } }>("/v1/vms/:ref/sessions/:id/signal", signalDoc, (req, reply) => {
    // No body means SIGTERM, so the schema is checked here, on what there is.
    const b = checkBody(SignalBodySchema, req.body ?? {}, "signal request");
    manager.signal(req.params.ref, req.params.id, b.signal ?? 15);
    return reply.status(204).send();
  });

  app.delete<RefId>("/v1/vms/:ref/sessions/:id", route({ summary: "SIGKILL it if running, then forget it", answer: "none", status: 204 }), (req, reply) => {
    manager.removeSession(req.params.ref, req.params.id);
    return reply.status(204).send();
  });
}
