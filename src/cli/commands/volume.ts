// mvm volume create|ls|rm: named volumes, host folders the host's root registers so that any caller may
// share them with a VM (-v NAME:/guest/dir[:ro]), through the daemon.

import { resolve } from "node:path";
import { connect } from "../../client/client.js";
import { formatTable } from "../table.js";
import { printJson, removeEach } from "../output.js";

export async function volumeCreateCommand(name: string, path: string, flags: { readOnly?: boolean; json?: boolean }): Promise<number> {
  // The daemon has another working directory: the folder travels absolute.
  const v = await (await connect()).createVolume(name, resolve(path), { readOnly: flags.readOnly });
  if (flags.json) printJson(v);
  else process.stdout.write(`${v.name}\n`);
  return 0;
}

export async function volumeLsCommand(flags: { json?: boolean }): Promise<number> {
  const volumes = await (await connect()).volumes();
  if (flags.json) printJson(volumes);
  else process.stdout.write(formatTable([["NAME", "PATH", "MODE", "VMS"], ...volumes.map((v) => [v.name, v.path, v.readOnly ? "ro" : "rw", v.vms.join(",") || "-"])]));
  return 0;
}

export async function volumeRmCommand(names: string[], flags: { json?: boolean }): Promise<number> {
  const client = await connect();
  return removeEach(names, (n) => client.removeVolume(n), flags.json);
}
