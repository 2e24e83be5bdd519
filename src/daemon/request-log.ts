// Request ids and the daemon's request log. Every response carries `x-request-id`: the caller's own id
// when it sent a sane one (so a client's logs and ours line up), a new one otherwise. With a log, each
// finished request is one JSON line (Fastify's logger, pino) in $MVM_HOME/requests.log: time, id, which
// listener, who asked, method, path, status and milliseconds. The file is bounded: past its size it is
// moved to requests.log.1 (the one before is dropped) and a new one begun.

import { randomBytes } from "node:crypto";
import { renameSync, statSync } from "node:fs";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Duplex } from "node:stream";
import { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyReply, type FastifyRequest, type FastifyServerOptions } from "fastify";
import { pino } from "pino";
import type { Caller } from "../auth/caller.js";

export type Listener = "unix" | "tcp";

/** A client's id is taken as it is only when it is short and plain: it goes into headers and logs. */
const CLIENT_ID = /^[A-Za-z0-9._:-]{1,64}$/;
/** Query parameters that carry secrets (the dashboard's token, signed file URLs): never written down. */
const SECRET_PARAMS = /([?&](?:token|access_token|signature|signature_expiration)=)[^&#]*/gi;
const MAX_URL = 1024;

/**
 * The request-id and log options of a Fastify server: ids taken from `x-request-id` or made, and one line
 * per request, written by Fastify's log controller as the request ends (not its two, incoming and completed).
 */
export function requestLogOptions(listener: Listener): Pick<FastifyServerOptions, "genReqId" | "logController"> {
  return {
    genReqId: requestIdOf,
    logController: new RequestLines(listener),
  };
}

class RequestLines extends LogController {
  constructor(private readonly listener: Listener) {
    super({ requestIdLogLabel: "id" });
  }

  override incomingRequest(): void {}

  override requestCompleted(error: Error | null | undefined, req: FastifyRequest, reply: FastifyReply): void {
    const line = { listener: this.listener, ...who(req.caller), method: req.method, url: loggedUrl(req.url), status: reply.statusCode, ms: tenths(reply.elapsedTime) };
    if (error) req.log.error({ ...line, error: error.message }, "request");
    else req.log.info(line, "request");
  }
}

/** 16 hex digits: this daemon's random prefix and a counter (cheaper than random bytes per request). */
const PREFIX = randomBytes(4).toString("hex");
let counter = 0;
const nextId = () => PREFIX + (counter = (counter + 1) >>> 0).toString(16).padStart(8, "0");

/** A request's id: the client's own when it sent a sane one, a new one otherwise. */
export function requestIdOf(req: IncomingMessage): string {
  const sent = req.headers["x-request-id"];
  return typeof sent === "string" && CLIENT_ID.test(sent) ? sent : nextId();
}

/** What a path looks like in the log: secrets out, bounded in length. */
export function loggedUrl(url: string): string {
  const clean = url.replace(SECRET_PARAMS, "$1-");
  return clean.length > MAX_URL ? `${clean.slice(0, MAX_URL)}…` : clean;
}

/** Every answer carries its request's id, refusals before any route included. */
export function registerRequestId(app: FastifyInstance): void {
  app.addHook("onRequest", (req, reply, done) => {
    void reply.header("x-request-id", req.id);
    done();
  });
}

/** The daemon's request log: a pino logger on a file that starts again past maxBytes (default 16 MiB). */
export class RequestLog {
  /** pino's logger, typed as Fastify takes it (loggerInstance). */
  readonly logger: FastifyBaseLogger;
  private readonly dest: ReturnType<typeof pino.destination>;
  private size: number;

  constructor(
    readonly path: string,
    private readonly maxBytes = 16 << 20,
  ) {
    this.dest = pino.destination({ dest: path, sync: false, append: true });
    this.size = sizeOf(path);
    const sink = {
      write: (line: string) => {
        this.dest.write(line);
        this.size += Buffer.byteLength(line);
        if (this.size > this.maxBytes) this.rotate();
      },
    };
    this.logger = pino({ base: undefined, timestamp: pino.stdTimeFunctions.isoTime, formatters: { level: (label) => ({ level: label }) } }, sink);
  }

  /**
   * A request served beside Fastify (the E2B backend, on the network listener): the same id header, and
   * the same line once its response is done. Called as it is taken, before anything of the answer is sent.
   */
  follow(req: IncomingMessage, res: ServerResponse, listener: Listener, plane: string): void {
    const id = requestIdOf(req);
    if (!res.headersSent) res.setHeader("x-request-id", id);
    const t0 = performance.now();
    res.once("close", () => this.logger.info({ id, listener, plane, method: req.method, url: loggedUrl(req.url ?? ""), status: res.statusCode, ms: tenths(performance.now() - t0) }, "request"));
  }

  /**
   * An upgraded stream (exec, console, port, WebSocket): its line when the connection closes, with the
   * status it was answered (101, or the refusal's) and how long it lasted. The id goes in the log only
   * (the 101 is written by code that sets no extra header).
   */
  followUpgrade(req: IncomingMessage, socket: Duplex, listener: Listener): void {
    const id = requestIdOf(req);
    const t0 = performance.now();
    let status: number | undefined;
    // The first bytes the daemon writes (socket.write, or socket.end for a refusal) are the answer's status line.
    const write = socket.write.bind(socket) as (chunk: unknown, ...rest: unknown[]) => boolean;
    const end = socket.end.bind(socket) as (...args: unknown[]) => Duplex;
    const seen = (chunk: unknown) => {
      if (status !== undefined || chunk === undefined || typeof chunk === "function") return;
      const m = /^HTTP\/1\.1 (\d{3})/.exec(Buffer.isBuffer(chunk) ? chunk.subarray(0, 16).toString("latin1") : typeof chunk === "string" ? chunk.slice(0, 16) : "");
      status = m ? Number(m[1]) : 0;
      socket.write = write as typeof socket.write;
      socket.end = end as typeof socket.end;
    };
    socket.write = ((chunk: unknown, ...rest: unknown[]) => (seen(chunk), write(chunk, ...rest))) as typeof socket.write;
    socket.end = ((...args: unknown[]) => (seen(args[0]), end(...args))) as typeof socket.end;
    socket.once("close", () => this.logger.info({ id, listener, plane: "upgrade", protocol: String(req.headers.upgrade ?? "").slice(0, 32), method: req.method, url: loggedUrl(req.url ?? ""), status: status ?? 0, ms: Math.round(performance.now() - t0) }, "request"));
  }

  /** Writes already queued still reach the moved file (its descriptor is kept until they are done). */
  private rotate(): void {
    try {
      renameSync(this.path, `${this.path}.1`);
    } catch {
      /* gone already (removed by hand): reopening starts a new one all the same */
    }
    this.dest.reopen();
    this.size = 0;
  }

  /** Written out and closed: sonic-boom's end() returns before the last write is done; 'close' tells. */
  close(): Promise<void> {
    return new Promise((resolve) => {
      this.dest.once("close", () => resolve());
      this.dest.end();
    });
  }
}

/** Milliseconds to a tenth. */
const tenths = (ms: number) => Math.round(ms * 10) / 10;

/** The caller as two fields: "root", or the token's name with its role. */
const who = (c: Caller | undefined) => (!c ? {} : c.kind === "host-root" ? { caller: "root" } : { caller: c.name, role: c.role });

function sizeOf(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}
