// The configuration file mvm-init reads at boot (docs/guest-config.md). It reaches the guest through QEMU's
// fw_cfg (opt/mvm/config) from a 0600 file in the VM's directory, so nothing of it shows on QEMU's argv or
// the kernel command line. Format: key=value lines, values %XX-escaped where a byte could break a line.

import { writeFile } from "node:fs/promises";
import { GuestConfigError } from "../errors.js";

export interface GuestConfig {
  hostname?: string;
  env?: Record<string, string>;
  /** A block device to switch_root into (mvm-init takes itself and the agent along). */
  root?: { device: string; fstype?: string; flags?: string; readOnly?: boolean; resize?: boolean };
  network?: { iface: string; address: string; gateway?: string; dns?: string[] };
  /** 9p shares to mount: the tag QEMU exports and the guest path. */
  mounts?: Array<{ tag: string; path: string; readOnly: boolean }>;
}

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const HOSTNAME = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/i;

/** %-escapes control bytes, '%' and DEL; everything else (UTF-8 included) passes as it is. */
function escapeValue(value: string): string {
  if (value.includes("\0")) throw new GuestConfigError("configuration values cannot contain NUL bytes");
  // eslint-disable-next-line no-control-regex -- matching control bytes is the point
  return value.replace(/[\x00-\x1f%\x7f]/g, (c) => `%${c.charCodeAt(0).toString(16).padStart(2, "0").toUpperCase()}`);
}

export function encodeGuestConfig(c: GuestConfig): string {
  const lines: Array<[string, string]> = [["version", "1"]];
  if (c.hostname !== undefined) {
    if (!HOSTNAME.test(c.hostname)) throw new GuestConfigError(`invalid hostname ${JSON.stringify(c.hostname)}`, { hint: "use letters, digits and inner hyphens, at most 63 characters" });
    lines.push(["hostname", c.hostname]);
  }
  for (const [k, v] of Object.entries(c.env ?? {})) {
    if (!ENV_NAME.test(k)) throw new GuestConfigError(`invalid environment variable name ${JSON.stringify(k)}`, { hint: "names are letters, digits and _, not starting with a digit" });
    lines.push(["env", `${k}=${v}`]);
  }
  if (c.root) {
    lines.push(["root", c.root.device], ["rootfstype", c.root.fstype ?? "ext4"]);
    if (c.root.flags) lines.push(["rootflags", c.root.flags]);
    if (c.root.readOnly) lines.push(["rootro", "1"]);
    if (c.root.resize) lines.push(["rootresize", "1"]);
  }
  if (c.network) {
    lines.push(["net.iface", c.network.iface], ["net.address", c.network.address]);
    if (c.network.gateway) lines.push(["net.gateway", c.network.gateway]);
    for (const d of c.network.dns ?? []) lines.push(["net.dns", d]);
  }
  for (const m of c.mounts ?? []) lines.push(["mount", `${m.tag}:${m.readOnly ? "ro" : "rw"}:${m.path}`]);
  return lines.map(([k, v]) => `${k}=${escapeValue(v)}\n`).join("");
}

/** Writes the file readable by its owner only: it may carry secrets in the environment. */
export async function writeGuestConfig(path: string, c: GuestConfig): Promise<void> {
  await writeFile(path, encodeGuestConfig(c), { mode: 0o600, flag: "wx" });
}
