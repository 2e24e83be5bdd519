import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { NAME_PATTERN, checkSpec, generateName } from "./vm-spec.js";
import { InvalidSpecError } from "../errors.js";

test("defaults fill a minimal spec", () => {
  const s = checkSpec({ name: "web" });
  assert.deepEqual(s, { name: "web", cpus: 1, memoryMiB: 256, kernel: undefined, initrd: undefined, append: undefined, cmdline: undefined, accel: "auto", binary: "auto", hostname: "web", machine: {}, network: "none", ip: undefined, ports: [], image: undefined, diskSizeMiB: undefined, disks: [], volumes: [], command: undefined, env: {}, workdir: undefined, user: undefined, ready: undefined, boot: "auto" });
});

test("unknown keys and wrong types are refused with their path", () => {
  assert.throws(() => checkSpec({ name: "a", colour: "red" }), (e: unknown) => e instanceof InvalidSpecError && /colour/.test(e.hint ?? ""));
  assert.throws(() => checkSpec({ cpus: "two" }), /\/cpus/);
  assert.throws(() => checkSpec({ cpus: 0 }), /\/cpus/);
  assert.throws(() => checkSpec({ env: { "1BAD": "x" } }), InvalidSpecError);
  assert.throws(() => checkSpec({ command: [] }), /\/command/);
  assert.throws(() => checkSpec({ append: "a", cmdline: "b" }), /together/);
  assert.throws(() => checkSpec({ memory: "-1G" }), /memory/);
  assert.throws(() => checkSpec({ kernel: "/nonexistent/vmlinux" }), /cannot read kernel/);
  assert.throws(() => checkSpec({ machine: { acpi: "maybe" } }), /\/machine\/acpi/);
  assert.throws(() => checkSpec({ machine: { "x-option-roms": "on" } }), InvalidSpecError, "only allowlisted machine options");
  assert.deepEqual(checkSpec({ machine: { pit: "off" } }).machine, { pit: "off" });
});

test("names: the pattern holds for good ones, odd characters are refused", () => {
  for (const bad of ["", "Web", "-a", "a_b", "a b", "a,b", "a/b", "é", "x".repeat(64), "../etc"]) {
    assert.throws(() => checkSpec({ name: bad }), InvalidSpecError, bad);
  }
  for (const good of ["a", "0", "web-1", "x".repeat(63)]) assert.equal(checkSpec({ name: good }).name, good);
});

test("generated names match the pattern and avoid taken ones", () => {
  const re = new RegExp(NAME_PATTERN);
  const taken = new Set<string>();
  for (let i = 0; i < 200; i++) {
    const n = generateName((x) => taken.has(x));
    assert.match(n, re);
    assert.ok(!taken.has(n));
    taken.add(n);
  }
});

test("property: any name the schema accepts is safe as a file name and a QEMU value", () => {
  fc.assert(
    fc.property(fc.stringMatching(new RegExp(NAME_PATTERN)), (name) => {
      const s = checkSpec({ name });
      assert.doesNotMatch(s.name, /[,/=\s]/);
    }),
  );
});

test("networks and published ports", () => {
  assert.deepEqual(checkSpec({ network: "user", ports: ["8080:80"] }).ports, [{ hostIp: "127.0.0.1", hostPort: 8080, guestPort: 80, proto: "tcp" }]);
  assert.throws(() => checkSpec({ ports: ["8080:80"] }), /needs a user network/);
  assert.throws(() => checkSpec({ network: "lan", ports: ["8080:80"] }), /needs a user network/);
  assert.throws(() => checkSpec({ ip: "10.0.0.5" }), /needs a bridged network/);
  assert.equal(checkSpec({ network: "lan", ip: "10.0.0.5" }).network, "lan");
  assert.throws(() => checkSpec({ network: "user", ports: ["8080:80", "127.0.0.1:8080:81"] }), /published twice/);
  assert.throws(() => checkSpec({ network: "Bridge_0" }), /\/network/);
  assert.throws(() => checkSpec({ network: "user", ports: ["8080:80,hostfwd=tcp::22-:22"] }), /invalid/);
});

test("control characters in kernel, initrd, append or cmdline are refused (they would reach QEMU's argv)", () => {
  for (const key of ["kernel", "initrd", "append", "cmdline"]) {
    assert.throws(() => checkSpec({ [key]: "a\u0000b" }), (e: unknown) => e instanceof InvalidSpecError && e.message.includes(`/${key}: holds a NUL byte`), key);
  }
  assert.throws(() => checkSpec({ append: "quiet\ninit=/bin/sh" }), InvalidSpecError);
});
