// A stand-in for qemu-system-x86_64 in the process test tier (test/process/), run through the wrapper
// test/support/bin/qemu-system-x86_64, which keeps that name as argv[0] so mvm's orphan scan and pgrep see
// a QEMU. It reads the argv mvm builds (src/qemu/microvm-argv.ts) and does what QEMU does with it, in
// milliseconds and without a guest: connects to mvm's sockets as a client with reconnect (the agent, the
// QMP monitor and the console, each again after the host side closed and listens anew), speaks QMP, writes
// a few console lines (also to the console's logfile), and runs a fake guest agent (fake-guest.ts). It
// answers the probe (--version, -accel/-device/-netdev help, -help) as QEMU 7.2 would.
//
// Knobs (environment, or `fake_qemu.mode=MODE` on the kernel command line (-append) for one VM):
//   FAKE_QEMU_MODE          normal (default) | die-at-boot (prints FAKE_QEMU_STDERR, exits 1 at once) |
//                           hang (connects nothing, says nothing) | no-hello (QMP and console work, the agent
//                           never answers) | crash-after-ready (exits 1 FAKE_QEMU_CRASH_MS after the
//                           host has both the hello and QMP) | prompt-exit (normal, but on shutdown it exits
//                           right after the SHUTDOWN event, so its exit can reach the host before the event)
//   FAKE_QEMU_STDERR        what die-at-boot prints (default: a line naming the mode)
//   FAKE_QEMU_RECONNECT_MS  delay between connection attempts (default 1000, QEMU's reconnect=1)
//   FAKE_QEMU_BOOT_MS       from start to the agent's hello (default 5)
//   FAKE_QEMU_CRASH_MS      from then to the crash of crash-after-ready (default 100)
//   FAKE_QEMU_MAX_LIFE_MS   exits after this long whatever happens (default 120000): a test run that died
//                           cannot leave fakes behind for long
//   FAKE_QEMU_TRACE         set: what the fake does (connections, QMP commands), on its stderr
//
// Disk limits: block_set_io_throttle on a virtio-blk device of the argv (by its id) is kept, and
// query-block answers with it (qdev is the device's id here, a QOM path in QEMU). query-blockstats answers
// fixed counters per device (rd_bytes 1 MiB, wr_bytes 64 KiB, 16 reads, 4 writes, 2 flushes), or never
// answers with `fake_qemu.blockstats=hang` on the kernel command line (a QEMU whose monitor hangs).

