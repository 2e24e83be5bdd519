// The jail each QEMU starts in when the daemon runs as root (docs/threat-model.md). One chain, exec'd in turn:
//   sh      joins the VM's control group (src/host/cgroups.ts), so every thread QEMU makes is counted;
//   prlimit no core dumps (they would hold guest memory), bounded open files (and processes, per uid);
//   bwrap   new mount, PID, IPC, UTS and cgroup namespaces (and network, for VMs without one), a root holding
//           only /usr, a minimal /dev and this VM's own paths (src/jail/sandbox.ts); it forks QEMU as PID 1
//           of its namespace, waits for it, and tells the daemon QEMU's host pid;
//   setpriv QEMU's own uid from a reserved range (src/jail/ids.ts), no capabilities, no_new_privs; or, where
//           the VM needs what only root may open (shared folders, a user's file, a root-only device node),
//           uid 0 with no capabilities but the file capabilities when other users' files are involved;
//   qemu    with a cleared environment, and QEMU's own seccomp filter (argv.ts adds -sandbox).
// Without bubblewrap the chain is sh, prlimit and setpriv only (no namespaces, uid 0), and inspect says so.

import { existsSync, readFileSync, readlinkSync, realpathSync, statSync } from "node:fs";
import { createGroup, groupOfProcess, readLimits, removeGroup, setUpCgroups, type CgroupHost, type CgroupLimits } from "../host/cgroups.js";
import { applyDirAccess, planAccess, readJailRecord, shareWithGroup, under, writeJailRecord, type FileNeed, type JailRecord } from "./access.js";
import { claimId, idRange, sharedGid, type IdClaim, type IdRange } from "./ids.js";
import { BWRAP, bwrapArgs, type Bind } from "./sandbox.js";
import { openFilter } from "./userns-filter.js";
import { dirname } from "node:path";

/** What the host allows, decided once per daemon. */
export interface JailHost {
  enabled: boolean;
  /** Why the jail is off, or what it cannot do here. */
  reason: string;
  cgroups: CgroupHost;
  /** bubblewrap is there: namespaces, a root of the VM's own, a uid per VM. */
  namespaces?: boolean;
  ids?: IdRange;
  /** mvm's own directories (home, cache): root's files there are given to the shared group as needed. */
  managed?: string[];
  /** More paths bound read-only into every jail (a test's stand-in QEMU and its modules). */
  extraReadOnly?: string[];
}

/**
 * On when the daemon runs as root (the case the jail is for: as another user QEMU already has that user's
 * rights only, and cannot join groups or drop what it does not have), unless MVM_JAIL=0 turns it off.
 */
export function decideJail(env: NodeJS.ProcessEnv = process.env, uid = process.getuid?.() ?? -1, o: { managed?: string[] } = {}): JailHost {
  const none: CgroupHost = { mode: "none", reason: "the jail is off", parents: {} };
  if (env.MVM_JAIL === "0") return { enabled: false, reason: "turned off by MVM_JAIL=0", cgroups: none };
  if (uid !== 0) return { enabled: false, reason: "the daemon does not run as root: QEMU runs as the daemon's user, with that user's rights", cgroups: none };
  const missing = TOOLS.filter((t) => !existsSync(t));
  if (missing.length) return { enabled: false, reason: `${missing.join(", ")} missing (Debian's util-linux has them): QEMU runs unjailed`, cgroups: none };
  const cgroups = setUpCgroups();
  const namespaces = env.MVM_JAIL_NAMESPACES !== "0" && existsSync(BWRAP);
  const reasons = [
    ...(namespaces ? [] : [env.MVM_JAIL_NAMESPACES === "0" ? "no namespaces (MVM_JAIL_NAMESPACES=0): QEMU runs as root without capabilities" : "bubblewrap is missing (apt-get install bubblewrap): no namespaces, QEMU runs as root without capabilities"]),
    ...(cgroups.mode === "none" ? [`no resource limits: ${cgroups.reason}`] : []),
  ];
  return { enabled: true, reason: reasons.join("; "), cgroups, namespaces, ids: namespaces ? idRange(env) : undefined, managed: o.managed ?? [] };
}

/** QEMU's seccomp options: every deny 7.2 tolerates for mvm's features (spawn must stay: `migrate exec:cat`). */
export const SECCOMP_OPTIONS = "on,obsolete=deny,elevateprivileges=deny,spawn=allow,resourcecontrol=deny";

