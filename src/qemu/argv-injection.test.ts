// The argv builder (src/plan/argv.ts → src/qemu/microvm-argv.ts) is injection-proof: whatever the strings of
// a plan hold (commas, '=', spaces, newlines, option-looking words such as "-device", odd Unicode), the
// argv has exactly the options the plan's structure asks for, and every value QEMU parses comes back as
// the string that was put in, or the build refuses the plan (QemuOptionValueError) for a string that
// cannot reach QEMU intact (control characters; '=' or ',' in -name's implied value).
//
// The oracle is a twin plan of the same structure whose strings are plain tokens (tok0x, tok1x...): the
// real argv must be the twin's with each token replaced by its string, compared as QEMU reads each value:
// option lists split by QEMU's rules (",," a literal comma), -blockdev as JSON, the rest whole.

import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { QemuOptionValueError } from "../errors.js";
import type { GuestArtifacts } from "../guest/artifacts.js";
import { buildArgv, type ArgvContext } from "../plan/argv.js";
import type { MachinePlan } from "../plan/machine.js";
import { flattenArgv } from "./microvm-argv.js";

const SEED = Number(process.env.MVM_FUZZ_SEED ?? 20251202);

/** How many values each option QEMU is given here takes (its argv's next element, whatever it looks like). */
const ARITY: Record<string, 0 | 1> = {
  "-name": 1, "-nodefaults": 0, "-no-user-config": 0, "-display": 1, "-M": 1, "-accel": 1, "-cpu": 1, "-m": 1, "-object": 1, "-smp": 1, "-no-reboot": 0,
  "-serial": 1, "-chardev": 1, "-kernel": 1, "-initrd": 1, "-append": 1, "-device": 1, "-mon": 1, "-blockdev": 1, "-fsdev": 1, "-netdev": 1,
  "-incoming": 1, "-fw_cfg": 1, "-sandbox": 1, "-drive": 1,
};

/** Options whose value QEMU parses as a key=value list (QemuOpts), with the name of their implied first key. */
const OPTION_LISTS: Record<string, string | undefined> = {
  "-name": "guest", "-M": "type", "-accel": "accel", "-object": "qom-type", "-chardev": "backend", "-device": "driver", "-mon": undefined,
  "-fsdev": "fsdriver", "-netdev": "type", "-fw_cfg": undefined, "-sandbox": "enable",
};

/** The argv as QEMU walks it: an option, then its value if it takes one. An unknown option fails. */
function options(argv: string[]): Array<{ flag: string; value?: string }> {
  const out: Array<{ flag: string; value?: string }> = [];
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i]!;
    const arity = ARITY[flag];
    assert.ok(arity !== undefined, `argv element ${i} (${JSON.stringify(flag)}) stands where an option must, and is not one mvm uses: ${JSON.stringify(argv)}`);
    if (arity === 0) out.push({ flag });
    else {
      assert.ok(i + 1 < argv.length, `${flag} has no value`);
      out.push({ flag, value: argv[++i]! });
    }
  }
  return out;
}

/**
 * A QemuOpts list as util/qemu-option.c reads it (get_opt_name_value): NAME=VALUE elements split at single
 * commas, ",," a comma inside a value; a first element without '=' (before any ',') is the implied option's
 * value; any other element without '=' is a flag (NAME=on).
 */
export function parseQemuOpts(list: string, implied?: string): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  const value = (from: number): [string, number] => {
    let v = "";
    let p = from;
    while (p < list.length) {
      if (list[p] === ",") {
        if (list[p + 1] !== ",") break;
        p++;
      }
      v += list[p++];
    }
    return [v, p];
  };
  let p = 0;
  while (p < list.length) {
    let len = 0;
    while (p + len < list.length && list[p + len] !== "=" && list[p + len] !== ",") len++;
    let name: string;
    let v: string;
    if (list[p + len] !== "=") {
      if (out.length === 0 && implied) {
        name = implied;
        [v, p] = value(p);
      } else {
        name = list.slice(p, p + len);
        v = "on";
        p += len;
      }
    } else {
      name = list.slice(p, p + len);
      [v, p] = value(p + len + 1);
    }
    out.push([name, v]);
    if (list[p] === ",") p++;
  }
  return out;
}

