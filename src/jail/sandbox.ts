// The namespaces and the root filesystem a jailed QEMU sees, as bubblewrap's argv (pure, unit-tested).
// bwrap runs as root (no user namespace: the bind sources, in root-only directories, are opened by it) and
// builds new mount, PID, IPC, UTS and cgroup namespaces, and a network namespace where the VM's networking
// allows (none: user networking is QEMU's own host sockets, a tap is looked up by name in the host's). Inside,
// a tmpfs root holds only /usr (programs and libraries, read-only: QEMU, its modules and firmware, the
// `sh` and `cat` of migrations), a minimal /dev, /proc, and each path of this VM bound at its host path, so
// QEMU's argv and mvm's orphan scan read the same. QEMU is PID 1 there (--as-pid-1); the outer bwrap waits for
// it and exits with its status; its one child's host pid is QEMU's, the one the daemon records.
// setpriv then takes QEMU to its own uid, or (root mode, when the VM needs what only root may open) keeps
// uid 0 with at most the file capabilities.

import { lstatSync, readlinkSync } from "node:fs";
import { dirname } from "node:path";

export const BWRAP = "/usr/bin/bwrap";

export interface Bind {
  path: string;
  /** ro: read-only; rw: read-write; dev: a device node. */
  kind: "ro" | "rw" | "dev";
}

export interface SandboxPlan {
  binds: Bind[];
  /** A network namespace of its own (VMs without a network). */
  ownNet: boolean;
  /** An fd holding a seccomp program bwrap installs before QEMU (src/jail/userns-filter.ts). */
  seccompFd?: number;
  /** Capabilities bwrap leaves the command it runs (setpriv's, to change uid or keep file capabilities). */
  caps: string[];
}

/** /bin, /lib, /lib64, /sbin as the host has them: symlinks into /usr on a merged-/usr Debian, else binds. */
function topLevel(): string[] {
  const args: string[] = [];
  for (const p of ["/bin", "/lib", "/lib64", "/sbin"]) {
    try {
      const st = lstatSync(p);
      if (st.isSymbolicLink()) args.push("--symlink", readlinkSync(p), p);
      else if (st.isDirectory()) args.push("--ro-bind", p, p);
    } catch {
      /* not on this host */
    }
  }
  return args;
}

/** Under one of `roots` (or one of them). */
const within = (p: string, roots: string[]) => roots.some((r) => p === r || p.startsWith(r.endsWith("/") ? r : `${r}/`));

/**
 * bwrap's argv, up to and including its `--`. Parent directories of the binds are made 0755 first (bwrap,
 * as root, would make them 0700 and a QEMU of its own uid could not walk them); none is made inside
 * another bind, which would create it on the host. Directories are bound before what lies in them.
 */
export function bwrapArgs(p: SandboxPlan, hostLayout: string[] = topLevel()): string[] {
  const seen = new Set<string>();
  const binds = [...new Map(p.binds.map((b) => [b.path, b])).values()].sort((a, b) => a.path.split("/").length - b.path.split("/").length);
  const parents: string[] = [];
  // /dev is the jail's own tmpfs (a template's RAM file under /dev/shm is bound there): its dirs may be made.
  const system = ["/usr", "/proc"];
  for (const b of binds) {
    for (let d = dirname(b.path); d !== "/" && !seen.has(d); d = dirname(d)) seen.add(d);
  }
  for (const d of [...seen].sort((a, b) => a.split("/").length - b.split("/").length)) {
    if (!within(d, system) && !within(d, binds.map((b) => b.path))) parents.push(d);
  }
  const args = [
    "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try", ...(p.ownNet ? ["--unshare-net"] : []),
    "--as-pid-1", "--new-session", "--hostname", "mvm",
    "--ro-bind", "/usr", "/usr", ...hostLayout,
    "--dev", "/dev", "--proc", "/proc",
    ...parents.flatMap((d) => ["--perms", "0755", "--dir", d]),
  ];
  for (const b of binds) args.push(b.kind === "ro" ? "--ro-bind" : b.kind === "rw" ? "--bind" : "--dev-bind", b.path, b.path);
  args.push("--remount-ro", "/", ...(p.seccompFd !== undefined ? ["--seccomp", String(p.seccompFd)] : []), ...p.caps.flatMap((c) => ["--cap-add", `CAP_${c.toUpperCase()}`]), "--");
  return args;
}
