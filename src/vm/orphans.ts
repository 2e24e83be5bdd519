// Finding QEMUs by mvm's label: every daemon VM's QEMU carries `-name mvm-<id>` and its sockets under
// `<home>/vms/<id>/`, so a scan of /proc tells which processes belong to a home and which VM each is.

import { readdirSync, readFileSync } from "node:fs";
import { vmDir, vmFiles } from "./layout.js";

export interface LabelledQemu {
  pid: number;
  /** The VM id from the label. */
  id: string;
}

/** Running QEMUs labelled by mvm whose VM directory lies under `home`. */
export function findLabelledQemus(home: string, procRoot = "/proc"): LabelledQemu[] {
  const found: LabelledQemu[] = [];
  for (const entry of readdirSync(procRoot)) {
    if (!/^\d+$/.test(entry)) continue;
    let argv: string[];
    try {
      argv = readFileSync(`${procRoot}/${entry}/cmdline`, "latin1").split("\0");
    } catch {
      continue; // gone meanwhile, or not ours to read
    }
    if (!argv[0]?.includes("qemu-system")) continue;
    const at = argv.indexOf("-name");
    const label = at >= 0 ? argv[at + 1] : undefined;
    const m = label ? /^mvm-([0-9a-f]{8,64})$/.exec(label) : null;
    if (!m) continue;
    // Another home's VM (another daemon, a test, a copy of this home elsewhere) is none of this daemon's
    // business: the agent socket option must name exactly this home's path (commas doubled, as QEMU wants).
    const socketOption = `,path=${vmFiles(vmDir(home, m[1]!)).agentSocket.replaceAll(",", ",,")},`;
    if (!argv.some((a) => a.startsWith("socket,") && a.includes(socketOption))) continue;
    found.push({ pid: Number(entry), id: m[1]! });
  }
  return found;
}

/** Running QEMUs whose argv names a path under `dir` (a template build's sockets): pids. */
export function findQemusUnder(dir: string, procRoot = "/proc"): number[] {
  const found: number[] = [];
  const needle = `path=${dir.replaceAll(",", ",,")}/`;
  for (const entry of readdirSync(procRoot)) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const argv = readFileSync(`${procRoot}/${entry}/cmdline`, "latin1").split("\0");
      if (argv[0]?.includes("qemu-system") && argv.some((a) => a.includes(needle))) found.push(Number(entry));
    } catch {
      /* gone meanwhile, or not ours to read */
    }
  }
  return found;
}
