// One HTTP status per error class, one body shape for all: { error, message, hint, details }. The status
// is the class's own (src/errors/); errors that are not mvm's (Fastify's, Node's HTTP parser's, bugs) are
// first turned into the class that says the same, so every answer the daemon gives has mvm's shape.

import { STATUS_CODES } from "node:http";
import type { Socket } from "node:net";
import type { ConnectionError, FastifyError, FastifyInstance, FastifyReply } from "fastify";
import {
  BadRequestError,
  BodyTooLargeError,
  HeadersTooLargeError,
  HostDiskFullError,
  InternalError,
  MvmError,
  RequestTimeoutError,
  RouteNotFoundError,
  UnsupportedMediaTypeError,
  UriTooLongError,
} from "../errors.js";

/**
 * Fastify's own request errors, by the status it gives them: FST_ERR_CTP_BODY_TOO_LARGE 413,
 * FST_ERR_CTP_INVALID_MEDIA_TYPE 415, FST_ERR_MAX_PARAM_LENGTH 414 (a path parameter over the router's
 * limit), FST_ERR_NOT_FOUND 404; any other 4xx (FST_ERR_CTP_INVALID_JSON_BODY, FST_ERR_CTP_EMPTY_JSON_BODY,
 * FST_ERR_CTP_INVALID_CONTENT_LENGTH, FST_ERR_BAD_URL, FST_ERR_VALIDATION, a JSON syntax error) is a 400.
 */
const FASTIFY_BY_STATUS: Record<number, typeof BadRequestError> = {
  404: RouteNotFoundError,
  408: RequestTimeoutError,
  413: BodyTooLargeError,
  414: UriTooLongError,
  415: UnsupportedMediaTypeError,
  431: HeadersTooLargeError,
};

/** Where Fastify's text says less (or quotes the whole long path back). */
const CLEARER: Record<string, string> = {
  FST_ERR_MAX_PARAM_LENGTH: "a path parameter (a VM reference, a name) is over the router's limit of 100 characters",
  FST_ERR_CTP_INVALID_MEDIA_TYPE: "this route does not take a body of this content type",
};

/** Any error as mvm's: MvmErrors as they are, a request Fastify refused as the class for it, the rest as a bug. */
export function asMvmError(e: unknown): MvmError {
  if (e instanceof MvmError) return e;
  // The host's disk full anywhere (a file mvm writes, SQLite's WAL): said so, not a bug.
  const code = (e as { code?: unknown } | undefined)?.code;
  if (code === "ENOSPC" || code === "EDQUOT" || code === "SQLITE_FULL") {
    return new HostDiskFullError(`no space left on the host's disk (${(e as Error).message})`, { details: { errno: code }, cause: e });
  }
  const f = e as Partial<FastifyError> | undefined;
  const message = typeof f?.message === "string" && f.message ? f.message : String(e);
  if (f && typeof f.statusCode === "number" && f.statusCode >= 400 && f.statusCode < 500) {
    const cls = FASTIFY_BY_STATUS[f.statusCode] ?? BadRequestError;
    const details: Record<string, unknown> = { ...(f.code ? { fastifyCode: f.code } : {}), ...(f.validation ? { problems: f.validation } : {}) };
    const text = (f.code ? CLEARER[f.code] : undefined) ?? message;
    return new cls(text, { details, cause: e, ...(f.name === "SyntaxError" ? { hint: "send a JSON body (content-type: application/json)" } : {}) });
  }
  return new InternalError(message, { cause: e });
}

export function errorResponse(e: unknown): { status: number; body: Record<string, unknown> } {
  const err = asMvmError(e);
  return { status: (err.constructor as typeof MvmError).status, body: err.toJSON() };
}

const send = (reply: FastifyReply, e: unknown) => {
  const { status, body } = errorResponse(e);
  void reply.status(status).send(body);
};

function requestLineIsLonger(packet: Buffer | undefined): boolean {
  if (!Buffer.isBuffer(packet)) return false;
  const end = packet.indexOf("\r\n\r\n");
  const head = end < 0 ? packet : packet.subarray(0, end);
  const line = head.indexOf("\r\n");
  return line < 0 || line > head.length - line;
}

/**
 * Options for Fastify(): the requests its router refuses before any hook (a path parameter over the
 * length limit: 414; a malformed URL: 400), and the ones Node's HTTP parser refuses before Fastify sees
 * them (headers, or a request line, over Node's limit: 431 or 414; too slow: 408; unreadable: 400).
 */
export const errorOptions = {
  frameworkErrors: (error: FastifyError, _req: unknown, reply: FastifyReply) => send(reply, error),
  clientErrorHandler: (err: ConnectionError, socket: Socket) => {
    const error = err as ConnectionError & { code?: string; rawPacket?: Buffer };
    if (error.code === "ECONNRESET" || socket.destroyed) return;
    const e =
      error.code === "ERR_HTTP_REQUEST_TIMEOUT" ? new RequestTimeoutError("the request did not arrive in time")
      // Node counts the request line in its header limit: when the line is the larger part, the URL is to blame.
      : error.code === "HPE_HEADER_OVERFLOW" && requestLineIsLonger(error.rawPacket) ? new UriTooLongError("the request's URL is over the daemon's limit")
      : error.code === "HPE_HEADER_OVERFLOW" ? new HeadersTooLargeError("the request's headers are over the daemon's limit")
      : new BadRequestError(`the daemon cannot read this HTTP request (${error.code ?? error.message})`, { hint: "send HTTP/1.1" });
    const { status, body } = errorResponse(e);
    const text = JSON.stringify(body);
    if (socket.writable) {
      socket.write(`HTTP/1.1 ${status} ${STATUS_CODES[status] ?? "Error"}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(text)}\r\nconnection: close\r\n\r\n${text}`);
    }
    socket.destroy(error);
  },
};

const sizeText = (n: number) => (n % 1048576 === 0 ? `${n / 1048576} MiB` : n % 1024 === 0 ? `${n / 1024} KiB` : `${n} bytes`);

/** Every route error, and a route that does not exist, answered in mvm's body shape. */
export function handleErrors(app: FastifyInstance): void {
  app.setErrorHandler((error, req, reply) => {
    // A body over the limit says which limit: each route has its own (src/api/routes.ts).
    const limit = req.routeOptions.bodyLimit;
    if ((error as FastifyError).code === "FST_ERR_CTP_BODY_TOO_LARGE" && typeof limit === "number") {
      // Not "connection: close" (Fastify's choice): the rest of the body is drained (request-body.ts), and
      // the client reads this answer instead of a reset; the connection may then serve its next request.
      reply.removeHeader("connection");
      return send(reply, new BodyTooLargeError(`the request body is over ${sizeText(limit)}, the limit ${req.routeOptions.url ? `of ${req.method} ${req.routeOptions.url}` : "for a request no route takes"}`, { details: { limit, fastifyCode: "FST_ERR_CTP_BODY_TOO_LARGE" }, cause: error }));
    }
    send(reply, error);
  });
  app.setNotFoundHandler((req, reply) => send(reply, new RouteNotFoundError(`no route ${req.method} ${req.url.split("?")[0]}`)));
}
