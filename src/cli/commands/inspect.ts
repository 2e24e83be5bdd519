// ps, inspect, logs: what the daemon knows, as a table or as JSON.

import { connect } from "../../client/client.js";
import type { VmView } from "../../daemon/views.js";
import { printJson } from "../output.js";
import { formatTable } from "../table.js";

function duration(ms: number | undefined): string {
  if (ms === undefined) return "-";
  if (ms < 1000) return `${(ms / 1000).toFixed(1)}s`;
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m`;
  return `${Math.floor(s / 3600)}h`;
}

export function psTable(vms: VmView[]): string {
  const rows = [["NAME", "STATE", "CPUS", "MEMORY", "ACCEL", "UPTIME", "BOOT", "EXIT"]];
  for (const v of vms) {
    const accel = v.accel ? (v.accel.chosen === "tcg" && v.accel.reason !== "requested" ? "tcg (no KVM)" : v.accel.chosen) : "-";
    const exit = v.commandExit?.status ?? (v.state === "crashed" ? "crashed" : undefined);
    rows.push([v.name, v.state, String(v.spec.cpus), `${v.spec.memoryMiB}M`, accel, duration(v.uptimeMs), duration(v.bootMs), exit === undefined ? "-" : String(exit)]);
  }
  return formatTable(rows);
}

export async function psCommand(flags: { all?: boolean; json?: boolean }): Promise<number> {
  const client = await connect();
  const vms = (await client.list()).filter((v) => flags.all || v.state === "running" || v.state === "paused" || v.state === "starting" || v.state === "stopping");
  if (flags.json) printJson(vms);
  else process.stdout.write(psTable(vms));
  return 0;
}

export async function inspectCommand(refs: string[]): Promise<number> {
  const client = await connect();
  const views = [];
  for (const ref of refs) views.push(await client.get(ref));
  printJson(refs.length === 1 ? views[0] : views);
  return 0;
}

export async function logsCommand(ref: string, flags: { follow?: boolean; console?: boolean; json?: boolean }): Promise<number> {
  const client = await connect();
  await client.logs(ref, {
    console: flags.console,
    follow: flags.follow,
    onData: (b) => process.stdout.write(b),
    onEvent: (e) => {
      if (flags.json) process.stdout.write(`${JSON.stringify(e)}\n`);
      else if (e.type === "stdout" || e.type === "stderr") (e.type === "stdout" ? process.stdout : process.stderr).write(Buffer.from(e.data, "base64"));
    },
  });
  return 0;
}
