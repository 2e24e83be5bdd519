import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { rmSync } from "node:fs";
import type { GuestArtifacts } from "../guest/artifacts.js";
import { flattenArgv } from "../qemu/microvm-argv.js";
import type { VmRecord } from "../store/vm-store.js";
import { checkSpec, type VmSpecInput } from "../vmspec/vm-spec.js";
import { buildArgv } from "./argv.js";
import { macFor, planIn, planVm, vmLabel, type HostFacts } from "./vm-plan.js";

const artifacts: GuestArtifacts = {
  kernel: { dir: "/c/k", vmlinux: "/c/k/vmlinux", bzImage: "/c/k/bzImage", info: { release: "6.1-mvm", sourceVersion: "6.1", hz: 100, key: "k", buildSeconds: 1 } },
  initramfs: { dir: "/c/i", path: "/c/i/initramfs.cpio", info: { busyboxVersion: "1.35", key: "i", bytes: 1, agentBytes: 1, initBytes: 1 } },
};
const host: HostFacts = { home: "/h", accel: "tcg", qemuBinary: "/usr/bin/qemu-system-x86_64", artifacts, nameservers: ["192.0.2.53"] };

function record(input: VmSpecInput, extra: Partial<VmRecord> = {}): VmRecord {
  const now = new Date(0).toISOString();
  return { id: "0123456789ab", name: input.name ?? "vm", state: "created", spec: checkSpec(input), createdAt: now, updatedAt: now, ...extra };
}

// checkSpec opens the files a spec names: real ones, with a comma in a name.
const tmp = mkdtempSync(join(tmpdir(), "mvm-plan-"));
after(() => rmSync(tmp, { recursive: true, force: true }));
const rawDisk = join(tmp, "a.raw");
writeFileSync(rawDisk, Buffer.alloc(4096));
const [shareA, shareB] = [join(tmp, "a"), join(tmp, "b,x")];
mkdirSync(shareA);
mkdirSync(shareB);

const argvOf = (rec: VmRecord) => {
  const plan = planVm(rec, host);
  return flattenArgv(buildArgv(plan, { artifacts, dir: plan.dir, configFile: `${plan.dir}/config`, console: "socket" }));
};

test("a minimal VM: its directory, label, mvm's kernel, agent readiness, no NIC or disk", () => {
  const plan = planVm(record({ name: "vm" }), host);
  assert.equal(plan.dir, "/h/vms/0123456789ab");
  assert.equal(plan.label, vmLabel("0123456789ab"));
  assert.deepEqual(plan.readiness, { kind: "agent" });
  assert.equal(plan.network, undefined);
  assert.deepEqual(plan.disks, []);
  assert.deepEqual(plan.config?.mounts, []);
  assert.equal(plan.config?.hostname, "vm");
  const argv = argvOf(record({ name: "vm" }));
  assert.equal(argv[argv.indexOf("-name") + 1], "mvm-0123456789ab");
  assert.equal(argv[argv.indexOf("-kernel") + 1], "/c/k/vmlinux");
  assert.ok(argv.some((a) => a.includes("/h/vms/0123456789ab/agent.sock")), "the agent socket lives in the VM's directory");
});

test("user networking: slirp's addresses in the guest config, published ports as hostfwd, a MAC from the id", () => {
  const rec = record({ name: "web", network: "user", ports: ["8080:80"] });
  const plan = planVm(rec, host);
  assert.deepEqual(plan.config?.network, { iface: "eth0", address: "10.0.2.15/24", gateway: "10.0.2.2", dns: ["10.0.2.3"] });
  assert.deepEqual(plan.network, { kind: "user", restrict: false, ports: rec.spec.ports, mac: macFor(rec.id) });
  assert.equal(macFor(rec.id), "52:54:00:01:23:45");
  const argv = argvOf(rec);
  assert.ok(argv.some((a) => a.startsWith("user,id=net0") && a.includes("hostfwd=tcp:127.0.0.1:8080-:80")), argv.join(" "));
  assert.equal(planVm(record({ network: "user,restrict" }), host).network?.kind === "user" && (planVm(record({ network: "user,restrict" }), host).network as { restrict: boolean }).restrict, true);
});

test("a bridged network: the tap and address allocated at create, the host's nameservers", () => {
  const rec = record({ name: "b", network: "lan" }, { bridged: { network: "lan", ip: "10.9.0.5", prefix: 24, gateway: "10.9.0.1", tap: "mvt-0123456789" } });
  const plan = planVm(rec, host);
  assert.deepEqual(plan.network, { kind: "tap", ifname: "mvt-0123456789", mac: macFor(rec.id) });
  assert.deepEqual(plan.config?.network, { iface: "eth0", address: "10.9.0.5/24", gateway: "10.9.0.1", dns: ["192.0.2.53"] });
});

test("an image: its overlay is /dev/vda before the spec's disks, and init switch_roots into it", () => {
  const rec = record({ name: "deb", image: "debian", diskSize: "2G", disks: [`${rawDisk}:ro`] });
  const plan = planVm(rec, host);
  assert.deepEqual(plan.disks?.map((d) => [d.path, d.readOnly]), [["/h/vms/0123456789ab/root.qcow2", false], [rawDisk, true]]);
  assert.deepEqual(plan.config?.root, { device: "/dev/vda", resize: true });
});

test("a plan moved to another directory (a parked QEMU's) takes its own root overlay there, and its argv names no path of the first", () => {
  const rec = record({ name: "deb", image: "debian", disks: [`${rawDisk}:ro`] });
  const plan = planVm(rec, host);
  const moved = planIn(plan, "/h/vms/feedfacecafe", vmLabel("feedfacecafe"));
  assert.deepEqual(moved.disks?.map((d) => [d.path, d.readOnly]), [["/h/vms/feedfacecafe/root.qcow2", false], [rawDisk, true]]);
  assert.equal(moved.label, "mvm-feedfacecafe");
  const argv = flattenArgv(buildArgv(moved, { artifacts, dir: moved.dir, configFile: `${moved.dir}/config`, console: "socket" })).join(" ");
  assert.ok(!argv.includes(plan.dir), argv);
  assert.deepEqual(plan.disks?.[0]?.path, "/h/vms/0123456789ab/root.qcow2", "the first plan is unchanged");
  assert.equal(planIn(planVm(record({ name: "plain" }), host), "/h/vms/x", "mvm-x").disks?.length ?? 0, 0);
});

test("shared folders: 9p tags in spec order, the same on both sides", () => {
  const rec = record({ volumes: [`${shareA}:/mnt/a:ro`, `${shareB}:/mnt/b`] });
  const plan = planVm(rec, host);
  assert.deepEqual(plan.config?.mounts, [{ tag: "mvm0", path: "/mnt/a", readOnly: true }, { tag: "mvm1", path: "/mnt/b", readOnly: false }]);
  const argv = argvOf(rec);
  assert.ok(argv.includes(`local,id=fs1,path=${shareB.replace(",", ",,")},security_model=none`), "a comma in a host path is doubled, not an option");
  assert.ok(argv.includes("virtio-9p-device,fsdev=fs0,mount_tag=mvm0"));
});

test("a console-line readiness for a user's own initrd; append and the user's kernel reach argv", () => {
  const rec = record({ ready: { consoleLine: "login:" }, append: "loglevel=7" });
  assert.deepEqual(planVm(rec, host).readiness, { kind: "console", pattern: "login:" });
  const argv = argvOf(rec);
  assert.match(argv[argv.indexOf("-append") + 1]!, /tsc_early_khz=|console=ttyS0.* loglevel=7$/);
});
