// Reading and answering the E2B routes' plain node requests: bodies read with a size cap and a deadline,
// JSON answers, the Connect error body.

import type { IncomingMessage, ServerResponse } from "node:http";
import { EnvelopeError } from "./envelope.js";

/** The whole body, at most `max` bytes (resource_exhausted beyond), within `deadlineMs`. */
export function readBody(req: IncomingMessage, max: number, deadlineMs = 30_000): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const announced = Number(req.headers["content-length"] ?? 0);
    if (announced > max) return reject(new EnvelopeError(`the body of ${announced} bytes is over the limit of ${max}`, "resource_exhausted"));
    const chunks: Buffer[] = [];
    let size = 0;
    const timer = setTimeout(() => {
      req.destroy();
      reject(new EnvelopeError(`the body did not come within ${deadlineMs / 1000} s`, "invalid_argument"));
    }, deadlineMs);
    req.on("data", (c: Buffer) => {
      size += c.length;
      if (size > max) {
        clearTimeout(timer);
        req.destroy();
        return reject(new EnvelopeError(`the body is over the limit of ${max} bytes`, "resource_exhausted"));
      }
      chunks.push(c);
    });
    req.on("end", () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks));
    });
    req.on("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
  });
}

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  if (res.headersSent) return void res.end();
  const text = body === undefined ? "" : JSON.stringify(body);
  res.writeHead(status, { ...(text ? { "content-type": "application/json" } : {}), "content-length": String(Buffer.byteLength(text)), ...headers });
  res.end(text);
}
