// The daemon's API as an OpenAPI 3.1 document, served at GET /v1/openapi.json (docs/api.md says the same in
// prose). A unit test checks that every route the server registers is described here and nothing else is,
// so the two cannot drift apart.

import { VmSpecSchema } from "../vmspec/vm-spec.js";

type Method = "get" | "post" | "put" | "delete";
type Answer = "json" | "ndjson" | "octet" | "text" | "none" | "upgrade";

interface RouteDoc {
  summary: string;
  /** What the request carries: a JSON body (optionally with its schema) or raw bytes. */
  body?: "json" | "octet";
  bodySchema?: object;
  query?: string[];
  answer: Answer;
  status?: number;
}

/** Routes that become raw streams through an HTTP Upgrade (not fastify routes; see upgrades.ts). */
export const UPGRADE_ROUTES = [
  ["get", "/v1/vms/:ref/exec"],
  ["get", "/v1/vms/:ref/console"],
] as const;

const ROUTES: Record<string, Partial<Record<Method, RouteDoc>>> = {
  "/v1/openapi.json": { get: { summary: "this document", answer: "json" } },
  "/v1/info": { get: { summary: "daemon version, pid, home and accelerator choice", answer: "json" } },
  "/v1/vms": {
    get: { summary: "all VMs", answer: "json" },
    post: { summary: "create a VM from a spec (unknown keys refused)", body: "json", bodySchema: VmSpecSchema, answer: "json", status: 201 },
  },
  "/v1/vms/:ref": {
    get: { summary: "one VM: state, pid, accel and binary with reasons, argv, timings, last exits", answer: "json" },
    delete: { summary: "remove a stopped/crashed VM (force=true kills it first)", query: ["force"], answer: "none", status: 204 },
  },
  "/v1/vms/:ref/start": { post: { summary: "boot; with attach=true, follow the VM's command as NDJSON", query: ["attach"], answer: "json" } },
  "/v1/vms/:ref/attach": { post: { summary: "the VM's command: kept output, then live, then its exit", answer: "ndjson" } },
  "/v1/vms/:ref/stop": { post: { summary: "power off (guest, then QMP quit, SIGTERM, SIGKILL)", answer: "json" } },
  "/v1/vms/:ref/kill": { post: { summary: "SIGKILL QEMU", answer: "json" } },
  "/v1/vms/:ref/pause": { post: { summary: "freeze the vCPUs", answer: "json" } },
  "/v1/vms/:ref/resume": { post: { summary: "unfreeze the vCPUs", answer: "json" } },
  "/v1/vms/:ref/wait": { post: { summary: "wait until the VM stops; its command's exit", answer: "json" } },
  "/v1/vms/:ref/logs": { get: { summary: "the command's log (NDJSON) or the serial console (text)", query: ["console", "follow"], answer: "ndjson" } },
  "/v1/vms/:ref/exec": {
    post: { summary: "run a command: NDJSON session, started, stdout/stderr (base64), exit; background=true answers at once", body: "json", answer: "ndjson" },
    get: { summary: "an interactive command over an HTTP Upgrade (mvm-exec): NDJSON both ways, optional pty", answer: "upgrade", status: 101 },
  },
  "/v1/vms/:ref/console": { get: { summary: "the serial console over an HTTP Upgrade (mvm-console): raw bytes both ways", answer: "upgrade", status: 101 } },
  "/v1/vms/:ref/sessions": { get: { summary: "the VM's commands: running, and ended background ones", answer: "json" } },
  "/v1/vms/:ref/sessions/:id": {
    get: { summary: "one command", answer: "json" },
    delete: { summary: "SIGKILL it if running, then forget it", answer: "none", status: 204 },
  },
  "/v1/vms/:ref/sessions/:id/attach": { get: { summary: "its kept output, then live, then exit or error", answer: "ndjson" } },
  "/v1/vms/:ref/sessions/:id/wait": { post: { summary: "wait for it to end", answer: "json" } },
  "/v1/vms/:ref/sessions/:id/stdin": { post: { summary: "bytes to its stdin as the guest takes them; eof=true closes it after", body: "octet", query: ["eof"], answer: "none", status: 204 } },
  "/v1/vms/:ref/sessions/:id/signal": { post: { summary: "a signal to its process group ({signal}); id job is the VM's own command", body: "json", answer: "none", status: 204 } },
  "/v1/vms/:ref/files/:op": { post: { summary: "stat, list, mkdir, rename, remove, chmod, chown or symlink in the guest; answers {entries}", body: "json", answer: "json" } },
  "/v1/vms/:ref/files/content": {
    get: { summary: "a file's bytes, streamed; trailer x-mvm-crc32 (or x-mvm-error)", query: ["path"], answer: "octet" },
    put: { summary: "write a file from the body, renamed into place when complete; answers {size, crc32}", body: "octet", query: ["path", "mode", "owner", "parents", "exclusive"], answer: "json" },
  },
  "/v1/networks": {
    get: { summary: "bridged networks and their VMs", answer: "json" },
    post: { summary: "create a network ({name, subnet?, nat?}; needs CAP_NET_ADMIN)", body: "json", answer: "json", status: 201 },
  },
  "/v1/networks/:name": { delete: { summary: "remove a network no VM uses", answer: "none", status: 204 } },
  "/v1/images": { get: { summary: "registered images", answer: "json" } },
  "/v1/images/:name": { delete: { summary: "remove an image no VM uses", answer: "none", status: 204 } },
  "/v1/images/import": { post: { summary: "register an image file ({file, name}): progress, then done or error", body: "json", answer: "ndjson" } },
  "/v1/images/build": { post: { summary: "build a Debian image ({distro, suite?, packages?, name?}): progress, then done or error", body: "json", answer: "ndjson" } },
  "/v1/prune": { post: { summary: "remove every stopped or crashed VM", answer: "json" } },
};

