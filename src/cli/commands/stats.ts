// mvm stats VM [--json]: one VM's figures now (QEMU's CPU time and memory, its disks' I/O, its tap's
// bytes, uptime, boot times), as GET /v1/vms/:ref/stats reads them; what could not be read is said.

import { connect, type VmStats } from "../../client/client.js";
import { printJson } from "../output.js";
import { formatTable } from "../table.js";

const mib = (b: number | undefined) => (b === undefined ? "-" : `${(b / 1048576).toFixed(1)} MiB`);
const secs = (s: number | undefined) => (s === undefined ? "-" : `${s.toFixed(2)} s`);

export function statsTable(s: VmStats): string {
  const rows = [
    ["FIGURE", "VALUE"],
    ["state", s.state],
    ["uptime", secs(s.uptimeSeconds)],
    ["boot", s.boot ? `${s.boot.how}${s.boot.readyMs !== undefined ? `, ready in ${Math.round(s.boot.readyMs)} ms` : ""}` : "-"],
    ["cpu", s.cpu ? `${secs(s.cpu.totalSeconds)} (user ${secs(s.cpu.userSeconds)}, system ${secs(s.cpu.systemSeconds)})` : "-"],
    ["memory", s.memory ? `rss ${mib(s.memory.rssBytes)}, pss ${mib(s.memory.pssBytes)}` : "-"],
    ...(s.block ?? []).map((b) => [`disk ${b.device}`, `read ${mib(b.readBytes)} (${b.readOps} ops), written ${mib(b.writeBytes)} (${b.writeOps} ops), ${b.flushOps} flushes`]),
    ["network", s.net?.available ? `${s.net.tap}: from the guest ${mib(s.net.rxBytes)}, to it ${mib(s.net.txBytes)}` : (s.net?.reason ?? "-")],
  ];
  return formatTable(rows) + s.unavailable.map((u) => `not available: ${u}\n`).join("");
}

export async function statsCommand(ref: string, flags: { json?: boolean }): Promise<number> {
  const s = await (await connect()).stats(ref);
  if (flags.json) printJson(s);
  else process.stdout.write(statsTable(s));
  return 0;
}
