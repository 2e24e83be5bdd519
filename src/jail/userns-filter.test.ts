import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { closeFilter, encodeFilter, openFilter, userNamespaceFilter } from "./userns-filter.js";

/** A small interpreter of the filter's instructions: what a call with this number and first argument gets. */
function run(nr: number, arg0: number, arch = 0xc000003e): number {
  const prog = userNamespaceFilter();
  let acc = 0;
  for (let pc = 0; pc < prog.length; pc++) {
    const [code, jt, jf, k] = prog[pc]!;
    if (code === 0x20) acc = k === 0 ? nr : k === 4 ? arch : k === 16 ? arg0 : NaN;
    else if (code === 0x06) return k;
    else if (code === 0x15) pc += acc === k ? jt : jf;
    else if (code === 0x35) pc += acc >= k ? jt : jf;
    else if (code === 0x45) pc += (acc & k) !== 0 ? jt : jf;
    else throw new Error(`unknown opcode ${code}`);
  }
  throw new Error("fell off the end");
}

test("the filter: no new user namespaces, by unshare, clone or clone3; everything else allowed", () => {
  const ALLOW = 0x7fff0000;
  assert.equal(run(272, 0x10000000), 0x50001, "unshare(CLONE_NEWUSER): EPERM");
  assert.equal(run(272, 0x10000000 | 0x20000), 0x50001, "with other flags too");
  assert.equal(run(56, 0x10000000 | 0x11), 0x50001, "clone(CLONE_NEWUSER|SIGCHLD): EPERM");
  assert.equal(run(435, 0), 0x50026, "clone3: ENOSYS (glibc falls back to clone)");
  assert.equal(run(56, 0x3d0f00), ALLOW, "clone for a thread");
  assert.equal(run(272, 0x20000), ALLOW, "unshare(CLONE_NEWNS) is left to capabilities");
  assert.equal(run(0, 0), ALLOW, "read");
  assert.equal(run(0x40000000 + 272, 0x10000000), 0x80000000, "the x32 ABI: killed");
  assert.equal(run(272, 0x10000000, 0x40000003), 0x80000000, "i386: killed");
  assert.equal(encodeFilter(userNamespaceFilter()).length, userNamespaceFilter().length * 8);
});

test("the filter file is written once and opened read-only; bwrap installs it and unshare -U fails", { skip: process.getuid?.() !== 0 && "bwrap as root" }, () => {
  const dir = mkdtempSync(join(tmpdir(), "mvm-filter-"));
  try {
    const fd = openFilter(dir);
    assert.deepEqual(readFileSync(join(dir, "userns-filter.bpf")), encodeFilter(userNamespaceFilter()));
    const r = spawnSync("/usr/bin/bwrap", ["--ro-bind", "/", "/", "--seccomp", "3", "--", "/usr/bin/unshare", "-U", "true"], { stdio: ["ignore", "pipe", "pipe", fd] });
    closeFilter(fd);
    assert.notEqual(r.status, 0, "unshare -U is refused");
    assert.match(r.stderr.toString(), /Operation not permitted/);
    const fd2 = openFilter(dir);
    const ok = spawnSync("/usr/bin/bwrap", ["--ro-bind", "/", "/", "--seccomp", "3", "--", "/bin/sh", "-c", "(true &); echo forked"], { stdio: ["ignore", "pipe", "pipe", fd2] });
    closeFilter(fd2);
    assert.equal(ok.stdout.toString(), "forked\n", "fork and threads still work");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
