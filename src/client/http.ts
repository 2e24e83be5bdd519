// HTTP to the daemon, over its Unix socket or its network listener (http or https, with a bearer token):
// JSON requests, JSON or NDJSON responses, upgraded streams. Every function takes the same HttpOptions.

import { request as httpRequest, type ClientRequest, type IncomingMessage, type RequestOptions } from "node:http";
import { request as httpsRequest } from "node:https";
import { createInterface } from "node:readline";
import type { Duplex } from "node:stream";
import { errorFromBody } from "../errors.js";

export interface HttpOptions {
  /** The daemon's Unix socket; or */
  socketPath?: string;
  /** its network listener: http://HOST:PORT or https://HOST:PORT, */
  url?: string;
  /** with this token (Authorization: Bearer), */
  token?: string;
  /** and for https, the certificate authorities to trust (PEM) beside the system's. */
  ca?: string | Buffer;
  signal?: AbortSignal;
}

/** A request to the daemon as `o` reaches it: path, method and headers added to where it goes. */
function request(o: HttpOptions, options: RequestOptions, onResponse?: (res: IncomingMessage) => void): ClientRequest {
  const headers = { ...(options.headers as Record<string, string | number> | undefined), ...(o.token ? { authorization: `Bearer ${o.token}` } : {}) };
  if (!o.url) return httpRequest({ ...options, socketPath: o.socketPath, headers }, onResponse);
  const u = new URL(o.url);
  const where = { ...options, protocol: u.protocol, hostname: u.hostname.replace(/^\[|\]$/g, ""), port: u.port || (u.protocol === "https:" ? 443 : 80), headers };
  return u.protocol === "https:" ? httpsRequest({ ...where, ...(o.ca ? { ca: o.ca } : {}) }, onResponse) : httpRequest(where, onResponse);
}

function send(o: HttpOptions, method: string, path: string, body?: unknown): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const req = request(
      o,
      {
        method,
        path,
        signal: o.signal,
        headers: payload ? { "content-type": "application/json", "content-length": payload.length } : {},
      },
      resolve,
    );
    req.on("error", reject);
    req.end(payload);
  });
}

async function readAll(res: IncomingMessage): Promise<string> {
  let text = "";
  for await (const chunk of res) text += (chunk as Buffer).toString();
  return text;
}

async function failIfError(res: IncomingMessage): Promise<void> {
  if ((res.statusCode ?? 500) < 400) return;
  const text = await readAll(res);
  let body: Record<string, unknown> = {};
  try {
    body = JSON.parse(text) as Record<string, unknown>;
  } catch {
    body = { message: text };
  }
  throw errorFromBody(res.statusCode ?? 500, body);
}

/**
 * Sends a raw body (a file, stdin) as application/octet-stream, streaming it with backpressure, and
 * returns the JSON answer.
 */
export function requestUpload<T>(o: HttpOptions, method: string, path: string, body: AsyncIterable<Buffer>, onChunk?: (chunk: Buffer) => void): Promise<T> {
  return new Promise((resolve, reject) => {
    const req = request(o, { method, path, signal: o.signal, headers: { "content-type": "application/octet-stream", "transfer-encoding": "chunked" } }, (res) => {
      failIfError(res)
        .then(() => readAll(res))
        .then((text) => resolve((text ? JSON.parse(text) : undefined) as T), reject);
    });
    req.on("error", reject);
    void (async () => {
      try {
        for await (const chunk of body) {
          onChunk?.(chunk);
          if (!req.write(chunk)) await new Promise<void>((r) => req.once("drain", () => r()));
        }
        req.end();
      } catch (e) {
        const error = e instanceof Error ? e : new Error(String(e));
        req.destroy(error);
        reject(error);
      }
    })();
  });
}

/** A response body to read as bytes (file contents), after the HTTP status was checked. */
export async function requestBody(o: HttpOptions, path: string): Promise<IncomingMessage> {
  const res = await send(o, "GET", path);
  await failIfError(res);
  return res;
}

export async function requestJson<T>(o: HttpOptions, method: string, path: string, body?: unknown): Promise<T> {
  const res = await send(o, method, path, body);
  await failIfError(res);
  const text = await readAll(res);
  return (text ? JSON.parse(text) : undefined) as T;
}

/** Calls onLine for each NDJSON line of the response; resolves when the stream ends. */
export async function requestStream(o: HttpOptions, method: string, path: string, body: unknown, onLine: (value: Record<string, unknown>) => void): Promise<void> {
  const res = await send(o, method, path, body);
  await failIfError(res);
  for await (const l of createInterface({ input: res })) if (l) onLine(JSON.parse(l) as Record<string, unknown>);
}

/** The NDJSON lines of a response as an async iterator (ends with the response). */
export async function* streamLines(o: HttpOptions, method: string, path: string, body?: unknown): AsyncGenerator<Record<string, unknown>> {
  const res = await send(o, method, path, body);
  await failIfError(res);
  for await (const l of createInterface({ input: res })) if (l) yield JSON.parse(l) as Record<string, unknown>;
}

/** Pipes a plain-text response to onData. */
export async function requestText(o: HttpOptions, path: string, onData: (chunk: Buffer) => void): Promise<void> {
  const res = await send(o, "GET", path);
  await failIfError(res);
  for await (const chunk of res) onData(chunk as Buffer);
}

/** Upgrades a request to a raw stream (the console); an HTTP error answer becomes an MvmError. */
export function openUpgrade(o: HttpOptions, path: string, protocol: string): Promise<Duplex> {
  return new Promise((resolve, reject) => {
    const req = request(o, { path, method: "GET", signal: o.signal, headers: { connection: "Upgrade", upgrade: protocol } });
    req.on("upgrade", (_res, socket) => resolve(socket));
    req.on("response", (res) => {
      void readAll(res).then((text) => {
        let body: Record<string, unknown> = { message: text };
        try {
          body = JSON.parse(text) as Record<string, unknown>;
        } catch {
          /* plain text */
        }
        reject(errorFromBody(res.statusCode ?? 500, body));
      });
    });
    req.on("error", reject);
    req.end();
  });
}
