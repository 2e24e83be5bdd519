// envd's plain HTTP file routes: GET /files (a file's bytes) and POST /files (multipart, several files at
// once with their paths in the part file names, or application/octet-stream, optionally gzip), both with
// ?path= and ?username=; and GET /health. Writes make missing parent directories, as envd does.

import type { IncomingMessage, ServerResponse } from "node:http";
import { createGunzip } from "node:zlib";
import { Readable } from "node:stream";
import type { VmManager } from "../daemon/vm-manager.js";
import { batches } from "../daemon/batches.js";
import { connectError, E2bError } from "./errors.js";
import { readBody, sendJson } from "./http-io.js";
import { boundaryOf, parseMultipart } from "./multipart.js";
import { resolvePath } from "./filesystem-service.js";
import type { SandboxRef } from "./process-service.js";

/** A multipart body is parsed in memory: this is its limit (octet-stream bodies stream, without one). */
export const MAX_MULTIPART_BYTES = 256 * 1024 * 1024;

/** envd's file routes answer `{code, message}` with the HTTP status (404 → the SDK's FileNotFoundError). */
function fail(res: ServerResponse, e: unknown): void {
  const { message, status, code } = connectError(e);
  const http = code === "not_found" ? 404 : code === "invalid_argument" || code === "failed_precondition" ? 400 : status;
  if (res.headersSent) return void res.destroy();
  sendJson(res, http, { code: http, message });
}

async function writeOne(manager: VmManager, sbx: SandboxRef, path: string, source: AsyncIterable<Buffer>): Promise<{ name: string; path: string; type: "file" }> {
  const { agent } = manager.agentFor(sbx.vmId, "files");
  const session = agent.writeFile({ path, parents: true, ...(sbx.user === "root" ? {} : { owner: sbx.user }) });
  try {
    await session.ready;
    for await (const chunk of batches(source)) await session.write(chunk);
    await session.end();
  } catch (e) {
    session.cancel(e);
    throw e;
  }
  return { name: path.slice(path.lastIndexOf("/") + 1), path, type: "file" };
}

export async function serveFiles(manager: VmManager, sbx: SandboxRef, req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
  try {
    if (req.method === "GET") return await download(manager, sbx, res, resolvePath(url.searchParams.get("path"), sbx.user));
    if (req.method !== "POST") throw new E2bError(`${req.method} /files is not a route`, "unimplemented");
    const queryPath = url.searchParams.get("path");
    const boundary = boundaryOf(req.headers["content-type"]);
    const written = [];
    if (boundary) {
      const parts = parseMultipart(await readBody(req, MAX_MULTIPART_BYTES, 300_000), boundary).filter((p) => p.name === "file");
      if (!parts.length) throw new E2bError("the multipart body has no part named file", "invalid_argument");
      for (const p of parts) {
        const target = p.filename ?? queryPath;
        if (!target) throw new E2bError("a file part has no file name and no ?path= was given", "invalid_argument");
        written.push(await writeOne(manager, sbx, resolvePath(target, sbx.user), Readable.from([p.data])));
      }
    } else {
      if (!queryPath) throw new E2bError("an octet-stream upload needs ?path=", "invalid_argument");
      const gzip = /gzip/i.test(String(req.headers["content-encoding"] ?? ""));
      written.push(await writeOne(manager, sbx, resolvePath(queryPath, sbx.user), gzip ? req.pipe(createGunzip()) : req));
    }
    sendJson(res, 200, written);
  } catch (e) {
    fail(res, e);
  }
}

async function download(manager: VmManager, sbx: SandboxRef, res: ServerResponse, path: string): Promise<void> {
  const { agent } = manager.agentFor(sbx.vmId, "files");
  const [entry] = await agent.fileOp({ op: "stat", path });
  if (entry?.type === "dir") throw new E2bError(`${path} is a directory`, "invalid_argument");
  let pending: Buffer[] | undefined = [];
  const session = agent.readFile(path, (chunk) => {
    if (pending) return void pending.push(chunk);
    if (!res.write(chunk)) {
      session.pause();
      res.once("drain", () => session.resume());
    }
  });
  const info = await session.info;
  res.writeHead(200, { "content-type": "application/octet-stream", "content-length": String(info.size) });
  for (const c of pending) res.write(c);
  pending = undefined;
  let finished = false;
  res.on("close", () => finished || session.cancel());
  await session.result.then(
    () => {
      finished = true;
      res.end();
    },
    () => {
      finished = true;
      res.destroy(); // the length promised cannot be kept: the client sees a cut transfer, not a short file
    },
  );
}
