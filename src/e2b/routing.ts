// Which plane a request on the TCP listener is for. envd requests carry E2b-Sandbox-Id and
// E2b-Sandbox-Port (the SDK's E2B_SANDBOX_URL mode), or a Host of the form <port>-<sandboxId>.<domain>;
// the control plane is the E2B REST paths, none of which mvm's own /v1 API uses; a signed /files URL
// (uploadUrl, downloadUrl) carries neither and is found by its signature. Anything else is mvm's.

import type { IncomingHttpHeaders } from "node:http";

export type E2bRoute = { plane: "envd"; sandboxId: string; port: number } | { plane: "control" } | { plane: "signed" };

/** Sandbox ids are what mvm makes them: lower-case letters and digits (the Host form splits on '-'). */
export const SANDBOX_ID_PATTERN = /^[a-z0-9]{1,63}$/;
/** The port envd listens on in an E2B sandbox; the SDK addresses it in every envd request. */
export const ENVD_PORT = 49983;

const CONTROL_PATHS = [/^\/sandboxes(\/|\?|$)/, /^\/v2\/sandboxes(\/|\?|$)/];

export function routeOf(url: string | undefined, headers: IncomingHttpHeaders): E2bRoute | undefined {
  const id = headers["e2b-sandbox-id"];
  if (typeof id === "string") {
    const port = Number(headers["e2b-sandbox-port"] ?? ENVD_PORT);
    return { plane: "envd", sandboxId: id, port: Number.isInteger(port) ? port : -1 };
  }
  const host = /^(\d{1,5})-([a-z0-9]{1,63})\./.exec(headers.host ?? "");
  if (host) return { plane: "envd", sandboxId: host[2]!, port: Number(host[1]) };
  if (CONTROL_PATHS.some((p) => p.test(url ?? ""))) return { plane: "control" };
  // uploadUrl()/downloadUrl() name no sandbox: the signature tells which one (backend.ts tries each).
  if (/^\/files\?(.*&)?signature=/.test(url ?? "")) return { plane: "signed" };
  return undefined;
}