/** Every documented route as [method, fastify-style path]. */
export function documentedRoutes(): Array<[Method, string]> {
  return Object.entries(ROUTES).flatMap(([path, ops]) => Object.keys(ops).map((m) => [m as Method, path] as [Method, string]));
}

const MEDIA: Record<Exclude<Answer, "none" | "upgrade">, string> = {
  json: "application/json",
  ndjson: "application/x-ndjson",
  octet: "application/octet-stream",
  text: "text/plain",
};

const ERROR = {
  description: "an error: one body shape for all (docs/api.md lists the codes and statuses)",
  content: {
    "application/json": {
      schema: {
        type: "object",
        required: ["error", "message"],
        properties: { error: { type: "string" }, message: { type: "string" }, hint: { type: "string" }, details: { type: "object" } },
      },
    },
  },
};

export function openApiDocument(version: string): object {
  const paths: Record<string, Record<string, object>> = {};
  for (const [path, ops] of Object.entries(ROUTES)) {
    const templated = path.replace(/:(\w+)/g, "{$1}");
    const pathParams = [...path.matchAll(/:(\w+)/g)].map((m) => ({ name: m[1], in: "path", required: true, schema: { type: "string" } }));
    paths[templated] = {};
    for (const [method, r] of Object.entries(ops)) {
      const status = String(r.status ?? 200);
      const ok = r.answer === "none" || r.answer === "upgrade" ? { description: r.answer === "upgrade" ? "switching protocols" : "done" } : { description: "ok", content: { [MEDIA[r.answer]]: {} } };
      paths[templated][method] = {
        summary: r.summary,
        parameters: [...pathParams, ...(r.query ?? []).map((q) => ({ name: q, in: "query", schema: { type: "string" } }))],
        ...(r.body ? { requestBody: { required: true, content: { [r.body === "json" ? "application/json" : "application/octet-stream"]: r.bodySchema ? { schema: r.bodySchema } : {} } } } : {}),
        responses: { [status]: ok, default: ERROR },
      };
    }
  }
  return {
    openapi: "3.1.0",
    info: { title: "mvm daemon API", version, description: "HTTP+JSON on the Unix socket $MVM_HOME/mvm.sock (mode 0600). See docs/api.md." },
    paths,
  };
}
