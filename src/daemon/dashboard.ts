// The web dashboard (issue 15, dashboard/): its bundle, built at set-up into dist/dashboard (scripts/setup.sh),
// served by the daemon itself on the network listener, nothing fetched from elsewhere. The files are public
// (a page that asks for a token); every API call the page makes carries the token like any client's.
//   GET / → 302 /dashboard/; GET /dashboard/ → index.html; GET /dashboard/FILE → the bundle's file.
// index.html is `no-cache` (always revalidated, so a new bundle is picked up), the rest is revalidated too
// but by its ETag (size and mtime): the bundle's names carry no hash. Only GET and HEAD; a path that is not
// one of the bundle's files is 404 in mvm's body shape; nothing outside the folder can be named.
// A tight Content-Security-Policy: the page loads only its own scripts and styles, and talks only to its origin.

import { readdirSync, readFileSync, statSync } from "node:fs";
import type { IncomingMessage, ServerResponse } from "node:http";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/** dist/dashboard beside the compiled daemon (three folders above this file), or MVM_DASHBOARD_DIR. */
export const dashboardDir = (): string => process.env.MVM_DASHBOARD_DIR ?? join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..", "dist", "dashboard");

const TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".png": "image/png",
  ".svg": "image/svg+xml",
  ".map": "application/json",
};

const CSP = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

interface Asset {
  body: Buffer;
  type: string;
  etag: string;
}

export interface Dashboard {
  /** Answers the request if it is the dashboard's; false if it is not (the API takes it). */
  handle(req: IncomingMessage, res: ServerResponse): boolean;
}

/** The dashboard's files, read once (they change only at set-up), or a handler that says how to build them. */
export function dashboard(dir = dashboardDir()): Dashboard {
  let assets: Map<string, Asset> | undefined;
  const load = (): Map<string, Asset> => {
    if (assets) return assets;
    const m = new Map<string, Asset>();
    try {
      for (const name of readdirSync(dir)) {
        const ext = name.slice(name.lastIndexOf("."));
        if (!TYPES[ext]) continue;
        const st = statSync(join(dir, name));
        if (!st.isFile()) continue;
        m.set(name, { body: readFileSync(join(dir, name)), type: TYPES[ext], etag: `"${st.size.toString(16)}-${Math.floor(st.mtimeMs).toString(16)}"` });
      }
    } catch {
      /* not built: answered below */
    }
    if (m.has("index.html")) assets = m;
    return m;
  };
  const json = (res: ServerResponse, status: number, body: object) => {
    res.writeHead(status, { "content-type": "application/json; charset=utf-8", "cache-control": "no-store" });
    res.end(JSON.stringify(body));
  };
  return {
    handle(req, res) {
      const path = (req.url ?? "/").split("?")[0]!;
      if (path !== "/" && path !== "/dashboard" && !path.startsWith("/dashboard/")) return false;
      if (req.method !== "GET" && req.method !== "HEAD") {
        res.setHeader("allow", "GET, HEAD");
        json(res, 405, { error: "UNKNOWN_ROUTE", message: `the dashboard's files are read with GET, not ${req.method}`, hint: "the API is under /v1/" });
        return true;
      }
      if (path === "/" || path === "/dashboard") {
        res.writeHead(302, { location: "/dashboard/", "cache-control": "no-store" });
        res.end();
        return true;
      }
      const name = path.slice("/dashboard/".length) || "index.html";
      const files = load();
      if (!files.has("index.html")) {
        json(res, 404, { error: "UNKNOWN_ROUTE", message: `the dashboard is not built (no ${join(dir, "index.html")})`, hint: "run scripts/setup.sh (or node dashboard/build.mjs), then restart the daemon" });
        return true;
      }
      const a = /^[A-Za-z0-9._-]+$/.test(name) ? files.get(name) : undefined;
      if (!a) {
        json(res, 404, { error: "UNKNOWN_ROUTE", message: `the dashboard has no file ${name}`, hint: "open /dashboard/" });
        return true;
      }
      const headers = {
        "content-type": a.type,
        etag: a.etag,
        "cache-control": name === "index.html" ? "no-cache" : "public, max-age=0, must-revalidate",
        "x-content-type-options": "nosniff",
        "referrer-policy": "no-referrer",
        ...(name === "index.html" ? { "content-security-policy": CSP, "x-frame-options": "DENY" } : {}),
      };
      if (req.headers["if-none-match"] === a.etag) {
        res.writeHead(304, headers);
        res.end();
        return true;
      }
      res.writeHead(200, { ...headers, "content-length": a.body.length });
      res.end(req.method === "HEAD" ? undefined : a.body);
      return true;
    },
  };
}
