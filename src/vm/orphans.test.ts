import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { findLabelledQemus } from "./orphans.js";

test("findLabelledQemus: mvm's labelled QEMUs of this home, by pid and VM id, and nothing else", (t) => {
  const proc = mkdtempSync(join(tmpdir(), "mvm-fake-proc-"));
  t.after(() => rmSync(proc, { recursive: true, force: true }));
  const home = "/var/lib/mvm";
  const id = "aabbccddeeff";
  const sock = (h: string, vm: string) => `socket,id=agent,path=${h}/vms/${vm}/agent.sock,reconnect=1`;
  const entry = (name: string, argv?: string[]) => {
    mkdirSync(join(proc, name));
    if (argv) writeFileSync(join(proc, name, "cmdline"), `${argv.join("\0")}\0`);
  };
  entry("100", ["/usr/bin/qemu-system-x86_64", "-name", `mvm-${id}`, "-nodefaults", "-chardev", sock(home, id)]);
  entry("101", ["/usr/bin/qemu-system-x86_64", "-name", "mvm-0123456789ab", "-chardev", sock("/home/someone/.mvm", "0123456789ab")]); // another home
  entry("102", ["/usr/bin/qemu-system-x86_64", "-name", "mvm-0123456789ab", "-chardev", sock(`${home}-other`, "0123456789ab")]); // a home whose path only starts like this one
  entry("103", ["/usr/bin/qemu-system-x86_64", "-name", "mvm-0123456789ab", "-chardev", sock(home, "ffffffffffff")]); // label and directory disagree
  entry("104", ["/usr/bin/qemu-system-x86_64", "-name", "web", "-chardev", sock(home, id)]); // not mvm's label
  entry("105", ["/usr/bin/qemu-system-x86_64", "-name", "mvm-run-0a1b2c3d", "-chardev", sock(home, id)]); // a one-off launch
  entry("106", ["/usr/bin/node", "server.js", "-name", `mvm-${id}`, sock(home, id)]); // not a QEMU
  entry("107", ["/usr/bin/qemu-system-x86_64", "-chardev", sock(home, id)]); // no label at all
  entry("108"); // gone while the scan ran: no cmdline to read
  entry("109", ["/usr/bin/qemu-system-x86_64", "-name", `mvm-${id}`, "-chardev", sock(`/srv/copy${home}`, id)]); // a copy of this home elsewhere, same ids
  entry("self", ["/usr/bin/qemu-system-x86_64", "-name", `mvm-${id}`, sock(home, id)]); // not a pid
  writeFileSync(join(proc, "uptime"), "1.0 1.0\n");
  assert.deepEqual(findLabelledQemus(home, proc), [{ pid: 100, id }]);
  assert.deepEqual(findLabelledQemus("/home/someone/.mvm", proc), [{ pid: 101, id: "0123456789ab" }]);
});
