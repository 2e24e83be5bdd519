// Is a host port free? Checked right before boot so that a taken port is a clear error, not a QEMU
// message after the fact. (Something may still take it in between; QEMU then fails the boot and says so.)

import { createSocket } from "node:dgram";
import { createServer } from "node:net";
import { PortInUseError } from "../errors.js";
import type { PortMapping } from "../vmspec/ports.js";

function tryBind(p: PortMapping): Promise<NodeJS.ErrnoException | undefined> {
  return new Promise((resolve) => {
    if (p.proto === "udp") {
      const s = createSocket("udp4");
      s.once("error", (e) => {
        s.close();
        resolve(e);
      });
      s.bind(p.hostPort, p.hostIp, () => s.close(() => resolve(undefined)));
      return;
    }
    const server = createServer();
    server.once("error", (e) => resolve(e));
    server.listen({ port: p.hostPort, host: p.hostIp, exclusive: true }, () => server.close(() => resolve(undefined)));
  });
}

export async function checkPortsFree(ports: PortMapping[]): Promise<void> {
  for (const p of ports) {
    const err = await tryBind(p);
    if (!err) continue;
    const where = `${p.hostIp}:${p.hostPort}/${p.proto}`;
    if (err.code === "EADDRINUSE") throw new PortInUseError(`host port ${where} is already in use`, { hint: "publish another host port (-p OTHER:GUESTPORT) or stop what holds it", details: { port: where } });
    if (err.code === "EACCES") throw new PortInUseError(`host port ${where} needs privileges this user lacks`, { hint: "use a port above 1023, or run the daemon as root", details: { port: where } });
    if (err.code === "EADDRNOTAVAIL") throw new PortInUseError(`host address ${p.hostIp} is not an address of this host`, { hint: "use 127.0.0.1, 0.0.0.0 or an address this host has", details: { port: where } });
    throw new PortInUseError(`cannot bind host port ${where}: ${err.message}`, { details: { port: where } });
  }
}
