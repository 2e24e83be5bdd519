// What the daemon takes as a request body, in one place for every route:
//   - application/json: read whole up to the route's limit (src/api/routes.ts: 1 MiB unless the route says
//     otherwise; a Content-Length over it is refused before a byte is read), parsed with Fastify's parser
//     (__proto__ and constructor.prototype keys refused), and then it must be an object with no NUL byte in
//     any string (src/api/check.ts). It must arrive within a deadline: a client that sends half a body and
//     stalls gets REQUEST_TIMEOUT instead of holding a connection and a buffer forever. A body refused for
//     its size is drained for a few seconds, so that the client reads the 413 instead of a reset.
//   - application/octet-stream: streamed through to the route as it arrives (file contents, stdin), with no
//     limit and no deadline of its own: a large upload takes as long as it takes.
//   - anything else: UNSUPPORTED_MEDIA_TYPE (Fastify's default text/plain parser is dropped).

import { PassThrough, type Readable } from "node:stream";
import type { FastifyInstance } from "fastify";
import { requireJsonObject } from "../api/check.js";
import { BadRequestError, RequestTimeoutError } from "../errors.js";

export interface BodyOptions {
  /** How long a JSON body may take to arrive once the headers are in (default 30 s). */
  bodyTimeoutMs?: number;
}

/** How long a client still sending a refused body is read (and dropped) before its connection is cut. */
const LINGER_MS = 5000;

const isJson = (contentType: string | undefined) => !!contentType && /^application\/json\s*(;|$)/i.test(contentType);

export function registerBodyParsers(app: FastifyInstance, o: BodyOptions = {}): void {
  const timeoutMs = o.bodyTimeoutMs ?? 30_000;
  const parseJson = app.getDefaultJsonParser("error", "error");
  app.removeAllContentTypeParsers();
  app.addContentTypeParser("application/json", { parseAs: "string" }, (req, body, done) => {
    void parseJson(req, body as string, (err, value) => {
      if (err) return done(err, undefined);
      try {
        done(null, requireJsonObject(value));
      } catch (e) {
        done(e as Error, undefined);
      }
    });
  });
  // File contents and stdin stream through as they arrive, never buffered whole.
  app.addContentTypeParser("application/octet-stream", (_req, payload, done) => done(null, payload));

  app.addHook("preParsing", (req, reply, payload, done) => {
    if (!isJson(req.headers["content-type"])) return done(null, payload);
    // Piped, not pipeline(): a timeout must not destroy the request (and its socket) before the 408 is out.
    const source = payload as Readable;
    const timed = new PassThrough();
    const timer = setTimeout(() => {
      source.unpipe(timed);
      timed.destroy(new RequestTimeoutError(`the request's body did not arrive within ${timeoutMs} ms`, { hint: "send the whole body at once" }));
    }, timeoutMs);
    timed.on("close", () => clearTimeout(timer));
    // Fastify may answer without reading the body at all (413 on its Content-Length): once the answer is
    // out, the timer and the stream go, and an error on the stream has a listener whoever still reads it.
    timed.on("error", () => undefined);
    reply.raw.once("close", () => {
      clearTimeout(timer);
      source.unpipe(timed);
      timed.destroy();
      // Answered before the body was all read (413 on its content-length, or once past the limit): what
      // the client still sends is read and dropped for a moment (a lingering close), so that it reads the
      // answer instead of a reset halfway through its writes; a client still sending after that is cut off.
      if (ended || source.destroyed) return;
      const socket = req.raw.socket;
      const linger = setTimeout(() => socket.destroy(), LINGER_MS);
      const stop = () => clearTimeout(linger);
      source.once("end", stop).once("close", stop);
      source.resume();
    });
    let ended = false;
    source.on("end", () => (ended = true));
    source.on("error", (e) => timed.destroy(e));
    source.on("close", () => ended || timed.destroy(new BadRequestError("the client went away before its body was complete")));
    source.pipe(timed);
    done(null, timed);
  });
}
