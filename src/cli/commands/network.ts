// mvm network create|ls|rm: bridged networks (root or CAP_NET_ADMIN), through the daemon.

import { connect } from "../../client/client.js";
import { formatTable } from "../table.js";
import { printJson, removeEach } from "../output.js";

export async function networkCreateCommand(name: string, flags: { subnet?: string; nat?: boolean; json?: boolean }): Promise<number> {
  const net = await (await connect()).createNetwork(name, { subnet: flags.subnet, nat: flags.nat });
  if (flags.json) printJson(net);
  else process.stdout.write(`${net.name}\n`);
  return 0;
}

export async function networkLsCommand(flags: { json?: boolean }): Promise<number> {
  const nets = await (await connect()).networks();
  if (flags.json) printJson(nets);
  else {
    const rows = [["NAME", "SUBNET", "BRIDGE", "NAT", "VMS"], ...nets.map((n) => [n.name, n.subnet, n.bridge, n.nat ? "yes" : "no", n.vms.join(",") || "-"])];
    process.stdout.write(formatTable(rows));
  }
  return 0;
}

export async function networkRmCommand(names: string[], flags: { json?: boolean }): Promise<number> {
  const client = await connect();
  return removeEach(names, (n) => client.removeNetwork(n), flags.json);
}
