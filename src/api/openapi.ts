// The daemon's API as an OpenAPI 3.1 document, served at GET /v1/openapi.json, generated from the routes
// the server registered (routes.ts) and the upgrade routes (not Fastify routes; see daemon/upgrades.ts).

import type { TSchema } from "@sinclair/typebox";
import { ErrorBodySchema, ExecBodySchema, ExecEventSchema } from "./command-schemas.js";
import { PortParams, PortQuery } from "./port-schemas.js";
import type { Answer, RegisteredRoute, RouteDoc } from "./routes.js";

/** Routes that become raw streams through an HTTP Upgrade. */
export const UPGRADE_ROUTES: RegisteredRoute[] = [
  {
    method: "get",
    url: "/v1/vms/:ref/exec",
    doc: { summary: "an interactive command over an HTTP Upgrade (Upgrade: mvm-exec): NDJSON both ways, the first line an exec request, optional pty", answer: "upgrade", status: 101, body: ExecBodySchema, events: ExecEventSchema },
  },
  { method: "get", url: "/v1/vms/:ref/console", doc: { summary: "the serial console over an HTTP Upgrade (Upgrade: mvm-console): raw bytes both ways", answer: "upgrade", status: 101 } },
  {
    method: "get",
    url: "/v1/vms/:ref/ports/:port",
    doc: { summary: "one TCP connection to a guest port over an HTTP Upgrade (Upgrade: mvm-port): raw bytes both ways, half-close kept; 400 for a bad port, 502 GUEST_PORT when nothing listens", answer: "upgrade", status: 101, params: PortParams, query: PortQuery },
  },
];

const MEDIA: Record<Exclude<Answer, "none" | "upgrade">, string> = {
  json: "application/json",
  ndjson: "application/x-ndjson",
  sse: "text/event-stream",
  octet: "application/octet-stream",
  text: "text/plain",
};

/** A TypeBox schema as plain JSON Schema (its symbol keys dropped). */
const plain = (s: TSchema): object => JSON.parse(JSON.stringify(s)) as object;

function queryParams(q?: TSchema): object[] {
  const props = (q as { properties?: Record<string, TSchema> } | undefined)?.properties ?? {};
  const required = new Set((q as { required?: string[] } | undefined)?.required ?? []);
  return Object.entries(props).map(([name, schema]) => ({ name, in: "query", required: required.has(name), schema: plain(schema) }));
}

function operation(url: string, d: RouteDoc): object {
  const pathParams = [...url.matchAll(/:(\w+)/g)].map((m) => {
    const schema = (d.params as { properties?: Record<string, TSchema> } | undefined)?.properties?.[m[1]!];
    return { name: m[1], in: "path", required: true, schema: schema ? plain(schema) : { type: "string" } };
  });
  const content = (a: Pick<RouteDoc, "answer" | "response" | "events">) =>
    a.answer === "none" || a.answer === "upgrade" ? undefined : { [MEDIA[a.answer]]: a.response ? { schema: plain(a.response) } : a.events ? { schema: plain(a.events), "x-mvm-line": true } : {} };
  const answers: Record<string, { description: string; content?: Record<string, object> }> = {
    [String(d.status ?? 200)]: d.answer === "none" || d.answer === "upgrade" ? { description: d.answer === "upgrade" ? "switching protocols" : "done" } : { description: "ok", content: content(d) },
  };
  // Other answers of the same route (attach=true's stream, console=true's text, background=true's 201).
  for (const a of d.also ?? []) {
    const key = String(a.status ?? 200);
    const r = (answers[key] ??= { description: a.when });
    if (r.description !== a.when) r.description += `; ${a.when}`;
    r.content = { ...r.content, ...content(a) };
  }
  const body = d.octetBody
    ? { required: true, content: { "application/octet-stream": {} } }
    : d.body
      ? { required: d.answer !== "upgrade" && !d.bodyOptional, content: { "application/json": { schema: plain(d.body) } } }
      : undefined;
  return {
    summary: d.summary,
    parameters: [...pathParams, ...queryParams(d.query)],
    ...(body ? { requestBody: body } : {}),
    ...(d.events && d.answer === "upgrade" ? { "x-mvm-stream-line": plain(d.events) } : {}),
    responses: {
      ...answers,
      default: { description: "an error: one body shape for all (docs/api.md lists the codes and statuses)", content: { "application/json": { schema: plain(ErrorBodySchema) } } },
    },
  };
}

export function openApiDocument(version: string, routes: RegisteredRoute[]): object {
  const paths: Record<string, Record<string, object>> = {};
  for (const r of [...routes, ...UPGRADE_ROUTES]) {
    if (!r.doc) continue;
    const templated = r.url.replace(/:(\w+)/g, "{$1}");
    (paths[templated] ??= {})[r.method.toLowerCase()] = operation(r.url, r.doc);
  }
  return {
    openapi: "3.1.0",
    info: { title: "mvm daemon API", version, description: "HTTP+JSON on the Unix socket $MVM_HOME/mvm.sock (mode 0600). See docs/api.md." },
    paths,
  };
}
