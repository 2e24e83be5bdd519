// The E2B control plane on mvm's VMs: create (v2 and the older path), connect, get, list with state and
// metadata filters and pagination, kill, set timeout, pause (mvm's suspend: memory saved to disk, QEMU
// gone; connect resumes it), metrics (the daemon's recent samples). A
// sandbox is a VM named by its sandbox id, carrying the label mvm.e2b/template; its metadata are its other
// labels and its lifetime is the VM's time to live. X-API-KEY is an mvm token: the caller's ownership and
// quotas apply as they do to VMs (another token's sandbox is not found).

import { randomBytes } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Caller } from "../auth/caller.js";
import { mayUseVm } from "../auth/ownership.js";
import type { TokenAccess } from "../daemon/access.js";
import type { VmManager } from "../daemon/vm-manager.js";
import type { VmStatsSample } from "../api/stats-schemas.js";
import type { VmRecord } from "../store/vm-store.js";
import type { AccessTokens } from "./access-token.js";
import { controlError, E2bError } from "./errors.js";
import { readBody, sendJson } from "./http-io.js";
import { parseMessage } from "./envelope.js";

/** The label that makes a VM a sandbox (its template); metadata may not use the prefix. */
export const TEMPLATE_LABEL = "mvm.e2b/template";
const RESERVED_PREFIX = "mvm.e2b/";
/** The envd version whose features mvm's envd implements (closeStdin 0.5.2, octet-stream uploads 0.5.7). */
export const ENVD_VERSION = "0.5.7";
/** E2B's default lifetime, and the longest it allows. */
const DEFAULT_TIMEOUT_S = 300;
const MAX_TIMEOUT_S = 86_400;
const MAX_BODY = 256 * 1024;

export interface ControlContext {
  manager: VmManager;
  tokens: TokenAccess;
  access: AccessTokens;
  /** Memory and vCPUs of a new sandbox (E2B's base template has 2 vCPUs and 512 MiB). */
  memoryMiB?: number;
  cpus?: number;
}

export const isSandbox = (r: VmRecord): boolean => r.spec.labels?.[TEMPLATE_LABEL] !== undefined;

function callerOf(ctx: ControlContext, req: IncomingMessage): Caller {
  const key = req.headers["x-api-key"];
  if (typeof key !== "string" || !key) throw new E2bError("send an mvm token as X-API-KEY (E2B_API_KEY)", "unauthenticated");
  try {
    return ctx.tokens.callerOf({ headers: { authorization: `Bearer ${key}` }, socket: req.socket });
  } catch {
    throw new E2bError("the API key is not an mvm token of this daemon (mvm token create NAME makes one)", "unauthenticated");
  }
}

/** The caller's sandbox of that id, or E2B's 404. */
function sandboxFor(ctx: ControlContext, caller: Caller, id: string): VmRecord {
  const rec = ctx.manager.list().find((r) => r.name === id && isSandbox(r));
  if (!rec || !mayUseVm(caller, rec.owner)) throw new E2bError(`sandbox ${id} not found`, "not_found");
  return rec;
}

function metadataOf(r: VmRecord): Record<string, string> {
  return Object.fromEntries(Object.entries(r.spec.labels ?? {}).filter(([k]) => !k.startsWith(RESERVED_PREFIX)));
}

function detail(r: VmRecord): Record<string, unknown> {
  return {
    sandboxID: r.name,
    templateID: r.spec.labels?.[TEMPLATE_LABEL],
    clientID: "mvm",
    metadata: metadataOf(r),
    startedAt: r.timings?.startedAt ?? r.createdAt,
    endAt: r.expiresAt ?? new Date(Date.now() + MAX_TIMEOUT_S * 1000).toISOString(),
    state: r.state === "paused" || r.state === "suspended" ? "paused" : "running",
    cpuCount: r.spec.cpus,
    memoryMB: r.spec.memoryMiB,
    diskSizeMB: r.spec.diskSizeMiB ?? 0,
    envdVersion: ENVD_VERSION,
  };
}

function created(ctx: ControlContext, r: VmRecord): Record<string, unknown> {
  return { sandboxID: r.name, templateID: r.spec.labels?.[TEMPLATE_LABEL], clientID: "mvm", envdVersion: ENVD_VERSION, envdAccessToken: ctx.access.tokenOf(r.name) };
}

function timeoutSeconds(v: unknown): number {
  if (v === undefined || v === null) return DEFAULT_TIMEOUT_S;
  if (typeof v !== "number" || !Number.isInteger(v) || v < 1 || v > MAX_TIMEOUT_S) throw new E2bError(`timeout must be whole seconds from 1 to ${MAX_TIMEOUT_S}, not ${JSON.stringify(v)}`, "invalid_argument");
  return v;
}