test("the QemuOpts reader agrees with QEMU on its own examples", () => {
  assert.deepEqual(parseQemuOpts("socket,id=agent,path=/a,,b,reconnect=1", "backend"), [["backend", "socket"], ["id", "agent"], ["path", "/a,b"], ["reconnect", "1"]]);
  assert.deepEqual(parseQemuOpts("local,id=fs0,path=/s,,readonly=off,readonly=on", "fsdriver"), [["fsdriver", "local"], ["id", "fs0"], ["path", "/s,readonly=off"], ["readonly", "on"]]);
  assert.deepEqual(parseQemuOpts("a=b", "guest"), [["a", "b"]], "an '=' in the implied value names another option");
  assert.deepEqual(parseQemuOpts("x,,y,k=v", "guest"), [["guest", "x,y"], ["k", "v"]]);
  assert.deepEqual(parseQemuOpts("name=opt/mvm/config,file=/c,,x=1"), [["name", "opt/mvm/config"], ["file", "/c,x=1"]]);
});

const artifacts: GuestArtifacts = {
  kernel: { dir: "/k", vmlinux: "/k/vmlinux", bzImage: "/k/bzImage", info: { release: "6.1.0", sourceVersion: "6.1", hz: 1000, key: "k", buildSeconds: 0, patches: ["0001-apic-timer", "0002-init-poison"] } },
  initramfs: { dir: "/i", path: "/i/initramfs.cpio", info: { busyboxVersion: "1", key: "i", bytes: 1, agentBytes: 1, initBytes: 1 } },
};

/** Strings as hostile as a path, a name or a label can be; never empty (an empty one means "none" to the builder). */
const str = fc.oneof(
  { weight: 12, arbitrary: fc.string({ unit: fc.constantFrom("a", "/", ",", "=", " ", ".", "-", ":", "é", "💥", "\"", "{", "}", "\\", "$"), minLength: 1, maxLength: 24 }) },
  { weight: 1, arbitrary: fc.string({ unit: fc.constantFrom("a", ",", "=", "\n", "\t", "\0", "\x7f"), minLength: 1, maxLength: 8 }) },
  { weight: 2, arbitrary: fc.constantFrom("-device", "-drive", "-device virtio-net-device,netdev=x", ",id=evil", "x,,y", ",", "=", "a=b", "path=/etc/shadow", "file.driver=ssh", "-sandbox off", "\"},{\"driver\":\"ssh", "/run/vm,id=evil", "on,readonly=off", "52:54:00:00:00:01,netdev=hub") },
  { weight: 1, arbitrary: fc.string({ unit: "binary", minLength: 1, maxLength: 12 }) },
);

const onOffAuto = fc.constantFrom<"on" | "off" | "auto">("on", "off", "auto");

interface Inputs {
  plan: MachinePlan;
  ctx: ArgvContext;
}

/** A plan and its context from a shape: every string comes from `s` (the real strings, or the twin's tokens). */
function inputsArb() {
  const shape = fc.record({
    label: fc.option(str),
    accel: fc.constantFrom<"kvm" | "tcg">("kvm", "tcg"),
    acpi: fc.option(fc.boolean()),
    machine: fc.record({ acpi: onOffAuto, pit: onOffAuto, pic: onOffAuto, rtc: onOffAuto }, { requiredKeys: [] }),
    cpus: fc.integer({ min: 1, max: 64 }),
    memoryMiB: fc.integer({ min: 64, max: 4096 }),
    kernel: fc.option(str),
    initrd: fc.option(str),
    text: fc.option(fc.tuple(fc.constantFrom<"cmdline" | "append">("cmdline", "append"), str)),
    disks: fc.array(fc.record({ path: str, readOnly: fc.boolean(), format: fc.constantFrom<"raw" | "qcow2">("raw", "qcow2") }), { maxLength: 4 }),
    volumes: fc.array(fc.record({ hostPath: str, readOnly: fc.boolean() }), { maxLength: 4 }),
    network: fc.option(
      fc.oneof(
        fc.record({ kind: fc.constant("user" as const), restrict: fc.boolean(), mac: str, ports: fc.array(fc.record({ hostIp: str, hostPort: fc.integer({ min: 1, max: 65535 }), guestPort: fc.integer({ min: 1, max: 65535 }), proto: fc.constantFrom<"tcp" | "udp">("tcp", "udp") }), { maxLength: 3 }) }),
        fc.record({ kind: fc.constant("tap" as const), ifname: str, mac: str }),
      ),
    ),
    ram: fc.option(fc.oneof(fc.constant({ kind: "memfd" as const }), fc.constant({ kind: "anonymous" as const }), fc.record({ kind: fc.constant("file" as const), path: str, share: fc.boolean() }))),
    incoming: fc.boolean(),
    seccomp: fc.boolean(),
    dir: str,
    configFile: fc.option(str),
    console: fc.constantFrom<"stdio" | "socket">("stdio", "socket"),
    tsc: fc.option(fc.record({ khz: fc.integer({ min: 1_000_000, max: 5_000_000 }), source: fc.constant("cpuinfo") })),
  });
  return shape.map((s): Inputs => ({
    plan: {
      label: s.label ?? undefined,
      accel: s.accel,
      acpi: s.acpi ?? undefined,
      machine: s.machine,
      cpus: s.cpus,
      memoryMiB: s.memoryMiB,
      kernel: s.kernel ?? undefined,
      initrd: s.initrd ?? undefined,
      ...(s.text ? { [s.text[0]]: s.text[1] } : {}),
      disks: s.disks,
      volumes: s.volumes,
      network: s.network ?? undefined,
      ram: s.ram ?? undefined,
      incoming: s.incoming,
      seccomp: s.seccomp,
    },
    ctx: { artifacts, dir: s.dir, configFile: s.configFile ?? undefined, console: s.console, tsc: s.tsc ?? undefined },
  }));
}

