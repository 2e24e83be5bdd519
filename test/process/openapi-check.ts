// Every answer the daemon gives, held to its OpenAPI document (GET /v1/openapi.json): the status is one the
// route documents (or an error, in the one error shape), the content type is the documented one, and the
// body validates against the documented schema (JSON whole; NDJSON line by line against x-mvm-line). Ajv
// (JSON Schema 2020-12, what OpenAPI 3.1 uses) compiles the schemas from the document itself, so what is
// checked is what clients are told, not the TypeBox source it was made from.
//   recordResponses(app, doc, file): a Fastify hook (the process tier's daemon, http-daemon-child.ts) that
//   captures each answer's bytes and appends one line per answer to `file`: {method, route, status, problem?}.

import { appendFileSync } from "node:fs";
import type { ServerResponse } from "node:http";
import type { FastifyInstance } from "fastify";
import { Ajv2020, type ValidateFunction } from "ajv/dist/2020.js";

export interface OpenApiDoc {
  paths: Record<string, Record<string, Operation>>;
}
interface Operation {
  responses: Record<string, { content?: Record<string, { schema?: object; "x-mvm-line"?: boolean }> }>;
}

export interface Answered {
  method: string;
  /** The route's template as Fastify has it (/v1/vms/:ref), or null when no route took the request. */
  route: string | null;
  status: number;
  /** What did not match the document; absent when all did. */
  problem?: string;
}

/** Answers bigger than this are checked for their status and type only (a long log, a big listing). */
const CAPTURE_LIMIT = 4 * 1024 * 1024;

export function responseChecker(doc: OpenApiDoc): (a: { method: string; route: string | null; status: number; contentType?: string; body: string; complete: boolean }) => string | undefined {
  const ajv = new Ajv2020({ strict: false, allErrors: false, validateFormats: false });
  const compiled = new WeakMap<object, ValidateFunction>();
  const validator = (schema: object) => {
    let v = compiled.get(schema);
    if (!v) compiled.set(schema, (v = ajv.compile(schema)));
    return v;
  };
  const anyOp = Object.values(Object.values(doc.paths)[0] ?? {})[0];
  const errorSchema = anyOp?.responses.default?.content?.["application/json"]?.schema;
  const check = (schema: object | undefined, value: unknown, what: string): string | undefined => {
    if (!schema) return undefined;
    const v = validator(schema);
    return v(value) ? undefined : `${what}: ${ajv.errorsText(v.errors?.slice(0, 3))} in ${JSON.stringify(value).slice(0, 300)}`;
  };
  return ({ method, route, status, contentType, body, complete }) => {
    const media = contentType?.split(";")[0]!.trim().toLowerCase();
    if (status >= 400) {
      // Errors: one shape for all, whichever route (or none) answered.
      if (media !== "application/json") return `error ${status} answered as ${String(contentType)}`;
      if (!complete) return undefined;
      return parse(body, (v) => check(errorSchema, v, `error ${status}`));
    }
    if (route === null) return `${status} from no route`;
    const op = doc.paths[route.replace(/:(\w+)/g, "{$1}")]?.[method.toLowerCase()];
    if (!op) return `${method} ${route} is not in the document`;
    const documented = op.responses[String(status)];
    if (!documented) return `status ${status} is not documented for ${method} ${route} (${Object.keys(op.responses).join(", ")})`;
    if (!documented.content) return body.length ? `${method} ${route} documents no body for ${status}, got ${body.length} bytes` : undefined;
    if (!media || !documented.content[media]) return `${method} ${route} answered ${String(contentType)}, documented ${Object.keys(documented.content).join(", ")}`;
    const c = documented.content[media];
    if (!complete || !c.schema) return undefined;
    if (media === "application/x-ndjson") {
      // The complete lines (a stream a client left may end mid-line).
      const lines = body.split("\n").slice(0, -1).filter(Boolean);
      for (const [i, l] of lines.entries()) {
        const p = parse(l, (v) => check(c.schema, v, `line ${i + 1} of ${method} ${route}`));
        if (p) return p;
      }
      return undefined;
    }
    if (media === "application/json") return parse(body, (v) => check(c.schema, v, `${method} ${route}`));
    return undefined;
  };
}

function parse(text: string, then: (v: unknown) => string | undefined): string | undefined {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return `not JSON: ${text.slice(0, 200)}`;
  }
  return then(v);
}

/** Captures every answer of `app` (JSON, NDJSON, errors: hijacked streams included) and records its check in `file`. */
export function recordResponses(app: FastifyInstance, doc: () => OpenApiDoc, file: string): void {
  let checker: ReturnType<typeof responseChecker> | undefined;
  app.addHook("onRequest", (req, reply, done) => {
    if (req.method === "HEAD") return done();
    const res: ServerResponse = reply.raw;
    const chunks: Buffer[] = [];
    let size = 0;
    let complete = true;
    // Fastify (and the NDJSON routes) give their headers to writeHead, where getHeader does not see them.
    let headType: string | undefined;
    const typeNow = () => headType ?? res.getHeader("content-type")?.toString();
    const writeHead = res.writeHead.bind(res);
    const wrapped = (status: number, ...rest: unknown[]): ServerResponse => {
      const h = rest.find((x) => x && typeof x === "object") as Record<string, unknown> | undefined;
      const key = h && !Array.isArray(h) ? Object.keys(h).find((k) => k.toLowerCase() === "content-type") : undefined;
      if (key) headType = String(h![key]);
      return (writeHead as (...a: unknown[]) => ServerResponse)(status, ...rest);
    };
    res.writeHead = wrapped;
    const take = (chunk: unknown, encoding?: unknown) => {
      if (chunk === undefined || chunk === null || typeof chunk === "function") return;
      const type = typeNow() ?? "";
      if (type.startsWith("application/octet-stream") || type.startsWith("text/")) return;
      const b = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as string, typeof encoding === "string" ? (encoding as BufferEncoding) : "utf8");
      if (size + b.length > CAPTURE_LIMIT) complete = false;
      else chunks.push(b);
      size += b.length;
    };
    const write = res.write.bind(res);
    const end = res.end.bind(res);
    res.write = ((chunk: unknown, ...rest: unknown[]) => {
      take(chunk, rest[0]);
      return (write as (...a: unknown[]) => boolean)(chunk, ...rest);
    }) as typeof res.write;
    res.end = ((chunk?: unknown, ...rest: unknown[]) => {
      take(chunk, rest[0]);
      return (end as (...a: unknown[]) => ServerResponse)(chunk, ...rest);
    }) as typeof res.end;
    let recorded = false;
    const record = () => {
      if (recorded || !res.headersSent) return;
      recorded = true;
      checker ??= responseChecker(doc());
      const route = req.routeOptions.url ?? null;
      const status = res.statusCode;
      // A stream the client left early: only its complete lines are checked.
      const problem = checker({ method: req.method, route, status, contentType: typeNow(), body: Buffer.concat(chunks).toString("utf8"), complete: complete && (res.writableFinished || String(typeNow()).includes("ndjson")) });
      const line: Answered = { method: req.method, route, status, ...(problem ? { problem } : {}) };
      appendFileSync(file, `${JSON.stringify(line)}\n`);
    };
    res.once("finish", record);
    res.once("close", record);
    done();
  });
}