import { appendFileSync, readFileSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { FakeGuest } from "./fake-guest.js";

const env = process.env;
const args = process.argv.slice(2);

/** Parses a QEMU option list ("socket,id=x,path=/a,,b"): a doubled comma is a comma in a value. */
function parseOptions(list: string): Record<string, string> {
  const parts: string[] = [];
  let cur = "";
  for (let i = 0; i < list.length; i++) {
    if (list[i] === "," && list[i + 1] === ",") {
      cur += ",";
      i++;
    } else if (list[i] === ",") {
      parts.push(cur);
      cur = "";
    } else cur += list[i];
  }
  parts.push(cur);
  const out: Record<string, string> = {};
  parts.forEach((p, i) => {
    const eq = p.indexOf("=");
    if (eq < 0) out[i === 0 ? "" : p] = i === 0 ? p : "on";
    else out[p.slice(0, eq)] = p.slice(eq + 1);
  });
  return out;
}

function option(name: string): string | undefined {
  const at = args.indexOf(name);
  return at >= 0 ? args[at + 1] : undefined;
}

function answerProbe(): boolean {
  const out = (s: string) => process.stdout.write(s);
  const joined = args.join(" ");
  if (joined === "--version" || joined === "-version" || joined === "-sandbox on -version") out("QEMU emulator version 7.2.0 (Debian 1:7.2+dfsg-7+deb12u6, fake)\nCopyright (c) 2003-2022 Fabrice Bellard and the QEMU Project developers\n");
  else if (joined === "-accel help") out("Accelerators supported in QEMU binary:\ntcg\nkvm\n");
  else if (joined === "-netdev help") out("Available netdev backend types:\nsocket\nstream\ndgram\nhubport\ntap\nuser\nvhost-user\n");
  else if (joined === "-device help") {
    const devices = ["virtio-serial-device", "virtserialport", "virtio-rng-device", "virtio-net-device", "virtio-blk-device", "virtio-9p-device", "virtconsole"];
    out(`Controller/Bridge/Hub devices:\n${devices.map((d) => `name "${d}", bus virtio-bus\n`).join("")}`);
  } else if (joined === "-help" || joined === "-h") out("QEMU emulator version 7.2.0\nusage: qemu-system-x86_64 [options] [disk_image]\n-sandbox on[,obsolete=allow|deny][,elevateprivileges=allow|deny|children]\n");
  else return false;
  return true;
}

const chardevs = new Map<string, Record<string, string>>();
args.forEach((a, i) => {
  if (a !== "-chardev") return;
  const o = parseOptions(args[i + 1] ?? "");
  if (o.id) chardevs.set(o.id, o);
});
const mode = /(?:^|\s)fake_qemu\.mode=(\S+)/.exec(option("-append") ?? "")?.[1] ?? env.FAKE_QEMU_MODE ?? "normal";
const ms = (name: string, fallback: number) => Number(env[name] ?? fallback);
const t0 = Date.now();
/** FAKE_QEMU_TRACE=1: what the fake does, on its stderr (qemu.log for a daemon's VM). */
const trace = (line: string) => env.FAKE_QEMU_TRACE && process.stderr.write(`fake-qemu +${Date.now() - t0} ms: ${line}\n`);
let exiting = false;

/** A chardev socket in client mode with reconnect: connects, and after a close connects again. */
function reconnecting(path: string | undefined, onConnect: (s: Socket) => void): void {
  if (!path) return;
  const attempt = () => {
    if (exiting) return;
    const s = connect(path);
    s.once("connect", () => {
      trace(`connected to ${path}`);
      onConnect(s);
    });
    s.on("error", (e: NodeJS.ErrnoException) => trace(`${path}: ${e.code}`));
    s.once("close", () => setTimeout(attempt, ms("FAKE_QEMU_RECONNECT_MS", 1000)).unref());
  };
  attempt();
}

// --- the console: QEMU logs every byte to the logfile, and sends it to mvm's socket when connected ----
const consoleDev = chardevs.get("console");
let consoleSocket: Socket | undefined;
function consoleWrite(text: string): void {
  if (consoleDev?.logfile) appendFileSync(consoleDev.logfile, text);
  if (consoleSocket && !consoleSocket.destroyed) consoleSocket.write(text);
  if (option("-serial") === "stdio") process.stdout.write(text);
}

// --- QMP -----------------------------------------------------------------------------------------------
let status: "running" | "paused" = "running";
let qmpSocket: Socket | undefined;
let negotiated = false;

function qmpSend(msg: unknown): void {
  if (qmpSocket && !qmpSocket.destroyed) qmpSocket.write(`${JSON.stringify(msg)}\n`);
}

function qmpEvent(event: string, data?: Record<string, unknown>): void {
  const now = Date.now();
  if (negotiated) qmpSend({ event, ...(data ? { data } : {}), timestamp: { seconds: Math.floor(now / 1000), microseconds: (now % 1000) * 1000 } });
}

/** QEMU going down: the SHUTDOWN event first (mvm tells a guest's power-off from a crash by it), then exit 0. */
function shutdown(guest: boolean, reason: string): void {
  if (exiting) return;
  exiting = true;
  process.stderr.write(`fake-qemu: shutting down (guest: ${guest}, reason: ${reason})\n`);
  qmpEvent("SHUTDOWN", { guest, reason });
  if (mode === "prompt-exit") setImmediate(() => process.exit(0));
  else setTimeout(() => process.exit(0), 10);
}

// --- block devices: each -device virtio-blk-device,id=... and its throttle (block_set_io_throttle) -----
const blockDevices = new Map<string, { bps: number; iops: number; group?: string }>();
args.forEach((a, i) => {
  if (a !== "-device" || !args[i + 1]?.startsWith("virtio-blk-device,")) return;
  const o = parseOptions(args[i + 1]!);
  if (o.id) blockDevices.set(o.id, { bps: 0, iops: 0 });
});

function throttle(a: Record<string, unknown>, fail: (cls: string, desc: string) => void): boolean {
  const dev = typeof a.id === "string" ? blockDevices.get(a.id) : undefined;
  if (!dev) {
    fail("GenericError", `Cannot find device "${String(a.id)}" nor node_name "${String(a.id)}"`);
    return false;
  }
  const n = (k: string) => {
    const v = a[k];
    return typeof v === "number" ? v : NaN;
  };
  if (["bps", "bps_rd", "bps_wr", "iops", "iops_rd", "iops_wr"].some((k) => !(n(k) >= 0))) {
    fail("GenericError", "Parameter 'bps' is missing or invalid");
    return false;
  }
  const on = n("bps") > 0 || n("iops") > 0;
  Object.assign(dev, { bps: n("bps"), iops: n("iops"), group: on ? (a.group as string | undefined) : undefined });
  return true;
}

function qmpCommand(msg: { execute?: string; id?: unknown; arguments?: Record<string, unknown> }): void {
  trace(`QMP ${String(msg.execute)}`);
  const reply = (r: unknown) => qmpSend({ return: r, ...(msg.id !== undefined ? { id: msg.id } : {}) });
  const fail = (cls: string, desc: string) => qmpSend({ error: { class: cls, desc }, ...(msg.id !== undefined ? { id: msg.id } : {}) });
  if (!negotiated && msg.execute !== "qmp_capabilities") return fail("CommandNotFound", "Expecting capabilities negotiation with 'qmp_capabilities'");
  switch (msg.execute) {
    case "qmp_capabilities":
      negotiated = true;
      reply({});
      return armCrash();
    case "query-status":
      return reply({ status, singlestep: false, running: status === "running" });
    case "stop":
      reply({});
      if (status === "running") qmpEvent("STOP");
      status = "paused";
      return;
    case "cont":
      reply({});
      if (status === "paused") qmpEvent("RESUME");
      status = "running";
      return;
    case "quit":
      reply({});
      return shutdown(false, "host-qmp-quit");
    case "block_set_io_throttle":
      if (throttle(msg.arguments ?? {}, fail)) reply({});
      return;
    case "query-blockstats":
      if (/(?:^|\s)fake_qemu\.blockstats=hang(?:\s|$)/.test(option("-append") ?? "")) return;
      return reply([...blockDevices.keys()].map((qdev) => ({ device: "", qdev: `/machine/peripheral/${qdev}/virtio-backend`, "node-name": `node-${qdev}`, stats: { rd_bytes: 1048576, wr_bytes: 65536, rd_operations: 16, wr_operations: 4, flush_operations: 2 } })));
    case "query-block":
      return reply([...blockDevices].map(([qdev, t]) => ({ device: "", qdev, inserted: { bps: t.bps, iops: t.iops, ...(t.group ? { group: t.group } : {}) } })));
    case "system_powerdown":
      reply({});
      qmpEvent("POWERDOWN");
      setTimeout(() => shutdown(true, "guest-shutdown"), 5);
      return;
    default:
      return fail("CommandNotFound", `The command ${String(msg.execute)} has not been found`);
  }
}

function serveQmp(s: Socket): void {
  qmpSocket = s;
  negotiated = false;
  qmpSend({ QMP: { version: { qemu: { major: 7, minor: 2, micro: 0 }, package: "Debian 1:7.2+dfsg-7+deb12u6 (fake)" }, capabilities: ["oob"] } });
  let buf = "";
  s.setEncoding("utf8");
  s.on("data", (chunk: string) => {
    buf += chunk;
    let nl: number;
    while ((nl = buf.indexOf("\n")) >= 0) {
      const line = buf.slice(0, nl).trim();
      buf = buf.slice(nl + 1);
      if (!line) continue;
      try {
        qmpCommand(JSON.parse(line) as { execute?: string; id?: unknown; arguments?: Record<string, unknown> });
      } catch {
        qmpSend({ error: { class: "GenericError", desc: "JSON parse error" } });
      }
    }
  });
}

/** crash-after-ready: QEMU dies once the host has both the hello and QMP (the VM counts as running). */
let helloSent = false;
let crashArmed = false;
function armCrash(): void {
  if (mode !== "crash-after-ready" || !helloSent || !negotiated || crashArmed) return;
  crashArmed = true;
  setTimeout(() => {
    process.stderr.write("qemu-system-x86_64: fake: crashing (FAKE_QEMU_MODE=crash-after-ready)\n");
    process.exit(1);
  }, ms("FAKE_QEMU_CRASH_MS", 100));
}

// --- the guest -----------------------------------------------------------------------------------------
function hostnameFromConfig(): string {
  const fwCfg = parseOptions(option("-fw_cfg") ?? "");
  try {
    return /^hostname=(.*)$/m.exec(readFileSync(fwCfg.file ?? "", "utf8"))?.[1] ?? "mvm";
  } catch {
    return "mvm";
  }
}

function main(): void {
  if (answerProbe()) return;
  setTimeout(() => process.exit(3), ms("FAKE_QEMU_MAX_LIFE_MS", 120000)).unref();
  // Like QEMU: SIGTERM and SIGINT end it cleanly, with the SHUTDOWN event.
  for (const sig of ["SIGTERM", "SIGINT"] as const) {
    process.on(sig, () => {
      process.stderr.write(`qemu-system-x86_64: terminating on signal ${sig === "SIGTERM" ? 15 : 2}\n`);
      shutdown(false, "host-signal");
    });
  }
  // Nothing but a signal (or quit) ends QEMU: keep the loop alive whatever is connected.
  setInterval(() => undefined, 1 << 30);
  if (mode === "die-at-boot") {
    process.stderr.write(`${env.FAKE_QEMU_STDERR ?? "qemu-system-x86_64: fake: dying at boot (FAKE_QEMU_MODE=die-at-boot)"}\n`);
    process.exit(1);
  }
  if (mode === "hang") return;

  let booted = false;
  let pendingAgent: Socket | undefined;
  const guest = new FakeGuest({
    hostname: hostnameFromConfig(),
    silent: mode === "no-hello",
    bootedAt: t0,
    powerOff: () => setTimeout(() => shutdown(true, "guest-shutdown"), 2),
  });
  reconnecting(chardevs.get("qmp")?.path, serveQmp);
  reconnecting(consoleDev?.path, (s) => {
    consoleSocket = s;
    // The console echoes what is typed, as a shell on a tty would.
    s.on("data", (b: Buffer) => consoleWrite(b.toString("latin1")));
  });
  reconnecting(chardevs.get("agent")?.path, (s) => {
    if (booted) {
      guest.attach(s);
      helloSent = true;
      armCrash();
    } else pendingAgent = s; // the guest has not opened its port yet: what the host sends waits
  });
  consoleWrite("[    0.000000] Linux version 6.1.0-fake (fake-qemu)\r\n");
  setTimeout(() => {
    consoleWrite("[    0.210000] Run /init as init process\r\nmvm-init: started\r\n");
    booted = true;
    if (pendingAgent && !pendingAgent.destroyed) {
      guest.attach(pendingAgent);
      helloSent = true;
      armCrash();
    }
  }, ms("FAKE_QEMU_BOOT_MS", 5));
}

main();
