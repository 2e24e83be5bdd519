// The jail each QEMU starts in when the daemon runs as root (docs/threat-model.md). One process, exec'd in
// turn, so the pid the daemon records is QEMU's own and a restarted daemon adopts it as before:
//   sh      joins the VM's control group (src/host/cgroups.ts), so every thread QEMU makes is counted;
//   prlimit no core dumps (they would hold guest memory), a bounded number of open files;
//   setpriv no_new_privs, an empty capability bounding set (so QEMU, still uid 0 for now, holds no
//           capability: no mounts, no ptrace, no raw sockets, no module loading, no file-permission
//           override), unless the VM needs file access a capability-less root lacks (shared folders,
//           files owned by other users), which keeps only the file-access capabilities, said in inspect;
//   qemu    with a cleared environment, and QEMU's own seccomp filter (argv.ts adds -sandbox).
// Not yet: an unprivileged uid per VM and new mount/PID/IPC/UTS namespaces (see docs/threat-model.md).

import { existsSync, readFileSync, readlinkSync, statSync } from "node:fs";
import { createGroup, readLimits, removeGroup, setUpCgroups, type CgroupHost, type CgroupLimits } from "../host/cgroups.js";

/** What the host allows, decided once per daemon. */
export interface JailHost {
  enabled: boolean;
  /** Why the jail is off, or what it cannot do here. */
  reason: string;
  cgroups: CgroupHost;
}

/**
 * On when the daemon runs as root (the case the jail is for: as another user QEMU already has that user's
 * rights only, and cannot join groups or drop what it does not have), unless MVM_JAIL=0 turns it off.
 */
export function decideJail(env: NodeJS.ProcessEnv = process.env, uid = process.getuid?.() ?? -1): JailHost {
  const none: CgroupHost = { mode: "none", reason: "the jail is off", parents: {} };
  if (env.MVM_JAIL === "0") return { enabled: false, reason: "turned off by MVM_JAIL=0", cgroups: none };
  if (uid !== 0) return { enabled: false, reason: "the daemon does not run as root: QEMU runs as the daemon's user, with that user's rights", cgroups: none };
  const missing = TOOLS.filter((t) => !existsSync(t));
  if (missing.length) return { enabled: false, reason: `${missing.join(", ")} missing (Debian's util-linux has them): QEMU runs unjailed`, cgroups: none };
  const cgroups = setUpCgroups();
  return { enabled: true, reason: cgroups.mode === "none" ? `no resource limits: ${cgroups.reason}` : "", cgroups };
}

/** QEMU's seccomp options: every deny 7.2 tolerates for mvm's features (spawn must stay: `migrate exec:cat`). */
export const SECCOMP_OPTIONS = "on,obsolete=deny,elevateprivileges=deny,spawn=allow,resourcecontrol=deny";

/** The file-access capabilities a VM with shared folders or other users' files keeps. */
export const FILE_CAPS = ["dac_override", "dac_read_search", "fowner", "chown", "fsetid"] as const;

const JOIN = 'for f; do [ "$f" = -- ] && break; echo $$ > "$f" || { echo "mvm-jail: cannot join the control group $f" >&2; exit 125; }; shift; done; shift; exec "$@"';
const ENV = { PATH: "/usr/sbin:/usr/bin:/sbin:/bin" };
const TOOLS = ["/bin/sh", "/usr/bin/prlimit", "/usr/bin/setpriv"];
/** RLIMIT_NOFILE: disks, sockets, 9p's open files and QEMU's own, with room to spare. */
const NOFILE = 4096;

export interface JailInput {
  label: string;
  memoryMiB: number;
  cpus: number;
  /** Host folders shared over 9p: QEMU acts on their files as root. */
  volumes: number;
  /** Files QEMU opens by path, and whether it writes them. */
  files: Array<{ path: string; write: boolean }>;
}

export interface JailSpawn {
  /** The command to spawn; QEMU's binary and argv follow it. */
  prefix: string[];
  env: Record<string, string>;
  capabilities: string[];
  /** Called when QEMU has ended: its control group goes. */
  cleanup(): void;
}

