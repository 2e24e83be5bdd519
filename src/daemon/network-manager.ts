// Bridged networks on the host: a bridge per network (with the gateway address), NAT as an nftables table
// per network, addresses allocated in SQLite. The VM manager asks it for taps and addresses; the API for
// the networks themselves (docs/networks.md).

import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { deleteLink, disableNat, enableNat, ensureBridge, hasNetAdmin, hostAddresses, linkExists } from "../host/netlink.js";
import { removeTapLinks } from "../host/tc.js";
import { gatewayOf, overlaps, parseSubnet, type Subnet } from "../vmspec/subnet.js";
import { NAME_PATTERN } from "../vmspec/vm-spec.js";
import type { NetworkRecord, NetworkStore } from "../store/network-store.js";
import type { VmStore } from "../store/vm-store.js";
import { isLive } from "../vm/state.js";
import { HostNetworkError, InvalidSpecError, InvalidSubnetError, NameTakenError, WrongStateError } from "../errors.js";

export const isBridged = (network: string | undefined): network is string => network !== undefined && network !== "none" && !network.startsWith("user");
const natTable = (n: { id: string }) => `mvm_${n.id}`;

/** The host's own name servers (not loopback ones, which mean nothing in a guest), for bridged VMs. */
export function hostNameservers(): string[] {
  try {
    return [...readFileSync("/etc/resolv.conf", "utf8").matchAll(/^nameserver\s+(\d+\.\d+\.\d+\.\d+)/gm)].map((m) => m[1]!).filter((ip) => !ip.startsWith("127.")).slice(0, 3);
  } catch {
    return [];
  }
}

export function requireNetAdmin(): void {
  if (!hasNetAdmin()) throw new HostNetworkError("bridged networks need root (or CAP_NET_ADMIN)", { hint: "run the mvm daemon as root, or use --network user" });
}

export class NetworkManager {
  constructor(
    private readonly networks: NetworkStore,
    private readonly vms: VmStore,
  ) {}

  /** After a restart (of the daemon or the host): bridges exist again, and no stopped VM keeps a tap. */
  async restore(log: (line: string) => void): Promise<void> {
    for (const net of this.networks.list()) {
      const s = parseSubnet(net.subnet);
      try {
        await ensureBridge(net.bridge, `${gatewayOf(s)}/${s.prefix}`);
        if (net.nat) await enableNat(natTable(net), s.cidr);
      } catch (e) {
        log(`cannot restore network ${net.name}: ${(e as Error).message}`);
      }
    }
    for (const vm of this.vms.list()) {
      if (vm.bridged && !isLive(vm.state)) await removeTapLinks(vm.bridged.tap).catch(() => undefined);
    }
  }

  list(): Array<NetworkRecord & { vms: string[] }> {
    const names = new Map(this.vms.list().map((v) => [v.id, v.name]));
    return this.networks.list().map((n) => ({ ...n, vms: this.networks.allocations(n.name).map((a) => names.get(a.vmId) ?? a.vmId) }));
  }

  async create(name: string, o: { subnet?: string; nat?: boolean }): Promise<NetworkRecord> {
    requireNetAdmin();
    if (!new RegExp(NAME_PATTERN).test(name) || name === "none" || name === "user") {
      throw new InvalidSpecError(`invalid network name ${JSON.stringify(name)}`, { hint: "lower-case letters, digits and '-'; not none or user" });
    }
    if (this.networks.list().some((n) => n.name === name)) throw new NameTakenError(`a network named ${name} already exists`, { hint: "pick another name" });
    const others = this.networks.list().map((n) => ({ name: n.name, s: parseSubnet(n.subnet) }));
    const host = (await hostAddresses()).map(([ip, prefix]) => ({ ip, s: parseSubnet(`${ip}/${Math.max(8, Math.min(prefix, 30))}`) }));
    const clash = (s: Subnet) => others.find((x) => overlaps(x.s, s))?.name ?? host.find((h) => overlaps(h.s, s))?.ip;
    let subnet: Subnet;
    if (o.subnet) {
      subnet = parseSubnet(o.subnet);
      const c = clash(subnet);
      if (c) throw new InvalidSubnetError(`subnet ${subnet.cidr} overlaps ${c}`, { hint: "pick a subnet no other network or host interface uses" });
    } else {
      const free = Array.from({ length: 256 }, (_, i) => parseSubnet(`10.89.${i}.0/24`)).find((s) => !clash(s));
      if (!free) throw new InvalidSubnetError("no free 10.89.x.0/24 subnet left", { hint: "give --subnet" });
      subnet = free;
    }
    const id = randomBytes(3).toString("hex");
    const bridge = `mvb-${id}`;
    if (await linkExists(bridge)) throw new HostNetworkError(`the host already has an interface named ${bridge}`, { hint: "try again (the name is random)" });
    const record = { name, id, bridge, subnet: subnet.cidr, nat: Boolean(o.nat) };
    try {
      await ensureBridge(bridge, `${gatewayOf(subnet)}/${subnet.prefix}`);
      if (record.nat) await enableNat(natTable(record), subnet.cidr);
      return this.networks.add(record);
    } catch (e) {
      // Nothing half-made stays behind: not the bridge, not the NAT table.
      await deleteLink(bridge).catch(() => undefined);
      if (record.nat) await disableNat(natTable(record)).catch(() => undefined);
      throw e;
    }
  }

  async remove(name: string): Promise<void> {
    requireNetAdmin();
    const net = this.networks.get(name);
    const users = this.list().find((n) => n.name === name)?.vms ?? [];
    if (users.length) throw new WrongStateError(`network ${name} is in use by ${users.join(", ")}`, { hint: `remove those VMs first (mvm rm -f ${users.join(" ")})`, details: { network: name, vms: users } });
    if (net.nat) await disableNat(natTable(net)).catch(() => undefined);
    await deleteLink(net.bridge);
    this.networks.remove(name);
  }
}
