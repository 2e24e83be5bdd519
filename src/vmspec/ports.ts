// Published ports as users write them, Docker's way: [HOSTIP:]HOSTPORT:GUESTPORT[/tcp|/udp].
// Bound to 127.0.0.1 unless HOSTIP says otherwise. Parsed strictly: the parts end up in a QEMU option.

import { isIPv4 } from "node:net";
import { InvalidPortError } from "../errors.js";

export interface PortMapping {
  hostIp: string;
  hostPort: number;
  guestPort: number;
  proto: "tcp" | "udp";
}

const port = (text: string, what: string, spec: string): number => {
  const n = /^\d{1,5}$/.test(text) ? Number(text) : NaN;
  if (!(n >= 1 && n <= 65535)) throw new InvalidPortError(`invalid ${what} port in ${JSON.stringify(spec)}`, { hint: "ports are 1-65535: -p [HOSTIP:]HOSTPORT:GUESTPORT[/tcp|udp]" });
  return n;
};

export function parsePort(spec: string): PortMapping {
  const m = /^(?:(.+):)?([^:/]+):([^:/]+)(?:\/(tcp|udp))?$/.exec(spec);
  if (!m) throw new InvalidPortError(`invalid port mapping ${JSON.stringify(spec)}`, { hint: "write -p [HOSTIP:]HOSTPORT:GUESTPORT[/tcp|udp], e.g. -p 8080:80" });
  const hostIp = m[1] ?? "127.0.0.1";
  if (!isIPv4(hostIp)) throw new InvalidPortError(`invalid host address ${JSON.stringify(hostIp)} in ${JSON.stringify(spec)}`, { hint: "give an IPv4 address such as 127.0.0.1 or 0.0.0.0" });
  return { hostIp, hostPort: port(m[2]!, "host", spec), guestPort: port(m[3]!, "guest", spec), proto: (m[4] as "tcp" | "udp" | undefined) ?? "tcp" };
}

export const formatPort = (p: PortMapping): string => `${p.hostIp}:${p.hostPort}:${p.guestPort}/${p.proto}`;