/** The same inputs with every string that came from the generator replaced by a token, and the tokens' strings. */
function twinOf(inputs: Inputs): { twin: Inputs; strings: string[] } {
  const strings: string[] = [];
  const keep = new Set(["accel", "format", "kind", "proto", "console", "source", "acpi", "pit", "pic", "rtc"]);
  const walk = (v: unknown, key?: string): unknown => {
    if (typeof v === "string") {
      if (key && keep.has(key)) return v;
      // The VM's directory is joined with file names (join() would tidy a token's "//" or "/./" away):
      // it stays as it is, or, when the real build must refuse it, is one that builds.
      if (key === "dir") return CONTROL.test(v) ? "/safe" : v;
      strings.push(v);
      return `tok${strings.length - 1}x`;
    }
    if (Array.isArray(v)) return v.map((x) => walk(x));
    if (v && typeof v === "object") {
      if (v === artifacts) return v;
      return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, walk(x, k)]));
    }
    return v;
  };
  return { twin: walk(inputs) as Inputs, strings };
}

const untoken = (s: string, strings: string[]) => s.replace(/tok(\d+)x/g, (_, i: string) => strings[Number(i)]!);
const untokenDeep = (v: unknown, strings: string[]): unknown =>
  typeof v === "string" ? untoken(v, strings) : Array.isArray(v) ? v.map((x) => untokenDeep(x, strings)) : v && typeof v === "object" ? Object.fromEntries(Object.entries(v).map(([k, x]) => [k, untokenDeep(x, strings)])) : v;

// eslint-disable-next-line no-control-regex -- matching control characters is the point
const CONTROL = /[\x00-\x1f\x7f]/;

/** Whether the builder must refuse the plan: a string bound for an option list with a character QEMU cannot take there. */
function mustRefuse({ plan, ctx }: Inputs): boolean {
  const escaped = [ctx.dir, ctx.configFile, ...(plan.volumes ?? []).map((v) => v.hostPath), plan.ram?.kind === "file" ? plan.ram.path : undefined];
  const n = plan.network;
  if (n) escaped.push(n.mac, ...(n.kind === "tap" ? [n.ifname] : n.ports.map((p) => p.hostIp)));
  if (plan.label !== undefined && (CONTROL.test(plan.label) || /[=,]/.test(plan.label))) return true;
  return escaped.some((s) => s !== undefined && CONTROL.test(s));
}

