// ps, inspect, logs: what the daemon knows, as a table or as JSON.

import { connect } from "../../client/client.js";
import type { VmView } from "../../daemon/views.js";
import { printJson } from "../output.js";
import { formatTable } from "../table.js";
import { formatDuration } from "../../vmspec/duration.js";

function duration(ms: number | undefined): string {
  if (ms === undefined) return "-";
  if (ms < 1000) return `${(ms / 1000).toFixed(1)}s`;
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m`;
  return `${Math.floor(s / 3600)}h`;
}

/** A start's time to ready: milliseconds below a second (a clone's or a resume's), tenths above. */
function readyTime(ms: number | undefined): string {
  if (ms === undefined) return "-";
  return ms < 1000 ? `${Math.round(ms)}ms` : `${(ms / 1000).toFixed(1)}s`;
}

/**
 * BOOT is how the last start went (cold, clone, pool, snapshot, resume: `inspect` says why), READY how long
 * from the start request until the VM was ready (records from before boot info: QEMU's start to the hello).
 */
export function psTable(vms: VmView[]): string {
  const rows = [["NAME", "STATE", "CPUS", "MEMORY", "ACCEL", "UPTIME", "BOOT", "READY", "EXIT", "TTL", "LABELS"]];
  for (const v of vms) {
    const accel = v.accel ? (v.accel.chosen === "tcg" && v.accel.reason !== "requested" ? "tcg (no KVM)" : v.accel.chosen) : "-";
    const exit = v.commandExit?.status ?? (v.state === "crashed" ? "crashed" : undefined);
    rows.push([v.name, v.state, String(v.spec.cpus), `${v.spec.memoryMiB}M`, accel, duration(v.uptimeMs), v.boot?.how ?? "-", readyTime(v.boot?.readyMs ?? v.bootMs), exit === undefined ? "-" : String(exit), timeLeft(v.expiresAt), labels(v.spec.labels)]);
  }
  return formatTable(rows);
}

/** TTL: the time left until the daemon removes the VM (its expiresAt). */
const timeLeft = (at: string | undefined): string => (at === undefined ? "-" : formatDuration(Date.parse(at) - Date.now()));

/** LABELS: key=value, cut short past 40 characters (inspect and --json have them whole). */
function labels(l: Record<string, string> | undefined): string {
  const text = Object.entries(l ?? {}).map(([k, v]) => `${k}=${v}`).join(",");
  return !text ? "-" : text.length > 40 ? `${text.slice(0, 39)}…` : text;
}

/** What plain `mvm ps` lists: VMs that hold a QEMU, or a saved state waiting for resume. */
const SHOWN = new Set(["starting", "running", "paused", "stopping", "suspended"]);

export async function psCommand(flags: { all?: boolean; json?: boolean }): Promise<number> {
  const client = await connect();
  const vms = (await client.list()).filter((v) => flags.all || SHOWN.has(v.state));
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
