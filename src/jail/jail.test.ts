import assert from "node:assert/strict";
import { chownSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { cgroupLimits, decideJail, prepareJail, type JailHost } from "./jail.js";

const host: JailHost = { enabled: true, reason: "", cgroups: { mode: "none", reason: "test", parents: {} } };

test("the jail is on for root only, and MVM_JAIL=0 turns it off", () => {
  assert.equal(decideJail({}, 1000).enabled, false);
  assert.match(decideJail({}, 1000).reason, /not run as root/);
  assert.equal(decideJail({ MVM_JAIL: "0" }, 0).enabled, false);
});

test("the command execs through sh, prlimit and setpriv into QEMU, with no capabilities and a clean environment", () => {
  const j = prepareJail(host, { label: "mvm-a", memoryMiB: 256, cpus: 1, volumes: 0, files: [] })!;
  assert.deepEqual(j.prefix.slice(0, 2), ["/bin/sh", "-c"]);
  assert.ok(j.prefix.includes("/usr/bin/prlimit") && j.prefix.includes("/usr/bin/setpriv"));
  assert.ok(j.prefix.includes("--no-new-privs"));
  assert.ok(j.prefix.includes("--bounding-set=-all"));
  assert.ok(j.prefix.includes("--core=0:0"));
  assert.equal(j.prefix.at(-1), "--", "QEMU's binary and argv follow");
  assert.deepEqual(j.env, { PATH: "/usr/sbin:/usr/bin:/sbin:/bin" });
  assert.deepEqual(j.capabilities, []);
  assert.equal(prepareJail({ ...host, enabled: false }, { label: "x", memoryMiB: 1, cpus: 1, volumes: 0, files: [] }), undefined);
});

test("shared folders, or a disk another user owns, keep the file capabilities; root's own files do not", () => {
  const withShare = prepareJail(host, { label: "mvm-b", memoryMiB: 256, cpus: 1, volumes: 1, files: [] })!;
  assert.deepEqual(withShare.capabilities, ["dac_override", "dac_read_search", "fowner", "chown", "fsetid"]);
  assert.ok(withShare.prefix.includes("--bounding-set=-all,+dac_override,+dac_read_search,+fowner,+chown,+fsetid"));
  const dir = mkdtempSync(join(tmpdir(), "mvm-jail-"));
  try {
    const mine = join(dir, "mine.img");
    const theirs = join(dir, "theirs.img");
    writeFileSync(mine, "", { mode: 0o600 });
    writeFileSync(theirs, "", { mode: 0o644 });
    if (process.getuid?.() === 0) chownSync(theirs, 1000, 1000);
    const f = (path: string, write: boolean) => prepareJail(host, { label: "mvm-c", memoryMiB: 1, cpus: 1, volumes: 0, files: [{ path, write }] })!.capabilities.length;
    assert.equal(f(mine, true), 0);
    if (process.getuid?.() === 0) {
      assert.equal(f(theirs, false), 0, "readable by others: no capability needed to read it");
      assert.equal(f(theirs, true), 5, "written by QEMU, owned by someone else");
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("limits: guest RAM plus headroom, threads, a core per vCPU and one for QEMU", () => {
  assert.deepEqual(cgroupLimits({ memoryMiB: 256, cpus: 1 }), { memoryBytes: 512 * 1048576, pids: 130, cpuQuotaUs: 200000 });
  assert.equal(cgroupLimits({ memoryMiB: 4096, cpus: 4 }).memoryBytes, (4096 + 1024) * 1048576, "a quarter of a large guest");
});