function stringMap(v: unknown, what: string): Record<string, string> {
  if (v === undefined || v === null) return {};
  if (typeof v !== "object" || Array.isArray(v) || Object.values(v).some((x) => typeof x !== "string")) throw new E2bError(`${what} must be an object of strings`, "invalid_argument");
  return v as Record<string, string>;
}

/** The mvm image a template names: base is the Debian image (it has /bin/bash, which commands.run runs). */
const imageOf = (template: string) => (template === "base" ? "debian" : template);

async function create(ctx: ControlContext, caller: Caller, body: Record<string, unknown>): Promise<Record<string, unknown>> {
  const template = body.templateID ?? "base";
  if (typeof template !== "string" || !/^[a-z0-9][a-z0-9-]{0,62}$/.test(template)) throw new E2bError(`template ${JSON.stringify(template)} not found`, "not_found");
  const image = imageOf(template);
  if (!ctx.manager.images.list().some((i) => i.name === image)) {
    throw new E2bError(`template '${template}' not found: no mvm image named ${image}${template === "base" ? " (build it with mvm image build debian)" : " (mvm image ls lists them)"}`, "not_found", 404);
  }
  const metadata = stringMap(body.metadata, "metadata");
  if (Object.keys(metadata).some((k) => k.startsWith(RESERVED_PREFIX))) throw new E2bError(`metadata keys may not start with ${RESERVED_PREFIX}`, "invalid_argument");
  const timeout = timeoutSeconds(body.timeout);
  // Ids as E2B's: lower-case letters and digits (the Host form of getHost splits on '-'); a letter first, as VM names need.
  const id = `i${randomBytes(10).toString("hex")}`;
  const spec = {
    name: id,
    image,
    memory: ctx.memoryMiB ?? 512,
    cpus: ctx.cpus ?? 1,
    env: stringMap(body.envVars, "envVars"),
    ttl: timeout,
    labels: { ...metadata, [TEMPLATE_LABEL]: template },
    network: body.allow_internet_access === false ? "none" : "user",
  };
  const rec = await ctx.manager.create(spec, { caller });
  try {
    // The SDK does not poll: the answer comes once the sandbox runs commands (a clone or a parked QEMU where mvm can).
    await ctx.manager.start(rec.id);
  } catch (e) {
    await ctx.manager.remove(rec.id, true).catch(() => undefined);
    throw e;
  }
  return created(ctx, ctx.manager.get(rec.id));
}

/** GET /v2/sandboxes' metadata filter: "k=v&k2=v2", each part URI-encoded once more by the SDK. */
export function parseMetadataFilter(text: string | null): Record<string, string> {
  if (!text) return {};
  const out: Record<string, string> = {};
  for (const [k, v] of new URLSearchParams(text)) {
    try {
      out[decodeURIComponent(k)] = decodeURIComponent(v);
    } catch {
      out[k] = v;
    }
  }
  return out;
}

function list(ctx: ControlContext, caller: Caller, q: URLSearchParams, res: ServerResponse): void {
  const states = (q.get("state") ?? "running,paused").split(",");
  const filter = parseMetadataFilter(q.get("metadata"));
  const limit = Math.max(1, Math.min(1000, Number(q.get("limit") ?? 100) || 100));
  const after = q.get("nextToken");
  const all = ctx.manager
    .list()
    .filter((r) => isSandbox(r) && mayUseVm(caller, r.owner) && (r.state === "running" || r.state === "paused" || r.state === "suspended"))
    .map(detail)
    .filter((d) => states.includes(d.state as string))
    .filter((d) => Object.entries(filter).every(([k, v]) => (d.metadata as Record<string, string>)[k] === v));
  const from = after ? all.findIndex((d) => d.sandboxID === after) + 1 : 0;
  const page = all.slice(from, from + limit);
  const more = from + limit < all.length;
  sendJson(res, 200, page, more ? { "x-next-token": String(page.at(-1)!.sandboxID) } : {});
}

