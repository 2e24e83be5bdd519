// A real daemon for the process tier: the HTTP API (src/daemon/server.ts) on $home/mvm.sock, over the process
// tier's VmManager (harness.ts: the fake QEMU, dummy guest artefacts). A CLI run against this home talks to
// it, and a daemon the CLI might start refuses to run beside it (its socket answers; daemon.pid names it).
// Prints "ready" once it serves; SIGTERM ends it as SIGTERM ends mvm's daemon (VMs run on). Started by
// http-daemon.ts.
//   node http-daemon-child.js HOME '{"readyTimeoutMs":3000}' '{"bodyTimeoutMs":1000}'

import { unlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { buildServer, registeredRoutes } from "../../src/daemon/server.js";
import { openApiDocument } from "../../src/api/openapi.js";
import { recordResponses, type OpenApiDoc } from "./openapi-check.js";
import type { BodyOptions } from "../../src/daemon/request-body.js";
import type { WebSocketOptions } from "../../src/daemon/websocket.js";
import { managerFor, type ManagerKnobs } from "./harness.js";
import { TokenAccess } from "../../src/daemon/access.js";
import { TokenStore } from "../../src/store/token-store.js";

const home = process.argv[2]!;
const knobs = JSON.parse(process.argv[3] ?? "{}") as ManagerKnobs;
const body = JSON.parse(process.argv[4] ?? "{}") as BodyOptions & WebSocketOptions;
const log = (line: string) => process.stderr.write(`${new Date().toISOString()} fuzz-daemon: ${line}\n`);

const { manager, close } = managerFor(home, knobs, log);
await manager.reconcile();
// The host's root's token routes (/v1/tokens) too, as src/daemon/main.ts serves them on the socket.
const app = buildServer(manager, { version: "process-test", home }, { ...body, tokens: new TokenAccess(new TokenStore(join(home, "mvm.db"))) });
// Every answer is checked against the OpenAPI document, in $home/openapi-answers.ndjson (http-daemon.ts reads it).
recordResponses(app, () => openApiDocument("process-test", registeredRoutes(app)) as OpenApiDoc, join(home, "openapi-answers.ndjson"));
const lock = join(home, "daemon.pid");
writeFileSync(lock, String(process.pid), { mode: 0o600 });
const socket = join(home, "mvm.sock");
await app.listen({ path: socket });
process.stdout.write("ready\n");

process.on("SIGTERM", () => {
  void Promise.all([app.close(), manager.close()]).finally(() => {
    close();
    try {
      unlinkSync(lock);
    } catch {
      /* gone */
    }
    process.exit(0);
  });
});
