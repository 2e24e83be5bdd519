// mvm port-forward VM [HOSTPORT:]GUESTPORT [--address A] [--json]: listens on a local port (127.0.0.1 by
// default) and forwards each connection to the guest port as its own stream through the daemon (so it
// works against a remote daemon too), in the foreground until Ctrl-C, as kubectl port-forward does.
// mvm watch VM PATH [-r] [--json]: a guest directory's events, one line each, until Ctrl-C.

import { connect } from "../../client/client.js";
import { InvalidArgumentError } from "../../errors.js";
import { parsePort } from "../../agent/forward-session.js";

/** "8000" (the same port locally) or "8080:8000"; "0:8000" lets the system pick the local port. */
export function parsePortSpec(spec: string): { hostPort: number; guestPort: number } {
  const m = /^(?:([0-9]{1,5}):)?([0-9]{1,5})$/.exec(spec.trim());
  const guestPort = m ? parsePort(m[2]) : undefined;
  const hostPort = m?.[1] === undefined ? guestPort : m[1] === "0" ? 0 : parsePort(m[1]);
  if (!m || guestPort === undefined || hostPort === undefined) {
    throw new InvalidArgumentError(`a port forward is [HOSTPORT:]GUESTPORT with ports 1-65535 (HOSTPORT 0: any free one), not ${JSON.stringify(spec)}`, { hint: "e.g. 8000, 8080:8000 or 0:8000" });
  }
  return { hostPort, guestPort };
}

/** Resolves at SIGINT or SIGTERM (and stops listening for them). */
function interrupted(): Promise<void> {
  return new Promise((resolve) => {
    const on = () => {
      process.off("SIGINT", on);
      process.off("SIGTERM", on);
      resolve();
    };
    process.on("SIGINT", on);
    process.on("SIGTERM", on);
  });
}

export async function portForwardCommand(ref: string, spec: string, flags: { address?: string; json?: boolean }): Promise<number> {
  const { hostPort, guestPort } = parsePortSpec(spec);
  const client = await connect();
  await client.get(ref); // an unknown VM fails now, not at the first connection
  const pf = await client.portForward(ref, {
    hostPort,
    guestPort,
    host: flags.address ?? "127.0.0.1",
    onError: (e) => process.stderr.write(`mvm port-forward: a connection to guest port ${guestPort} failed: ${e.message}\n`),
  });
  const bound = { address: pf.address, port: pf.port, guestPort, vm: ref };
  process.stdout.write(flags.json ? `${JSON.stringify(bound)}\n` : `Forwarding from ${pf.address.includes(":") ? `[${pf.address}]` : pf.address}:${pf.port} -> ${guestPort} in ${ref}\n`);
  await interrupted();
  await pf.close();
  return 0;
}

export async function watchCommand(ref: string, path: string, flags: { recursive?: boolean; json?: boolean }): Promise<number> {
  const client = await connect();
  const abort = new AbortController();
  const stop = interrupted().then(() => abort.abort());
  const w = await client.files(ref).watch(path, { recursive: flags.recursive, signal: abort.signal });
  for await (const e of w) {
    if (flags.json) process.stdout.write(`${JSON.stringify(e)}\n`);
    else if (e.type === "overflow") process.stdout.write("-- events were lost (the guest's queue overflowed)\n");
    else if (e.type === "limit") process.stdout.write(`-- too many directories: ${e.name || "."} and below are not watched\n`);
    else process.stdout.write(`${e.type.padEnd(7)} ${e.name}\n`);
  }
  void stop;
  return 0;
}
