// Network limits of a bridged VM, with tc on its tap (iproute2, as for the rest of bridged networking):
//   to the guest:   a tbf qdisc at the tap's root (what the host sends into the tap is the guest's inbound)
//   from the guest: the tap's ingress redirected (u32 match-all, mirred) to an ifb device of the VM's own,
//                   shaped there by a tbf qdisc as well. Ingress policing (act_police) would need no ifb,
//                   but many kernels (this project's hosts among them) are built without it.
// The ifb is named after the tap (mvt-X → mvi-X) and removed with it (removeTapLinks).

import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { HostNetworkError } from "../errors.js";
import { deleteLink, linkExists } from "./netlink.js";

const run = promisify(execFile);

/** The ifb device that shapes what a VM sends: named after its tap ("mvt-<id>" → "mvi-<id>"). */
export const ifbFor = (tap: string): string => `mvi-${tap.replace(/^mvt-/, "")}`.slice(0, 15);

/**
 * tbf's bucket: 20 ms at the rate (so the rate holds with the kernel's timer granularity), at least 32 KiB
 * (a few full-size frames, or even a small rate stalls) and at most 1 GiB (tc's size is 32-bit).
 */
export function burstBytes(bps: number): number {
  return Math.min(1024 ** 3, Math.max(32 * 1024, Math.ceil(bps / 50)));
}

/** A tbf qdisc's parameters: tc's "bps" is bytes per second; queued packets wait at most 400 ms. */
export const tbfArgs = (bps: number): string[] => ["tbf", "rate", `${bps}bps`, "burst", String(burstBytes(bps)), "latency", "400ms"];

/** The tc/ip commands that set a tap's limit both ways (the ifb exists and is up by then). */
export function netLimitCommands(tap: string, bps: number): string[][] {
  const ifb = ifbFor(tap);
  return [
    ["tc", "qdisc", "replace", "dev", tap, "root", ...tbfArgs(bps)],
    ["tc", "qdisc", "replace", "dev", ifb, "root", ...tbfArgs(bps)],
    ["tc", "qdisc", "add", "dev", tap, "handle", "ffff:", "ingress"],
    ["tc", "filter", "add", "dev", tap, "parent", "ffff:", "protocol", "all", "prio", "1", "u32", "match", "u32", "0", "0", "action", "mirred", "egress", "redirect", "dev", ifb],
  ];
}

async function tool(cmd: string[]): Promise<void> {
  try {
    await run(cmd[0]!, cmd.slice(1));
  } catch (e) {
    const err = e as Error & { stderr?: string };
    throw new HostNetworkError(`${cmd.join(" ")} failed: ${(err.stderr ?? err.message).trim()}`, { hint: "network limits need root (or CAP_NET_ADMIN), iproute2, and a kernel with tbf, u32, mirred and ifb" });
  }
}

/** Takes a tap's limits off (both ways); the ifb goes too. */
export async function clearNetLimit(tap: string): Promise<void> {
  await run("tc", ["qdisc", "del", "dev", tap, "root"]).catch(() => undefined);
  await run("tc", ["qdisc", "del", "dev", tap, "ingress"]).catch(() => undefined);
  await deleteLink(ifbFor(tap)).catch(() => undefined);
}

/**
 * Limits a tap to `bps` bytes per second each way, replacing any limit it had (also live: the ingress
 * redirect is made anew, so for a moment the guest's outbound is unshaped); undefined takes it off.
 */
export async function setNetLimit(tap: string, bps: number | undefined): Promise<void> {
  if (bps === undefined) return clearNetLimit(tap);
  const ifb = ifbFor(tap);
  if (!(await linkExists(ifb))) await tool(["ip", "link", "add", "name", ifb, "type", "ifb"]);
  await tool(["ip", "link", "set", ifb, "up"]);
  await run("tc", ["qdisc", "del", "dev", tap, "ingress"]).catch(() => undefined);
  for (const cmd of netLimitCommands(tap, bps)) await tool(cmd);
}

/** A VM's tap and the ifb that shaped it. */
export async function removeTapLinks(tap: string): Promise<void> {
  await deleteLink(ifbFor(tap)).catch(() => undefined);
  await deleteLink(tap);
}