/** Answers a control-plane request. */
export async function serveControl(ctx: ControlContext, req: IncomingMessage, res: ServerResponse): Promise<void> {
  try {
    const caller = callerOf(ctx, req);
    const url = new URL(req.url ?? "/", "http://x");
    const path = url.pathname.replace(/^\/v2/, "");
    const m = /^\/sandboxes(?:\/([^/]+))?(?:\/([a-z]+))?$/.exec(path);
    if (!m) throw new E2bError(`no route ${req.method} ${url.pathname}`, "not_found");
    const [, id, action] = m;
    const method = req.method ?? "GET";
    const body = method === "POST" ? parseMessage(await readBody(req, MAX_BODY)) : {};
    if (!id) {
      if (method === "POST") return sendJson(res, 201, await create(ctx, caller, body));
      if (method === "GET") return list(ctx, caller, url.searchParams, res);
    } else if (!action) {
      if (method === "GET") return sendJson(res, 200, detail(sandboxFor(ctx, caller, id)));
      if (method === "DELETE") {
        const rec = sandboxFor(ctx, caller, id);
        await ctx.manager.remove(rec.id, true);
        return sendJson(res, 204, undefined);
      }
    } else if (method === "POST" && action === "timeout") {
      const rec = sandboxFor(ctx, caller, id);
      ctx.manager.setTtl(rec.id, timeoutSeconds(body.timeout));
      return sendJson(res, 204, undefined);
    } else if (method === "POST" && (action === "connect" || action === "resume")) {
      const rec = sandboxFor(ctx, caller, id);
      if (rec.state === "paused" || rec.state === "suspended") {
        await ctx.manager.resume(rec.id);
        // A paused sandbox had no end time (pause took it away); it gets one again from now, as E2B's do.
        ctx.manager.setTtl(rec.id, timeoutSeconds(body.timeout));
        return sendJson(res, 201, created(ctx, ctx.manager.get(rec.id)));
      }
      if (body.timeout !== undefined) ctx.manager.setTtl(rec.id, timeoutSeconds(body.timeout));
      return sendJson(res, 200, created(ctx, rec));
    } else if (method === "POST" && action === "pause") {
      const rec = sandboxFor(ctx, caller, id);
      // E2B's pause keeps memory unless told not to; mvm's suspend always does (a disk-only pause would be a
      // stop, whose resume is a cold boot: not what the SDK's caller asked for by default).
      if (body.memory === false) throw new E2bError("mvm pauses sandboxes with their memory only: call pause() without keepMemory: false", "invalid_argument");
      if (rec.state === "paused" || rec.state === "suspended") throw new E2bError(`sandbox ${id} is already paused`, "already_exists", 409);
      // Saved to disk with its memory (mvm suspend), QEMU gone; a paused sandbox lives until resumed or killed.
      await ctx.manager.suspend(rec.id);
      ctx.manager.setTtl(rec.id, null);
      return sendJson(res, 204, undefined);
    } else if (method === "GET" && action === "metrics") {
      const rec = sandboxFor(ctx, caller, id);
      return sendJson(res, 200, metrics(rec, ctx.manager.statsHistory.vm(rec.id), url.searchParams));
    }
    throw new E2bError(`no route ${method} ${url.pathname}`, "not_found");
  } catch (e) {
    const { status, body } = controlError(e);
    sendJson(res, status, body);
  }
}

/**
 * getMetrics(): the daemon's samples of the last minutes (stats-history.ts) within ?start=&end= (Unix
 * seconds), in E2B's shape. CPU is in % of the sandbox's vCPUs; memory is what its QEMU holds on the host
 * (RSS, QEMU's own included), beside the memory the guest was given. The guest's disk use is not sampled: 0.
 */
export function metrics(r: VmRecord, samples: readonly VmStatsSample[], q: URLSearchParams): object[] {
  const bound = (k: string) => {
    const v = q.get(k);
    if (v === null || v === "") return undefined;
    const n = Number(v);
    if (!Number.isFinite(n) || n < 0) throw new E2bError(`${k} must be a Unix time in seconds, not ${JSON.stringify(v)}`, "invalid_argument");
    return n * 1000;
  };
  // Whole seconds (the SDK rounds): the end second is included to its last millisecond.
  const [from, to] = [bound("start") ?? 0, (bound("end") ?? Infinity) + 999];
  const cpus = r.spec.cpus;
  return samples
    .filter((s) => Date.parse(s.at) >= from && Date.parse(s.at) <= to)
    .map((s) => ({
      timestamp: s.at,
      timestampUnix: Math.floor(Date.parse(s.at) / 1000),
      cpuUsedPct: Math.round(((s.cpuPercent ?? 0) / cpus) * 100) / 100,
      cpuCount: cpus,
      memUsed: s.rssBytes,
      memTotal: r.spec.memoryMiB * 1024 * 1024,
      memCache: 0,
      diskUsed: 0,
      diskTotal: (r.spec.diskSizeMiB ?? 0) * 1024 * 1024,
    }));
}
