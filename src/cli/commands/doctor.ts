// `mvm doctor`: what this host can do, and how to fix what it cannot.

import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { connect } from "../../client/client.js";
import { chooseAccel, readHostFacts } from "../../host/accel.js";
import { cacheDir, homeDir } from "../../host/paths.js";
import { hostTsc } from "../../host/tsc.js";
import { probeBinary } from "../../qemu/probe.js";
import { cgroupSupport } from "../../host/cgroups.js";
import { idRange } from "../../jail/ids.js";
import { BWRAP } from "../../jail/sandbox.js";
import { printJson } from "../output.js";

interface Check {
  name: string;
  ok: boolean;
  detail: string;
  fix?: string;
}

/** The jail (src/jail/jail.ts): on for a root daemon; what this host lets it do. */
function jailChecks(): Check[] {
  const root = process.getuid?.() === 0;
  const off = process.env.MVM_JAIL === "0";
  const tools = ["/bin/sh", "/usr/bin/prlimit", "/usr/bin/setpriv"].filter((t) => !existsSync(t));
  const cg = cgroupSupport();
  const checks: Check[] = [
    {
      name: "jail",
      ok: tools.length === 0 || !root || off,
      detail: off ? "off (MVM_JAIL=0)" : !root ? "off: not root, so QEMU runs with this user's rights only" : tools.length ? `missing ${tools.join(", ")}` : "on: no_new_privs, no capabilities, seccomp, rlimits, a control group per QEMU",
      fix: tools.length && root && !off ? "apt-get install util-linux (setpriv, prlimit)" : undefined,
    },
    { name: "control groups", ok: true, detail: cg.mode === "none" ? `${cg.detail}: VMs run without memory, pids and CPU limits` : cg.detail, fix: cg.mode === "none" ? "mount cgroup v2 with the memory, pids and cpu controllers (or the v1 hierarchies)" : undefined },
  ];
  if (!root || off) return checks;
  const bwrap = existsSync(BWRAP);
  checks.push({
    name: "jail namespaces",
    ok: bwrap,
    detail: bwrap ? "bubblewrap: each QEMU in its own mount, PID, IPC, UTS (and, without a network, network) namespaces, seeing only its VM's paths" : "bubblewrap is missing: QEMU runs as root (without capabilities) in the host's namespaces",
    fix: bwrap ? undefined : "apt-get install bubblewrap (scripts/setup.sh does)",
  });
  const range = idRange();
  const clash = idsInRange(range.base, ["/etc/passwd", "/etc/group"]);
  checks.push({
    name: "jail uids",
    ok: clash.length === 0,
    detail: clash.length ? `${clash.join(", ")} fall in mvm's range ${range.base}..${range.base + 65535}` : `each QEMU runs as a uid of ${range.base}..${range.base + 65535}, all sharing group ${range.base}`,
    fix: clash.length ? "set MVM_UID_BASE to a free range of 65536 ids below 2^31 for the daemon" : undefined,
  });
  for (const [dev, want, what] of [["/dev/kvm", "0660 root:kvm", "KVM VMs"], ["/dev/net/tun", "0666", "bridged VMs"]] as const) {
    const mode = modeOf(dev);
    const open = mode !== undefined && ((mode & 0o006) === 0o006 || (mode & 0o060) === 0o060);
    if (mode === undefined) continue;
    checks.push({ name: `jail ${dev}`, ok: true, detail: open ? `${what} run as their own uid` : `${dev} is ${mode.toString(8)}: ${what} run in root mode (no capabilities, still in their namespaces)`, fix: open ? undefined : `chmod ${want.split(" ")[0]} ${dev}${want.includes("kvm") ? " && chgrp kvm /dev/kvm" : ""} (Debian's default)` });
  }
  return checks;
}

/** Users and groups of the files whose ids fall in [base, base + 65535]. */
function idsInRange(base: number, files: string[]): string[] {
  const found: string[] = [];
  for (const f of files) {
    let text = "";
    try {
      text = readFileSync(f, "utf8");
    } catch {
      continue;
    }
    for (const line of text.split("\n")) {
      const [name, , id] = line.split(":");
      if (name && Number(id) >= base && Number(id) <= base + 65535) found.push(`${f === "/etc/passwd" ? "user" : "group"} ${name}`);
    }
  }
  return found;
}

function modeOf(path: string): number | undefined {
  try {
    return statSync(path).mode & 0o777;
  } catch {
    return undefined;
  }
}

export async function doctorCommand(flags: { json?: boolean }): Promise<number> {
  const checks: Check[] = [];
  const accel = chooseAccel("auto", readHostFacts());
  checks.push({
    name: "accelerator",
    ok: true,
    detail: `${accel.chosen}: ${accel.reason}`,
    fix: accel.chosen === "tcg" ? "for KVM speed, run on bare metal or a cloud VM with nested virtualisation, with /dev/kvm usable by this user" : undefined,
  });
  const tsc = hostTsc();
  checks.push({ name: "timer hints", ok: Boolean(tsc), detail: tsc ? `host TSC ${tsc.khz} kHz (${tsc.source})` : "host TSC frequency unknown: TCG guests boot without timer hints", fix: tsc ? undefined : "none needed under KVM; under TCG a busy host may stall guest boots" });
  for (const [kind, path] of [["full", process.env.MVM_QEMU ?? "/usr/bin/qemu-system-x86_64"], ["microvm", process.env.MVM_QEMU_MICROVM ?? "/usr/bin/qemu-system-x86_64-microvm"]] as const) {
    try {
      const info = await probeBinary(path, cacheDir());
      checks.push({ name: `qemu (${kind})`, ok: true, detail: `${path} ${info.version}, accelerators ${info.accels.join(", ")}, seccomp filter ${info.sandbox ? "yes" : "no (a VM on this binary runs without -sandbox)"}` });
    } catch {
      checks.push({ name: `qemu (${kind})`, ok: kind === "microvm", detail: `${path} is missing`, fix: "apt-get install qemu-system-x86 (scripts/setup.sh does)" });
    }
  }
  checks.push(...jailChecks());
  const guestDir = join(cacheDir(), "guest");
  const built = existsSync(guestDir) && readdirSync(guestDir).some((f) => f.endsWith(".json"));
  checks.push({ name: "guest kernel and initramfs", ok: built, detail: built ? `cached under ${cacheDir()}` : "not built yet", fix: built ? undefined : "run scripts/setup.sh (5 to 15 minutes, once)" });
  try {
    const info = await (await connect({ autoStart: false })).info();
    checks.push({ name: "daemon", ok: true, detail: `running, pid ${info.pid}, home ${info.home}` });
  } catch {
    checks.push({ name: "daemon", ok: true, detail: `not running (home ${homeDir()}); the CLI starts it on demand` });
  }
  if (flags.json) printJson({ ok: checks.every((c) => c.ok), checks });
  else {
    for (const c of checks) {
      process.stdout.write(`${c.ok ? "ok  " : "FAIL"}  ${c.name}: ${c.detail}\n`);
      if (c.fix) process.stdout.write(`      fix: ${c.fix}\n`);
    }
  }
  return checks.every((c) => c.ok) ? 0 : 1;
}
