// mvm ttl VM [DURATION|none]: a VM's time to live. With a duration, the daemon kills and removes the VM
// that long from now; none keeps it until removed; without one, shows when it ends.

import { connect } from "../../client/client.js";
import { formatDuration } from "../../vmspec/duration.js";
import { printJson } from "../output.js";

export async function ttlCommand(ref: string, ttl: string | undefined, flags: { json?: boolean }): Promise<number> {
  const client = await connect();
  const value = ttl === undefined ? undefined : ttl === "none" ? null : /^\d+$/.test(ttl) ? Number(ttl) : ttl;
  const vm = value === undefined ? await client.get(ref) : await client.setTtl(ref, value);
  const left = vm.expiresAt === undefined ? undefined : Date.parse(vm.expiresAt) - Date.now();
  if (flags.json) printJson({ name: vm.name, state: vm.state, expiresAt: vm.expiresAt ?? null, remainingMs: left ?? null });
  else process.stdout.write(vm.expiresAt === undefined ? `${vm.name}: no time to live (it stays until removed)\n` : `${vm.name}: removed at ${vm.expiresAt} (in ${formatDuration(left!)})\n`);
  return 0;
}