/** Guest RAM plus QEMU's own memory (translation buffer, device state, I/O buffers): measured ~65 MiB idle. */
export const cgroupLimits = (i: { memoryMiB: number; cpus: number }): CgroupLimits => ({
  memoryBytes: (i.memoryMiB + Math.max(256, Math.ceil(i.memoryMiB / 4))) * 1024 * 1024,
  // QEMU's threads: main loop, vCPUs, RCU, and a block I/O pool of up to 64 workers.
  pids: 128 + 2 * i.cpus,
  // One core per vCPU, and one more for the main loop and I/O threads.
  cpuQuotaUs: (i.cpus + 1) * 100000,
});

/** True when a capability-less root could not open the file as asked (its owner is someone else). */
function needsOverride(f: { path: string; write: boolean }): boolean {
  try {
    const st = statSync(f.path);
    if (st.uid === 0) return false;
    const want = f.write ? 0o6 : 0o4;
    const other = st.mode & 0o7;
    const group = st.gid === 0 ? (st.mode >> 3) & 0o7 : 0;
    return ((other | group) & want) !== want;
  } catch {
    return false; // a missing file fails in QEMU with its own clear message
  }
}

export function prepareJail(host: JailHost, i: JailInput): JailSpawn | undefined {
  if (!host.enabled) return undefined;
  const override = i.volumes > 0 || i.files.some(needsOverride);
  const capabilities = override ? [...FILE_CAPS] : [];
  const procs = host.cgroups.mode === "none" ? [] : createGroup(host.cgroups, i.label, cgroupLimits(i));
  const prefix = [
    "/bin/sh", "-c", JOIN, "mvm-jail", ...procs, "--",
    "/usr/bin/prlimit", `--nofile=${NOFILE}:${NOFILE}`, "--core=0:0", "--",
    "/usr/bin/setpriv", "--no-new-privs", "--inh-caps=-all", `--bounding-set=-all${capabilities.map((c) => `,+${c}`).join("")}`, "--",
  ];
  return { prefix, env: ENV, capabilities, cleanup: () => void removeGroup(host.cgroups, i.label) };
}

/** What a running QEMU's jail is, read from /proc and its control group (shown by `mvm inspect`). */
export interface JailView {
  enabled: boolean;
  reason?: string;
  uid?: number;
  noNewPrivs?: boolean;
  /** 0 none, 2 a filter (QEMU's -sandbox). */
  seccomp?: number;
  capabilities?: string;
  /** Namespaces QEMU does not share with the host. */
  namespaces?: string[];
  cgroup?: { mode: string; path?: string; memoryBytes?: number; pids?: number; cpuQuotaUs?: number };
}

export function observeJail(host: JailHost, pid: number | undefined): JailView {
  if (!host.enabled) return { enabled: false, reason: host.reason };
  if (!pid) return { enabled: true };
  let status = "";
  try {
    status = readFileSync(`/proc/${pid}/status`, "utf8");
  } catch {
    return { enabled: true, reason: "QEMU is not running" };
  }
  const field = (name: string) => new RegExp(`^${name}:\\s+(\\S+)`, "m").exec(status)?.[1];
  const namespaces = ["mnt", "pid", "ipc", "uts", "net", "user", "cgroup"].filter((ns) => {
    try {
      return readlinkSync(`/proc/${pid}/ns/${ns}`) !== readlinkSync(`/proc/self/ns/${ns}`);
    } catch {
      return false;
    }
  });
  const group = groupOf(pid);
  const limits = group ? readLimits(host.cgroups, group) : undefined;
  return {
    enabled: true,
    uid: Number(field("Uid")),
    noNewPrivs: field("NoNewPrivs") === "1",
    seccomp: Number(field("Seccomp")),
    capabilities: field("CapEff"),
    namespaces,
    cgroup: { mode: host.cgroups.mode, ...(limits ?? {}) },
    ...(host.cgroups.mode === "none" ? { reason: host.cgroups.reason } : {}),
  };
}

/** The name of the mvm group a process is in (its memory controller's, or v2's), from /proc/PID/cgroup. */
function groupOf(pid: number): string | undefined {
  try {
    for (const line of readFileSync(`/proc/${pid}/cgroup`, "utf8").split("\n")) {
      const [, ctrls, path] = line.split(":");
      if (path === undefined || !(ctrls === "" || ctrls!.split(",").includes("memory"))) continue;
      const m = /\/mvm\/([^/]+)$/.exec(path);
      if (m) return m[1];
    }
  } catch {
    /* gone */
  }
  return undefined;
}
