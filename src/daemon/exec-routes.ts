// Commands over HTTP: run one and stream its output (NDJSON), start one in the background, and manage
// background ones by id (list, attach, stdin, wait, signal, remove). See docs/api.md.

import type { FastifyInstance } from "fastify";
import { batches } from "./batches.js";
import { BadRequestError } from "./http-errors.js";
import { followSession, ndjson } from "./ndjson.js";
import type { VmManager } from "./vm-manager.js";

type Ref = { Params: { ref: string } };
type RefId = { Params: { ref: string; id: string } };

export interface ExecBody {
  argv: string[];
  timeoutMs?: number;
  env?: Record<string, string>;
  cwd?: string;
  user?: string;
  /** base64 stdin, sent whole and then closed. */
  input?: string;
  /** Keep running when the client goes away; answers at once with the session's info. */
  background?: boolean;
  /** Background only: keep stdin open for POST .../stdin (otherwise it reads /dev/null, or `input`). */
  stdin?: boolean;
}

/** Checks the common part of exec requests (HTTP body or upgraded stream's first line). */
export function execOptions(body: unknown): Omit<ExecBody, "input"> {
  const b = (body ?? {}) as Partial<ExecBody>;
  if (!Array.isArray(b.argv) || b.argv.length === 0 || !b.argv.every((a) => typeof a === "string")) {
    throw new BadRequestError("exec needs argv: a non-empty list of strings", { hint: "send {\"argv\": [\"echo\", \"hi\"]}" });
  }
  if (b.env !== undefined && (typeof b.env !== "object" || b.env === null || !Object.values(b.env).every((v) => typeof v === "string"))) {
    throw new BadRequestError("env must map names to strings", { hint: "send {\"env\": {\"FOO\": \"bar\"}}" });
  }
  for (const k of ["cwd", "user"] as const) {
    if (b[k] !== undefined && typeof b[k] !== "string") throw new BadRequestError(`${k} must be a string`);
  }
  if (b.timeoutMs !== undefined && (typeof b.timeoutMs !== "number" || !(b.timeoutMs > 0) || b.timeoutMs > 0xffffffff)) {
    throw new BadRequestError(`timeoutMs must be a positive number of milliseconds, not ${JSON.stringify(b.timeoutMs)}`);
  }
  return { argv: b.argv, env: b.env, cwd: b.cwd, user: b.user, timeoutMs: b.timeoutMs, background: b.background === true, stdin: b.stdin === true };
}

export function registerExecRoutes(app: FastifyInstance, manager: VmManager): void {
  app.post<Ref & { Body: ExecBody }>("/v1/vms/:ref/exec", (req, reply) => {
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

  app.get<Ref>("/v1/vms/:ref/sessions", (req) => manager.listSessions(req.params.ref));

  app.get<RefId>("/v1/vms/:ref/sessions/:id", (req) => manager.session(req.params.ref, req.params.id).info);

  app.get<RefId>("/v1/vms/:ref/sessions/:id/attach", (req, reply) => {
    const t = manager.session(req.params.ref, req.params.id);
    followSession(t, ndjson(reply), true);
  });

  app.post<RefId>("/v1/vms/:ref/sessions/:id/wait", async (req) => {
    const t = manager.session(req.params.ref, req.params.id);
    await t.ended;
    return t.info;
  });

  // The body (application/octet-stream) goes to the command's stdin as it arrives; ?eof=true closes it after.
  app.post<RefId & { Querystring: { eof?: string } }>("/v1/vms/:ref/sessions/:id/stdin", async (req, reply) => {
    const t = manager.session(req.params.ref, req.params.id);
    if (t.result) throw new BadRequestError(`command ${t.id} has ended; its stdin is closed`, { hint: "mvm session ls shows how it ended" });
    const body = req.body as AsyncIterable<Buffer> | Buffer | undefined;
    if (Buffer.isBuffer(body)) await t.session.write(body);
    else if (body) for await (const chunk of batches(body)) await t.session.write(chunk);
    if (req.query.eof === "true") await t.session.end();
    return reply.status(204).send();
  });

  app.post<RefId & { Body: { signal?: number } }>("/v1/vms/:ref/sessions/:id/signal", (req, reply) => {
    manager.signal(req.params.ref, req.params.id, Number(req.body?.signal ?? 15));
    return reply.status(204).send();
  });

  app.delete<RefId>("/v1/vms/:ref/sessions/:id", (req, reply) => {
    manager.removeSession(req.params.ref, req.params.id);
    return reply.status(204).send();
  });
}