test("property: no string in a plan adds, removes or changes a QEMU option; every value QEMU parses round-trips", (t) => {
  let built = 0;
  let refused = 0;
  fc.assert(
    fc.property(inputsArb(), (inputs) => {
      const { twin, strings } = twinOf(inputs);
      const expected = options(flattenArgv(buildArgv(twin.plan, twin.ctx)));
      let argv: string[];
      try {
        argv = flattenArgv(buildArgv(inputs.plan, inputs.ctx));
      } catch (e) {
        assert.ok(e instanceof QemuOptionValueError, `not a refusal: ${String(e)}`);
        assert.ok(mustRefuse(inputs), `refused a plan QEMU could take: ${e.message}`);
        refused++;
        return;
      }
      assert.ok(!mustRefuse(inputs), "took a plan with a string QEMU cannot take intact");
      built++;
      const got = options(argv);
      // The same options in the same order as the twin's: the strings' contents decide none of them.
      assert.deepEqual(got.map((o) => o.flag), expected.map((o) => o.flag));
      const count = (f: string) => got.filter((o) => o.flag === f).length;
      const { plan, ctx } = inputs;
      const disks = plan.disks?.length ?? 0;
      const volumes = plan.volumes?.length ?? 0;
      assert.equal(count("-device"), 3 + disks + volumes + (plan.network ? 1 : 0));
      assert.equal(count("-chardev"), 2 + (ctx.console === "socket" ? 1 : 0));
      assert.equal(count("-blockdev"), disks);
      assert.equal(count("-fsdev"), volumes);
      assert.equal(count("-netdev"), plan.network ? 1 : 0);
      assert.equal(count("-object"), 1);
      assert.equal(count("-drive"), 0);
      assert.equal(count("-sandbox"), plan.seccomp ? 1 : 0);
      // Every value reads back, as QEMU reads it, as the twin's with its tokens replaced by the strings.
      got.forEach((o, i) => {
        const want = expected[i]!.value;
        if (want === undefined) return assert.equal(o.value, undefined);
        const value = o.value!;
        if (o.flag === "-blockdev") return assert.deepEqual(JSON.parse(value), untokenDeep(JSON.parse(want), strings));
        if (o.flag in OPTION_LISTS) {
          const implied = OPTION_LISTS[o.flag];
          return assert.deepEqual(parseQemuOpts(value, implied), parseQemuOpts(want, implied).map(([k, v]) => [k, untoken(v, strings)]), `${o.flag} ${JSON.stringify(value)}`);
        }
        assert.equal(value, untoken(want, strings), o.flag);
      });
    }),
    { seed: SEED, numRuns: 2000 },
  );
  t.diagnostic(`2000 plans: ${built} built, ${refused} refused (seed ${SEED})`);
  assert.ok(built > 200 && refused > 50, `built ${built}, refused ${refused}: both kinds of plan were tried`);
});

test("examples: option-looking paths and labels stay values", () => {
  const plan: MachinePlan = {
    label: "mvm-0123456789ab",
    accel: "tcg",
    kernel: "-device virtio-net-device,netdev=x",
    disks: [{ path: "/imgs/a,file.driver=ssh\",\"x\":\"", readOnly: true, format: "raw" }],
    volumes: [{ hostPath: "/share,readonly=off,id=fs9", readOnly: true }],
    network: { kind: "tap", ifname: "tap0,script=/bin/evil", mac: "52:54:00:00:00:01,netdev=x" },
  };
  const argv = flattenArgv(buildArgv(plan, { artifacts, dir: "/run/vm,id=evil", configFile: "/c,x=1", console: "socket" }));
  const o = options(argv);
  assert.equal(o.find((x) => x.flag === "-kernel")?.value, "-device virtio-net-device,netdev=x");
  const fsdev = parseQemuOpts(o.find((x) => x.flag === "-fsdev")!.value!, "fsdriver");
  assert.deepEqual(fsdev, [["fsdriver", "local"], ["id", "fs0"], ["path", "/share,readonly=off,id=fs9"], ["security_model", "none"], ["readonly", "on"]]);
  const tap = parseQemuOpts(o.find((x) => x.flag === "-netdev")!.value!, "type");
  assert.deepEqual(tap.find(([k]) => k === "script"), ["script", "no"]);
  assert.equal(tap.find(([k]) => k === "ifname")?.[1], "tap0,script=/bin/evil");
  assert.throws(() => buildArgv({ ...plan, label: "mvm,process=evil" }, { artifacts, dir: "/run/vm", console: "stdio" }), QemuOptionValueError);
  assert.throws(() => buildArgv({ ...plan, label: "process=evil" }, { artifacts, dir: "/run/vm", console: "stdio" }), QemuOptionValueError);
  assert.throws(() => buildArgv({ ...plan, volumes: [{ hostPath: "/a\nb", readOnly: false }] }, { artifacts, dir: "/run/vm", console: "stdio" }), QemuOptionValueError);
});
