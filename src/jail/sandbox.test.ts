import assert from "node:assert/strict";
import { test } from "node:test";
import { bwrapArgs } from "./sandbox.js";

const layout = ["--symlink", "usr/lib", "/lib"];

test("bwrap: namespaces, /usr read-only, parents made walkable, binds by kind, directories before their files, a read-only root", () => {
  const args = bwrapArgs(
    {
      binds: [
        { path: "/home/mvm/vms/ab/suspend/state", kind: "ro" },
        { path: "/home/mvm/vms/ab", kind: "rw" },
        { path: "/var/cache/mvm/kernel/k/vmlinux", kind: "ro" },
        { path: "/dev/kvm", kind: "dev" },
        { path: "/dev/shm/mvm-templates/t.ram", kind: "rw" },
        { path: "/home/mvm/vms/ab", kind: "rw" },
      ],
      ownNet: true,
      seccompFd: 3,
      caps: ["setuid", "setgid"],
    },
    layout,
  );
  for (const ns of ["--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try", "--unshare-net", "--as-pid-1", "--new-session"]) assert.ok(args.includes(ns), ns);
  assert.ok(!args.includes("--die-with-parent"), "QEMU must outlive the daemon");
  const pair = (flag: string, a: string, b = a) => args.some((x, i) => x === flag && args[i + 1] === a && args[i + 2] === b);
  assert.ok(pair("--ro-bind", "/usr"));
  assert.ok(pair("--symlink", "usr/lib", "/lib"));
  assert.ok(pair("--bind", "/home/mvm/vms/ab"));
  assert.ok(pair("--ro-bind", "/home/mvm/vms/ab/suspend/state"));
  assert.ok(pair("--dev-bind", "/dev/kvm"));
  assert.ok(pair("--bind", "/dev/shm/mvm-templates/t.ram"));
  assert.equal(args.filter((a) => a === "/home/mvm/vms/ab").length, 2, "a path bound twice is bound once");
  assert.ok(args.indexOf("/home/mvm/vms/ab") < args.indexOf("/home/mvm/vms/ab/suspend/state"), "the directory before what lies in it");
  const dirs = args.flatMap((a, i) => (a === "--dir" ? [args[i + 1]!] : []));
  for (const d of ["/home", "/home/mvm", "/home/mvm/vms", "/var/cache/mvm/kernel/k", "/dev/shm/mvm-templates"]) assert.ok(dirs.includes(d), `${d} made`);
  assert.ok(!dirs.includes("/home/mvm/vms/ab/suspend"), "nothing is made inside a bind (it would be made on the host)");
  assert.ok(!dirs.some((d) => d.startsWith("/usr") || d.startsWith("/proc")));
  assert.ok(args.every((a, i) => a !== "--dir" || args[i - 2] === "--perms" && args[i - 1] === "0755"), "each made 0755");
  assert.ok(args.indexOf("--remount-ro") > args.lastIndexOf("--bind"), "the root goes read-only after the binds");
  assert.equal(args.at(-1), "--");
  assert.ok(pair("--seccomp", "3", args[args.indexOf("--seccomp") + 2]), "mvm's filter against new user namespaces");
  assert.ok(pair("--cap-add", "CAP_SETUID", "--cap-add"));
});

test("bwrap: user networking and taps stay in the host's network namespace", () => {
  assert.ok(!bwrapArgs({ binds: [], ownNet: false, caps: [] }, layout).includes("--unshare-net"));
});
