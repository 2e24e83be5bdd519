// Finding the daemon of a home, and starting it when none answers (the library's entry point).

import { readFileSync } from "node:fs";
import { join } from "node:path";
import { DaemonNotRunningError } from "../errors.js";
import { homeDir } from "../host/paths.js";
import { MvmClient, type ConnectOptions } from "./client.js";
import { startDaemon } from "./daemon-process.js";

/** No daemon listens, or the one that did is dying (a connection it took is reset). */
function isNoDaemon(e: unknown): boolean {
  const code = (e as NodeJS.ErrnoException).code;
  return code === "ENOENT" || code === "ECONNREFUSED" || code === "ECONNRESET" || code === "EPIPE";
}

/**
 * Connects to the daemon of this home, starting it when none answers; or with `url` (or $MVM_URL), to a
 * daemon's network listener with a token (or $MVM_TOKEN), trusting `ca` (or the PEM file $MVM_CA) for https.
 */
export async function connect(options: ConnectOptions = {}): Promise<MvmClient> {
  // A network listener (mvm daemon --listen): as it is, never started from here.
  const url = options.url ?? (options.home === undefined ? process.env.MVM_URL || undefined : undefined);
  if (url) {
    const caFile = options.ca === undefined ? process.env.MVM_CA || undefined : undefined;
    const remote = new MvmClient({ url, token: options.token ?? process.env.MVM_TOKEN, ca: options.ca ?? (caFile ? readFileSync(caFile) : undefined) });
    await remote.info(options.signal);
    return remote;
  }
  const home = options.home ?? homeDir();
  const client = new MvmClient(join(home, "mvm.sock"));
  try {
    await client.info(options.signal);
    return client;
  } catch (e) {
    if (!isNoDaemon(e)) throw e;
    if (options.autoStart === false) throw new DaemonNotRunningError("the mvm daemon is not running", { hint: "start it with mvm daemon, or let the CLI start it" });
  }
  await startDaemon(home);
  // Two clients may have raced to start it; the winner may need a moment more to listen.
  for (let i = 0; ; i++) {
    try {
      await client.info(options.signal);
      return client;
    } catch (e) {
      if (!isNoDaemon(e) || i >= 50) throw e;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}
