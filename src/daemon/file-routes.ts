// Files in a running VM over HTTP (docs/api.md): one-shot operations as JSON, contents streamed raw both
// ways. A read sends the CRC-32 of the bytes in a trailer after them; a write answers with the guest's.
// Clients compare it with their own of what they received or sent, so every copy is checked end to end.

import type { FastifyInstance } from "fastify";
import type { FsRequest } from "../agent/messages.js";
import { FileOpAnswerSchema, FileOpBodySchema, FileOpParams, FileReadQuery, FileWriteQuery, TransferResultSchema } from "../api/resource-schemas.js";
import { route } from "../api/routes.js";
import { batches } from "./batches.js";
import { errorResponse } from "./http-errors.js";
import type { VmManager } from "./vm-manager.js";
import { BadRequestError } from "../errors.js";

const OPS = ["stat", "list", "mkdir", "rename", "remove", "chmod", "chown", "symlink"] as const;
type Op = (typeof OPS)[number];

interface FsBody {
  path?: unknown;
  to?: unknown;
  target?: unknown;
  depth?: unknown;
  mode?: unknown;
  owner?: unknown;
  parents?: unknown;
  recursive?: unknown;
}

/** A guest path: absolute, no NUL, at most PATH_MAX. Odd characters (spaces, commas, newlines) are fine. */
export function guestPath(value: unknown, what = "path"): string {
  if (typeof value !== "string" || !value.startsWith("/")) {
    throw new BadRequestError(`${what} must be an absolute path in the guest, not ${JSON.stringify(value)}`, { hint: "e.g. /root/file.txt" });
  }
  if (value.includes("\0") || Buffer.byteLength(value) >= 4096) throw new BadRequestError(`${what} has a NUL byte or is over 4095 bytes`);
  return value;
}

function mode(value: unknown): number | undefined {
  if (value === undefined || value === "") return undefined;
  const n = typeof value === "string" ? (/^[0-7]{1,4}$/.test(value) ? parseInt(value, 8) : NaN) : Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 0o7777) throw new BadRequestError(`mode must be permission bits (0-07777, octal in strings), not ${JSON.stringify(value)}`, { hint: "e.g. \"0644\"" });
  return n;
}

function owner(value: unknown): string | undefined {
  if (value === undefined || value === "") return undefined;
  if (typeof value !== "string" || !/^[A-Za-z0-9_.-]*(:[A-Za-z0-9_.-]*)?$/.test(value) || value.length > 100) {
    throw new BadRequestError(`owner must be USER[:GROUP] (names or numbers), not ${JSON.stringify(value)}`, { hint: "e.g. 1000:1000 or app:app" });
  }
  return value;
}

function fsRequest(op: Op, b: FsBody): FsRequest & { op: Op } {
  const req: FsRequest & { op: Op } = { op, path: guestPath(b.path), mode: mode(b.mode), owner: owner(b.owner), parents: b.parents === true, recursive: b.recursive === true };
  if (op === "rename") req.path2 = guestPath(b.to, "to");
  if (op === "symlink") {
    if (typeof b.target !== "string" || !b.target || b.target.includes("\0")) throw new BadRequestError("symlink needs a target");
    req.path2 = b.target;
  }
  if (op === "list" && b.depth !== undefined) {
    const depth = Number(b.depth);
    if (!Number.isInteger(depth) || depth < 0 || depth > 1000) throw new BadRequestError(`depth must be 0 (everything) to 1000, not ${JSON.stringify(b.depth)}`);
    req.depth = depth;
  }
  if (op === "chmod" && req.mode === undefined) throw new BadRequestError("chmod needs a mode");
  if (op === "chown" && req.owner === undefined) throw new BadRequestError("chown needs an owner");
  return req;
}

export function registerFileRoutes(app: FastifyInstance, manager: VmManager): void {
  const opDoc = route({ summary: "stat, list, mkdir, rename, remove, chmod, chown or symlink in the guest; answers {entries}", answer: "json", params: FileOpParams, body: FileOpBodySchema, response: FileOpAnswerSchema });
  app.post<{ Params: { ref: string; op: string }; Body: FsBody }>("/v1/vms/:ref/files/:op", opDoc, async (req) => {
    const op = req.params.op as Op;
    if (!OPS.includes(op)) throw new BadRequestError(`unknown file operation ${JSON.stringify(req.params.op)}`, { hint: `one of ${OPS.join(", ")}` });
    const request = fsRequest(op, req.body ?? {});
    const { agent } = manager.agentFor(req.params.ref, "files");
    return { entries: await agent.fileOp(request) };
  });

  const readDoc = route({ summary: "a file's bytes, streamed; trailer x-mvm-crc32 (or x-mvm-error)", answer: "octet", query: FileReadQuery });
  app.get<{ Params: { ref: string }; Querystring: { path?: string } }>("/v1/vms/:ref/files/content", readDoc, async (req, reply) => {
    const path = guestPath(req.query.path);
    const { agent } = manager.agentFor(req.params.ref, "files");
    const raw = reply.raw;
    // Bytes may arrive in the same read as the stat: hold them until the head is out.
    let pending: Buffer[] | undefined = [];
    const session = agent.readFile(path, (chunk) => {
      if (pending) return void pending.push(chunk);
      if (!raw.write(chunk)) {
        session.pause();
        raw.once("drain", () => session.resume());
      }
    });
    const info = await session.info; // a missing file is a plain 404 here
    reply.hijack();
    raw.writeHead(200, {
      "content-type": "application/octet-stream",
      "x-mvm-size": String(info.size),
      "x-mvm-mode": info.mode.toString(8).padStart(4, "0"),
      trailer: "x-mvm-crc32, x-mvm-error",
    });
    for (const chunk of pending) raw.write(chunk);
    pending = undefined;
    let finished = false;
    raw.on("close", () => finished || session.cancel());
    session.result.then(
      (r) => {
        finished = true;
        raw.addTrailers({ "x-mvm-crc32": r.crc32 });
        raw.end();
      },
      (e: unknown) => {
        finished = true;
        raw.addTrailers({ "x-mvm-error": JSON.stringify(errorResponse(e).body) });
        raw.end();
      },
    );
  });

  const writeDoc = route({ summary: "write a file from the body, renamed into place when complete; answers {size, crc32}", answer: "json", octetBody: true, query: FileWriteQuery, response: TransferResultSchema });
  app.put<{ Params: { ref: string }; Querystring: Record<string, string | undefined> }>("/v1/vms/:ref/files/content", writeDoc, async (req) => {
    const q = req.query;
    const path = guestPath(q.path);
    if (!req.headers["content-type"]?.startsWith("application/octet-stream")) {
      throw new BadRequestError("send the file's bytes as application/octet-stream");
    }
    const request = { path, mode: mode(q.mode), owner: owner(q.owner), parents: q.parents === "true", exclusive: q.exclusive === "true" };
    const { agent } = manager.agentFor(req.params.ref, "files");
    const session = agent.writeFile(request);
    try {
      await session.ready;
      for await (const chunk of batches(req.body as AsyncIterable<Buffer>)) await session.write(chunk);
      return await session.end();
    } catch (e) {
      session.cancel(e); // the guest drops its temporary file; the destination is untouched
      throw e;
    }
  });
}