/** The file-access capabilities a root-mode VM with shared folders or other users' files keeps. */
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
  /** The VM's directory: bound read-write, its files made QEMU's. */
  dir: string;
  /** QEMU's binary (bound when outside /usr). */
  binary: string;
  accel: "kvm" | "tcg";
  network: "none" | "user" | "tap";
  /** Host folders shared over 9p. */
  volumes: Array<{ hostPath: string; readOnly: boolean }>;
  /** Files QEMU opens by path outside its directory's own (kernel, initrd, disks and their chains, states, RAM). */
  files: FileNeed[];
  sockets: string[];
  consoleLog?: string;
  config?: string;
}

export interface JailSpawn {
  /** The command to spawn; QEMU's binary and argv follow it. */
  prefix: string[];
  env: Record<string, string>;
  capabilities: string[];
  /** bwrap forks QEMU: the spawned process is not QEMU (src/vm/qemu-process.ts spawnJailedQemu). */
  forks: boolean;
  /** Descriptors the spawn passes on as fds 3, 4, … (the seccomp program), closed by the caller after it. */
  passFds: number[];
  record: JailRecord;
  /** Makes the VM's directory and files QEMU's: after its sockets listen, before QEMU is spawned. */
  setUp(): void;
  /** QEMU's pid, once known (the uid claim names it). */
  named(pid: number): void;
  /** Called when QEMU has ended: its control group and uid go. */
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
function needsOverride(f: FileNeed): boolean {
  try {
    const st = statSync(f.path);
    if (st.uid === 0) return false;
    const want = f.want === "rw" ? 0o6 : 0o4;
    const other = st.mode & 0o7;
    const group = st.gid === 0 ? (st.mode >> 3) & 0o7 : 0;
    return ((other | group) & want) !== want;
  } catch {
    return false; // a missing file fails in QEMU with its own clear message
  }
}

/** The binary's real path (/bin/true is /usr/bin/true on a merged-/usr host, already in the jail). */
function realBinary(path: string): string {
  try {
    return realpathSync(path);
  } catch {
    return path;
  }
}

const boundingSet = (caps: string[]) => `--bounding-set=-all${caps.map((c) => `,+${c}`).join("")}`;

export function prepareJail(host: JailHost, i: JailInput): JailSpawn | undefined {
  if (!host.enabled) return undefined;
  const limits = cgroupLimits(i);
  const procs = host.cgroups.mode === "none" ? [] : createGroup(host.cgroups, i.label, limits);
  const groupGone = () => void removeGroup(host.cgroups, i.label);
  const head = ["/bin/sh", "-c", JOIN, "mvm-jail", ...procs, "--", "/usr/bin/prlimit", `--nofile=${NOFILE}:${NOFILE}`, "--core=0:0"];
  if (!host.namespaces || !host.ids) {
    const capabilities = i.volumes.length > 0 || i.files.some(needsOverride) ? [...FILE_CAPS] : [];
    const record: JailRecord = { dir: i.dir, uid: 0, groups: [], mode: "root", reason: host.reason, namespaces: false, ownNet: false, capabilities };
    return {
      prefix: [...head, "--", "/usr/bin/setpriv", "--no-new-privs", "--inh-caps=-all", boundingSet(capabilities), "--"],
      env: ENV, capabilities, record, forks: false, passFds: [],
      setUp: () => writeJailRecord(i.dir, record),
      named: () => undefined,
      cleanup: groupGone,
    };
  }
  let claim: IdClaim | undefined;
  try {
    claim = claimId(host.ids, i.label);
  } catch {
    claim = undefined; // /run not writable: root mode, said below
  }
  const shared = sharedGid(host.ids);
  const devices = [...(i.accel === "kvm" ? ["/dev/kvm"] : []), ...(i.network === "tap" ? ["/dev/net/tun"] : [])];
  const access = planAccess(i.files, devices, { uid: claim?.uid ?? -1, sharedGid: shared, own: i.dir, managed: host.managed ?? [], volumes: i.volumes.length });
  const rootBecause = claim ? access.rootBecause : "no uid of mvm's range is free (or /run/mvm/ids cannot be written)";
  if (rootBecause) claim?.release();
  const uid = rootBecause ? 0 : claim!.uid;
  const capabilities = rootBecause && (access.foreignFiles || i.files.some(needsOverride)) ? [...FILE_CAPS] : [];
  const groups = rootBecause ? [] : [shared, ...access.deviceGroups];
  const binds: Bind[] = [
    { path: i.dir, kind: "rw" },
    ...i.files.map((f): Bind => ({ path: f.path, kind: f.want === "rw" ? "rw" : "ro" })),
    ...i.volumes.map((v): Bind => ({ path: v.hostPath, kind: v.readOnly ? "ro" : "rw" })),
    ...devices.map((d): Bind => ({ path: d, kind: "dev" })),
    ...(i.network === "user" && existsSync("/etc/resolv.conf") ? [{ path: "/etc/resolv.conf", kind: "ro" } as Bind] : []), // slirp's DNS forwarding reads it
    ...(under(realBinary(i.binary), ["/usr"]) ? [] : [{ path: realBinary(i.binary), kind: "ro" } as Bind]),
    ...(host.extraReadOnly ?? []).map((path): Bind => ({ path, kind: "ro" })),
  ];
  const ownNet = i.network === "none";
  // fd 3 of the spawn: bwrap reads the program and closes it before QEMU runs.
  let filterFd: number | undefined;
  try {
    filterFd = openFilter(dirname(host.ids.dir));
  } catch {
    filterFd = undefined; // /run not writable: said in the record below
  }
  const bwrap = bwrapArgs({ binds, ownNet, ...(filterFd !== undefined ? { seccompFd: 3 } : {}), caps: rootBecause ? ["setpcap", ...capabilities] : ["setuid", "setgid", "setpcap"] });
  const setpriv = rootBecause
    ? ["/usr/bin/setpriv", "--no-new-privs", "--inh-caps=-all", boundingSet(capabilities), "--"]
    : ["/usr/bin/setpriv", `--reuid=${uid}`, `--regid=${uid}`, `--groups=${groups.join(",")}`, "--no-new-privs", "--inh-caps=-all", "--bounding-set=-all", "--"];
  const reasons = [...(rootBecause ? [`runs as root: ${rootBecause}`] : []), ...(filterFd === undefined ? ["no filter against new user namespaces (/run/mvm cannot be written)"] : [])];
  const record: JailRecord = { dir: i.dir, uid, sharedGid: shared, groups, mode: rootBecause ? "root" : "uid", ...(reasons.length ? { reason: reasons.join("; ") } : {}), namespaces: true, ownNet, capabilities, usernsFilter: filterFd !== undefined };
  return {
    // RLIMIT_NPROC counts the processes and threads of QEMU's own uid: a cap where control groups are missing.
    prefix: [...head, ...(rootBecause ? [] : [`--nproc=${limits.pids}:${limits.pids}`]), "--", BWRAP, ...bwrap, ...setpriv],
    env: ENV, capabilities, record, forks: true, passFds: filterFd !== undefined ? [filterFd] : [],
    setUp: () => {
      for (const f of i.files) if (!under(f.path, [i.dir]) && under(f.path, host.managed ?? []) && uid !== 0) shareWithGroup(f.path, shared, f.want);
      applyDirAccess({ dir: i.dir, sockets: i.sockets, consoleLog: i.consoleLog, config: i.config, ownFiles: i.files.filter((f) => f.want === "rw" && under(f.path, [i.dir])).map((f) => f.path) }, uid);
      writeJailRecord(i.dir, record);
    },
    named: (pid) => claim?.name(pid),
    cleanup: () => {
      groupGone();
      if (!rootBecause) claim?.release();
    },
  };
}

/** What a running QEMU's jail is, read from /proc and its control group (shown by `mvm inspect`). */
export interface JailView {
  enabled: boolean;
  reason?: string;
  uid?: number;
  /** uid: QEMU runs as its own uid; root: as uid 0 without capabilities (reason says why). */
  mode?: "uid" | "root";
  groups?: number[];
  /** mvm's seccomp filter against new user namespaces, beneath QEMU's own. */
  usernsFilter?: boolean;
  noNewPrivs?: boolean;
  /** 0 none, 2 a filter (QEMU's -sandbox). */
  seccomp?: number;
  capabilities?: string;
  /** Namespaces QEMU does not share with the host. */
  namespaces?: string[];
  cgroup?: { mode: string; path?: string; memoryBytes?: number; pids?: number; cpuQuotaUs?: number };
}

export function observeJail(host: JailHost, pid: number | undefined, dir?: string): JailView {
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
  const group = groupOfProcess(pid);
  const limits = group ? readLimits(host.cgroups, group) : undefined;
  const record = dir ? readJailRecord(dir) : undefined;
  const reasons = [record?.reason, host.cgroups.mode === "none" ? host.cgroups.reason : undefined].filter(Boolean);
  return {
    enabled: true,
    uid: Number(field("Uid")),
    ...(record ? { mode: record.mode, groups: record.groups, usernsFilter: record.usernsFilter ?? false } : {}),
    noNewPrivs: field("NoNewPrivs") === "1",
    seccomp: Number(field("Seccomp")),
    capabilities: field("CapEff"),
    namespaces,
    cgroup: { mode: host.cgroups.mode, ...(limits ?? {}) },
    ...(reasons.length ? { reason: reasons.join("; ") } : {}),
  };
}
