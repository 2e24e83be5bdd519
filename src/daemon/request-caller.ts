// Every request carries its caller (src/auth/caller.ts) as `req.caller`, set before any route runs. On the
// Unix socket (mode 0600) every request is the host's root; a network listener (issue 13) passes a
// `callerOf` that reads the request's token, and nothing else changes: routes hand req.caller to the
// manager, which applies the rules.

import type { FastifyInstance } from "fastify";
import { HOST_ROOT, type Caller } from "../auth/caller.js";
import type { CallerRequest } from "./access.js";

declare module "fastify" {
  interface FastifyRequest {
    caller: Caller;
  }
}

/** Who a request is, from its headers and connection (src/daemon/access.ts: a bearer token's). */
export type CallerOf = (req: CallerRequest) => Caller;

export function registerCaller(app: FastifyInstance, callerOf: CallerOf = () => HOST_ROOT): void {
  // Declared without a default (Fastify takes no shared object as one); the hook sets it on every request.
  app.decorateRequest("caller");
  // A callerOf that throws (no token, a bad one) refuses the request with its error, in mvm's body shape.
  app.addHook("onRequest", (req, _reply, done) => {
    try {
      req.caller = callerOf(req);
    } catch (e) {
      return done(e as Error);
    }
    done();
  });
}
