// A running VM's guest ports and directory watches, for whatever in the daemon proxies to them: the
// port-forward stream routes (port-routes.ts) and the E2B-compatible backend (src/e2b/: getHost(port)
// and WatchDir). Both go over the agent channel (capabilities "forward" and "watch"), so no guest network
// device is needed. Errors: 404 for an unknown VM, 409 INVALID_STATE when it is not running, 409
// AGENT_CAPABILITY for an agent of an older guest, 502 GUEST_PORT when nothing listens on the port.

import type { Duplex } from "node:stream";
import { parsePort } from "../agent/forward-session.js";
import type { WatchEvent, WatchSession } from "../agent/watch-session.js";
import { BadRequestError } from "../errors.js";
import { guestPath } from "./file-routes.js";
import type { VmManager } from "./vm-manager.js";

export type { WatchEvent, WatchSession };

/** A port from a request (a number or its decimal string), 1-65535, else BadRequestError. */
export function guestPort(value: unknown): number {
  const port = parsePort(value);
  if (port === undefined) throw new BadRequestError(`a guest port must be a whole number 1-65535, not ${JSON.stringify(value)}`, { hint: "e.g. 8000" });
  return port;
}

/** An address inside the guest to connect to: an IPv4 or IPv6 literal (names are not resolved). */
export function guestAddress(value: unknown): string | undefined {
  if (value === undefined || value === "") return undefined;
  const ok = typeof value === "string" && value.length < 64 && (/^[0-9]{1,3}(\.[0-9]{1,3}){3}$/.test(value) || /^[0-9A-Fa-f:.]+$/.test(value));
  if (!ok) throw new BadRequestError(`a guest address must be an IPv4 or IPv6 literal, not ${JSON.stringify(value)}`, { hint: "127.0.0.1 (the default) or the guest's own address" });
  return value;
}

/**
 * A TCP connection to `port` inside the VM `ref` (name or id), as a Duplex: bytes both ways, backpressure
 * both ways (the agent's windows), end() half-closes, destroy() aborts. Resolves once the guest accepted
 * the connection; rejects with GuestPortError (refused: its message says `connect 127.0.0.1:PORT:
 * Connection refused`), AgentCapabilityError, or the VM's state error.
 */
export async function openGuestPort(manager: VmManager, ref: string, port: number | string, options: { address?: string } = {}): Promise<Duplex> {
  const p = guestPort(port);
  const address = guestAddress(options.address);
  const { agent } = manager.agentFor(ref, "forward");
  return (await agent.forward(p, address)).stream;
}

/**
 * Watches a directory in the VM: an async iterable of WatchEvent ({type: create|write|remove|rename|chmod,
 * name relative to path}, or overflow/limit), with close(). Resolves once the guest watches it; rejects
 * with FileNotFoundError / GuestFileError (ENOTDIR) for a path that is not a directory.
 */
export async function watchGuestPath(manager: VmManager, ref: string, path: string, options: { recursive?: boolean } = {}): Promise<WatchSession> {
  const p = guestPath(path);
  const { agent } = manager.agentFor(ref, "watch");
  return agent.watch(p, { recursive: options.recursive === true });
}
