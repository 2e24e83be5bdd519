// A real daemon for the process tier with its network listener: the HTTP API on $home/mvm.sock (the host's
// root, with /v1/tokens) and on TCP for tokens (src/daemon/listen.ts), over the fake QEMU, wired as
// src/daemon/main.ts wires them. Prints "ready URL" once both serve; SIGTERM ends it as it ends mvm's daemon.
//   node tcp-daemon-child.js HOME '{"listen":"127.0.0.1:0"}' '{"headersMs":1000}'

import { unlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { TokenAccess } from "../../src/daemon/access.js";
import type { DaemonConfig } from "../../src/daemon/daemon-config.js";
import { listenNetwork, planListen, type Timeouts } from "../../src/daemon/listen.js";
import { buildServer } from "../../src/daemon/server.js";
import { RequestLog } from "../../src/daemon/request-log.js";
import { TokenStore } from "../../src/store/token-store.js";
import { managerFor } from "./harness.js";

const home = process.argv[2]!;
const config = JSON.parse(process.argv[3] ?? "{}") as DaemonConfig;
const timeouts = JSON.parse(process.argv[4] ?? "{}") as Partial<Timeouts>;
const log = (line: string) => process.stderr.write(`${new Date().toISOString()} tcp-daemon: ${line}\n`);

const plan = planListen(config);
if (!plan) throw new Error("no listen address given");
const { manager, close } = managerFor(home, {}, log);
await manager.reconcile();
const tokens = new TokenAccess(new TokenStore(join(home, "mvm.db")));
const info = { version: "process-test", home };
const requestLog = new RequestLog(join(home, "requests.log"));
const app = buildServer(manager, info, { tokens, requestLog });
const pidFile = join(home, "daemon.pid");
writeFileSync(pidFile, String(process.pid), { mode: 0o600 });
await app.listen({ path: join(home, "mvm.sock") });
const network = await listenNetwork(manager, tokens, plan, info, { timeouts, requestLog });
process.stdout.write(`ready ${network.url}\n`);

process.on("SIGTERM", () => {
  void Promise.all([app.close(), network.close(1000), manager.close()]).then(() => requestLog.close()).finally(() => {
    close();
    try {
      unlinkSync(pidFile);
    } catch {
      /* gone */
    }
    process.exit(0);
  });
});
