import assert from "node:assert/strict";
import { test } from "node:test";
import { flattenArgv, microvmArgv, type MicrovmSpec } from "./microvm-argv.js";

const spec: MicrovmSpec = {
  accel: "tcg",
  cpus: 2,
  memoryMiB: 512,
  kernel: "/k/vmlinux",
  initrd: "/k/initrd",
  cmdline: "console=ttyS0",
  agentSocket: "/run/vm,id=evil/agent.sock",
  configFile: "/run/vm/config,x=1",
  console: { kind: "stdio" },
};

test("every argv entry carries a reason", () => {
  for (const e of microvmArgv(spec)) assert.ok(e.reason.length > 10, e.args.join(" "));
});

test("the argv boots microvm with the kernel, agent channel and config", () => {
  const argv = flattenArgv(microvmArgv(spec));
  const after = (flag: string) => argv[argv.indexOf(flag) + 1];
  assert.equal(after("-accel"), "tcg");
  assert.equal(after("-m"), "512M");
  assert.equal(after("-smp"), "2");
  assert.equal(after("-kernel"), "/k/vmlinux");
  assert.ok(argv.includes("-no-reboot") && argv.includes("-nodefaults"));
  assert.equal(after("-cpu"), "qemu64,+arat");
  assert.equal(after("-M"), "microvm,memory-backend=ram0");
  assert.equal(after("-object"), "memory-backend-memfd,id=ram0,size=512M");
  // Paths with commas cannot inject options.
  assert.equal(after("-chardev"), "socket,id=agent,path=/run/vm,,id=evil/agent.sock,reconnect=1");
  assert.equal(after("-fw_cfg"), "name=opt/mvm/config,file=/run/vm/config,,x=1");
});

test("KVM gets the host CPU; acpi=false reaches the machine", () => {
  const argv = flattenArgv(microvmArgv({ ...spec, accel: "kvm", acpi: false }));
  assert.equal(argv[argv.indexOf("-cpu") + 1], "host");
  assert.equal(argv[argv.indexOf("-M") + 1], "microvm,acpi=off,memory-backend=ram0");
});

test("a console file path goes as it is: QEMU takes what follows file: whole, commas included", () => {
  const argv = flattenArgv(microvmArgv({ ...spec, console: { kind: "file", path: "/v/a,b.log" } }));
  assert.equal(argv[argv.indexOf("-serial") + 1], "file:/v/a,b.log");
});

test("machine options come from the allowlist only, typed", () => {
  const argv = flattenArgv(microvmArgv({ ...spec, machine: { pit: "off", rtc: "on" } }));
  assert.equal(argv[argv.indexOf("-M") + 1], "microvm,pit=off,rtc=on,memory-backend=ram0");
  const smuggled = { ...spec, machine: { pit: "off,x-option-roms=on" } } as unknown as MicrovmSpec;
  assert.throws(() => microvmArgv(smuggled), RangeError);
});

test("a guest that needs no PIT gets none and no PIC, unless the spec's machine options say otherwise", () => {
  const off = flattenArgv(microvmArgv({ ...spec, noLegacyTimers: true }));
  assert.equal(off[off.indexOf("-M") + 1], "microvm,pit=off,pic=off,memory-backend=ram0");
  const asked = flattenArgv(microvmArgv({ ...spec, noLegacyTimers: true, machine: { pit: "on" } }));
  assert.equal(asked[asked.indexOf("-M") + 1], "microvm,pit=on,pic=off,memory-backend=ram0");
});

test("a user network: restrict, published ports as hostfwd, a NIC with the VM's MAC", () => {
  const argv = flattenArgv(
    microvmArgv({ ...spec, network: { kind: "user", restrict: true, mac: "52:54:00:ab:cd:ef", ports: [{ hostIp: "127.0.0.1", hostPort: 8080, guestPort: 80, proto: "tcp" }, { hostIp: "0.0.0.0", hostPort: 53, guestPort: 53, proto: "udp" }] } }),
  );
  assert.equal(argv[argv.indexOf("-netdev") + 1], "user,id=net0,restrict=on,hostfwd=tcp:127.0.0.1:8080-:80,hostfwd=udp:0.0.0.0:53-:53");
  assert.ok(argv.includes("virtio-net-device,netdev=net0,mac=52:54:00:ab:cd:ef"));
  assert.ok(!flattenArgv(microvmArgv(spec)).includes("-netdev"), "no network unless asked");
});

test("disks go through -blockdev JSON and shared folders are escaped, so paths inject nothing", () => {
  const argv = flattenArgv(
    microvmArgv({
      ...spec,
      disks: [{ path: "/imgs/a,file.driver=ssh.raw", readOnly: true, format: "raw" }],
      volumes: [{ hostPath: "/share,readonly=off", readOnly: true }],
    }),
  );
  const blockdev = JSON.parse(argv[argv.indexOf("-blockdev") + 1]!) as { file: { filename: string }; "read-only": boolean };
  assert.equal(blockdev.file.filename, "/imgs/a,file.driver=ssh.raw");
  assert.equal(blockdev["read-only"], true);
  assert.ok(argv.includes("virtio-blk-device,id=vd0,drive=disk0"), "a stable id QMP can name (disk limits)");
  assert.equal(argv[argv.indexOf("-fsdev") + 1], "local,id=fs0,path=/share,,readonly=off,security_model=none,readonly=on");
  assert.ok(argv.includes("virtio-9p-device,fsdev=fs0,mount_tag=mvm0"));
});

test("a bridged network gets a tap and no scripts", () => {
  const argv = flattenArgv(microvmArgv({ ...spec, network: { kind: "tap", ifname: "mvt-0123456789", mac: "52:54:00:01:23:45" } }));
  assert.equal(argv[argv.indexOf("-netdev") + 1], "tap,id=net0,ifname=mvt-0123456789,script=no,downscript=no");
});
