// IPv4 subnets for bridged networks: parsing, overlap, and address allocation.

import { isIPv4 } from "node:net";
import { InvalidSubnetError } from "../errors.js";

export interface Subnet {
  /** a.b.c.d/prefix, the network address normalised */
  cidr: string;
  base: number;
  prefix: number;
}

export const ipToInt = (ip: string): number => ip.split(".").reduce((n, o) => n * 256 + Number(o), 0);
export const intToIp = (n: number): string => [24, 16, 8, 0].map((s) => (n >>> s) & 255).join(".");
const mask = (prefix: number) => (prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0);

export function parseSubnet(text: string): Subnet {
  const m = /^(\d+\.\d+\.\d+\.\d+)\/(\d+)$/.exec(text);
  if (!m || !isIPv4(m[1]!)) throw new InvalidSubnetError(`invalid subnet ${JSON.stringify(text)}`, { hint: "write a.b.c.d/prefix, e.g. 10.89.0.0/24" });
  const prefix = Number(m[2]);
  if (prefix < 8 || prefix > 30) throw new InvalidSubnetError(`subnet ${text} is ${prefix > 30 ? "too small" : "too large"}`, { hint: "give a prefix between /8 and /30 (a /30 holds the gateway and one VM)" });
  const base = (ipToInt(m[1]!) & mask(prefix)) >>> 0;
  return { cidr: `${intToIp(base)}/${prefix}`, base, prefix };
}

export const subnetSize = (s: Subnet): number => 2 ** (32 - s.prefix);
export const gatewayOf = (s: Subnet): string => intToIp(s.base + 1);
export const contains = (s: Subnet, ip: string): boolean => ((ipToInt(ip) & mask(s.prefix)) >>> 0) === s.base;

export function overlaps(a: Subnet, b: Subnet): boolean {
  const p = Math.min(a.prefix, b.prefix);
  return ((a.base & mask(p)) >>> 0) === ((b.base & mask(p)) >>> 0);
}

/** The first free host address (after the gateway, before broadcast), or the asked one if it is free and inside. */
export function allocate(s: Subnet, taken: Set<string>, wanted?: string): string {
  const first = s.base + 2;
  const last = s.base + subnetSize(s) - 2;
  if (wanted !== undefined) {
    if (!isIPv4(wanted) || !contains(s, wanted)) throw new InvalidSubnetError(`address ${wanted} is outside ${s.cidr}`, { hint: `pick an address in ${s.cidr}` });
    const n = ipToInt(wanted);
    if (n < first || n > last) throw new InvalidSubnetError(`address ${wanted} is the network, gateway or broadcast address of ${s.cidr}`, { hint: `pick one from ${intToIp(first)} to ${intToIp(last)}` });
    if (taken.has(wanted)) throw new InvalidSubnetError(`address ${wanted} is already taken on this network`, { hint: "pick another, or leave --ip out" });
    return wanted;
  }
  for (let n = first; n <= last; n++) if (!taken.has(intToIp(n))) return intToIp(n);
  throw new InvalidSubnetError(`network ${s.cidr} has no free address left`, { hint: "remove a VM from it, or create a larger network" });
}
