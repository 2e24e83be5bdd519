// Host network plumbing for bridged networks, through iproute2 and nftables (the tools Debian ships).
// Every call names what failed and why; callers decide what a failure means.

import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { promisify } from "node:util";
import { HostNetworkError } from "../errors.js";

const run = promisify(execFile);

async function tool(cmd: string, args: string[], input?: string): Promise<string> {
  try {
    if (input !== undefined) {
      return await new Promise((resolve, reject) => {
        const child = execFile(cmd, args, (err, stdout, stderr) => (err ? reject(Object.assign(new Error(err.message), { stderr })) : resolve(stdout)));
        child.stdin!.end(input);
      });
    }
    return (await run(cmd, args)).stdout;
  } catch (e) {
    const err = e as Error & { stderr?: string };
    throw new HostNetworkError(`${cmd} ${args.join(" ")} failed: ${(err.stderr ?? err.message).trim()}`, {
      hint: "mvm needs root (or CAP_NET_ADMIN), iproute2 and nftables for bridged networks",
    });
  }
}

/** Bridged networks need CAP_NET_ADMIN (bit 12 of the effective capabilities). */
export function hasNetAdmin(): boolean {
  try {
    const cap = /^CapEff:\s*([0-9a-f]+)$/m.exec(readFileSync("/proc/self/status", "utf8"))?.[1];
    return cap !== undefined && (BigInt(`0x${cap}`) & (1n << 12n)) !== 0n;
  } catch {
    return false;
  }
}

export async function linkExists(name: string): Promise<boolean> {
  try {
    await run("ip", ["link", "show", "dev", name]);
    return true;
  } catch {
    return false;
  }
}

/** The IPv4 prefixes on this host's interfaces, as [address, prefix]. */
export async function hostAddresses(): Promise<Array<[string, number]>> {
  const out = JSON.parse(await tool("ip", ["-j", "-4", "addr", "show"])) as Array<{ addr_info: Array<{ local: string; prefixlen: number }> }>;
  return out.flatMap((l) => l.addr_info.map((a): [string, number] => [a.local, a.prefixlen]));
}

export async function ensureBridge(name: string, gatewayCidr: string): Promise<void> {
  if (!(await linkExists(name))) await tool("ip", ["link", "add", "name", name, "type", "bridge"]);
  const addrs = await tool("ip", ["-4", "-o", "addr", "show", "dev", name]);
  if (!addrs.includes(` ${gatewayCidr} `)) await tool("ip", ["addr", "add", gatewayCidr, "dev", name]);
  await tool("ip", ["link", "set", name, "up"]);
}

export async function deleteLink(name: string): Promise<void> {
  if (await linkExists(name)) await tool("ip", ["link", "del", name]);
}

export async function createTap(tap: string, bridge: string): Promise<void> {
  await deleteLink(tap); // a leftover from a crash
  await tool("ip", ["tuntap", "add", "dev", tap, "mode", "tap"]);
  await tool("ip", ["link", "set", tap, "master", bridge]);
  await tool("ip", ["link", "set", tap, "up"]);
}

/** Masquerading for a subnet's outbound traffic, in an nftables table of its own per network. */
export async function enableNat(table: string, subnet: string): Promise<void> {
  await tool("sysctl", ["-q", "-w", "net.ipv4.ip_forward=1"]);
  await tool("nft", ["-f", "-"], `table ip ${table} {}\ndelete table ip ${table}\ntable ip ${table} {\n  chain postrouting {\n    type nat hook postrouting priority 100;\n    ip saddr ${subnet} ip daddr != ${subnet} masquerade\n  }\n}\n`);
}

export async function disableNat(table: string): Promise<void> {
  await tool("nft", ["-f", "-"], `table ip ${table} {}\ndelete table ip ${table}\n`);
}
