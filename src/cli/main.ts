#!/usr/bin/env node
// The mvm command line: a thin client of the daemon (started on demand), plus benchmarks.

import { Command } from "commander";
import { benchBoot } from "../bench/boot.js";
import { benchBootStress } from "../bench/boot-stress.js";
import { benchJail } from "../bench/jail.js";
import { benchApi } from "../bench/api.js";
import { benchE2b } from "../bench/e2b.js";
import { renderPhaseChart } from "../bench/chart.js";
import { benchGuest } from "../bench/guest.js";
import { ensureGuestArtifacts, type GuestArtifacts } from "../guest/artifacts.js";
import { consoleCommand } from "./commands/console.js";
import { doctorCommand } from "./commands/doctor.js";
import { networkCreateCommand, networkLsCommand, networkRmCommand } from "./commands/network.js";
import { imageBuildCommand, imageImportCommand, imageLsCommand, imageRmCommand } from "./commands/image.js";
import { volumeCreateCommand, volumeLsCommand, volumeRmCommand } from "./commands/volume.js";
import { execCommand, type ExecFlags } from "./commands/exec.js";
import { cpCommand } from "./commands/cp.js";
import { eventsCommand, type EventsFlags } from "./commands/events.js";
import { statsCommand } from "./commands/stats.js";
import { benchExec } from "../bench/exec.js";
import { benchDensity, benchStart } from "../bench/start.js";
import { sessionAttachCommand, sessionKillCommand, sessionLsCommand, sessionRmCommand, sessionStdinCommand, sessionWaitCommand } from "./commands/session.js";
import { inspectCommand, logsCommand, psCommand } from "./commands/inspect.js";
import { limitsCommand, type LimitsFlags } from "./commands/limits.js";
import { lifecycleCommand, pruneCommand, removeCommand, waitCommand } from "./commands/lifecycle.js";
import { createCommand, runCommand, type RunFlags } from "./commands/run.js";
import { snapshotCreateCommand, snapshotInspectCommand, snapshotLsCommand, snapshotRmCommand } from "./commands/snapshot.js";
import { EXIT_MVM_FAILED, printError, printJson, progress } from "./output.js";
import { addVmFlags, type VmFlags } from "./vm-flags.js";
import { ttlCommand } from "./commands/ttl.js";
import { portForwardCommand, watchCommand } from "./commands/port-forward.js";
import { VERSION } from "../version.js";
import { InvalidArgumentError } from "../errors.js";
import { existsSync } from "node:fs";
import { readFile, writeFile } from "node:fs/promises";
import { basename, resolve } from "node:path";
import { registerTokenCommands } from "./commands/token.js";
import { registerConfigCommands } from "./commands/config.js";
import { registerDashboardCommand } from "./commands/dashboard.js";

const collect = (value: string, list: string[]) => [...list, value];
const wantsJson = () => process.argv.includes("--json");
const done = (p: Promise<number>) => p.then((code) => void (process.exitCode = code));

const program = new Command()
  .name("mvm")
  .description("Fast, strongly isolated Linux microVMs on QEMU's microvm machine")
  .version(VERSION, "-V, --version", "print mvm's version")
  .showHelpAfterError()
  .exitOverride((e) => process.exit(e.exitCode === 0 ? 0 : EXIT_MVM_FAILED));

addVmFlags(
  program
    .command("run")
    .description("create and start a VM; without -d, follow its command and exit with its status")
    .argument("[command...]", "the command and its arguments (put -- before it)")
    .option("--rm", "remove the VM when its command ends")
    .option("-d, --detach", "start it and print its name; the VM keeps running")
    .option("-i, --interactive", "pass stdin to the command")
    .option("-t, --tty", "give the command a terminal (with -i: an interactive shell, e.g. mvm run -it -- sh)"),
).action((command: string[], flags: RunFlags) => done(runCommand(command, flags)));

addVmFlags(program.command("create").description("create a VM without starting it").argument("[command...]", "its command")).action(
  (command: string[], flags: VmFlags) => done(createCommand(command, flags)),
);

for (const [op, what] of [
  ["start", "boot VMs (a VM with a command runs it again)"],
  ["stop", "power VMs off: guest power-off, then QMP quit, SIGTERM, SIGKILL"],
  ["kill", "end VMs at once (SIGKILL to QEMU)"],
  ["pause", "freeze VMs' vCPUs"],
  ["resume", "unfreeze paused VMs; bring suspended ones back from their saved state"],
  ["suspend", "save VMs' whole state to disk and end their QEMU (resume brings them back, also after a reboot)"],
] as const) {
  program
    .command(op)
    .description(what)
    .argument("<vm...>")
    .option("--json", "print JSON on stdout")
    .action((refs: string[], flags: { json?: boolean }) => done(lifecycleCommand(op, refs, flags)));
}

program
  .command("rm")
  .description("remove VMs (stopped or crashed; -f removes running ones too)")
  .argument("<vm...>")
  .option("-f, --force", "kill running VMs first")
  .option("--json", "print JSON on stdout")
  .action((refs: string[], flags: { force?: boolean; json?: boolean }) => done(removeCommand(refs, flags)));

program.command("prune").description("remove every stopped or crashed VM").option("--json", "print JSON on stdout").action((flags: { json?: boolean }) => done(pruneCommand(flags)));

program
  .command("ps")
  .description("list running, paused and suspended VMs: state, how each started and how fast it was ready")
  .option("-a, --all", "all VMs, created, stopped and crashed ones too")
  .option("--json", "print JSON on stdout")
  .action((flags: { all?: boolean; json?: boolean }) => done(psCommand(flags)));

program.command("inspect").description("everything mvm knows and decided about VMs, as JSON").argument("<vm...>").option("--json", "(always JSON)").action((refs: string[]) => done(inspectCommand(refs)));

program
  .command("limits")
  .description("show a VM's disk, network, CPU and memory limits, or change them (live on a running VM, kept for its next starts)")
  .argument("<vm>")
  .option("--disk-bps <rate>", "disk bandwidth shared by its disks, bytes per second: 5M, 512K; none removes it")
  .option("--disk-iops <n>", "disk I/O operations per second shared by its disks; none removes it")
  .option("--net-bps <rate>", "network bandwidth each way (bridged networks); none removes it")
  .option("--cpu-share <n>", "relative CPU weight, 1 to 10000 (default 100); none removes it")
  .option("--cpu-max <cores>", "a cap on CPU time in cores, 0.01 to vCPUs + 1; none puts the default (vCPUs + 1) back")
  .option("--memory-max <size>", "a cap on QEMU's whole memory, guest RAM included: 768M, 2G; none puts the default back")
  .option("--json", "print JSON on stdout")
  .action((ref: string, flags: LimitsFlags) => done(limitsCommand(ref, flags)));

program
  .command("ttl")
  .description("show a VM's time to live, or set a new one from now (the daemon kills and removes it at its end)")
  .argument("<vm>")
  .argument("[duration]", "90s, 10m, 1h30m, 2d or seconds; none: it stays until removed")
  .option("--json", "print JSON on stdout")
  .action((ref: string, ttl: string | undefined, flags: { json?: boolean }) => done(ttlCommand(ref, ttl, flags)));

program
  .command("port-forward")
  .description("forward a local port to a port inside a VM (no guest network needed), in the foreground until Ctrl-C")
  .argument("<vm>")
  .argument("<ports>", "[HOSTPORT:]GUESTPORT: 8000, 8080:8000, or 0:8000 for any free local port")
  .option("--address <ip>", "the local address to listen on", "127.0.0.1")
  .option("--json", "print the bound address as JSON")
  .action((ref: string, spec: string, flags: { address?: string; json?: boolean }) => done(portForwardCommand(ref, spec, flags)));

program
  .command("watch")
  .description("print what changes in a directory inside a VM (create, write, remove, rename, chmod) until Ctrl-C")
  .argument("<vm>")
  .argument("<path>", "an absolute directory in the guest")
  .option("-r, --recursive", "subdirectories too, new ones included")
  .option("--json", "one JSON object per line (NDJSON)")
  .action((ref: string, path: string, flags: { recursive?: boolean; json?: boolean }) => done(watchCommand(ref, path, flags)));

program
  .command("logs")
  .description("a VM's command output (capped); --console for its serial console")
  .argument("<vm>")
  .option("-f, --follow", "keep following")
  .option("--console", "the serial console instead")
  .option("--json", "output events as NDJSON")
  .action((ref: string, flags: { follow?: boolean; console?: boolean; json?: boolean }) => done(logsCommand(ref, flags)));

program
  .command("events")
  .description("the daemon's events as they happen: VM states, commands, images, snapshots")
  .option("--vm <vm>", "only events about this VM")
  .option("--type <type>", "only this event type, or a prefix such as vm. (repeatable)", collect, [])
  .option("--since <id>", "first replay what came after this event id")
  .option("--json", "one JSON object per line (NDJSON), with its id")
  .action((flags: EventsFlags) => done(eventsCommand(flags)));

program
  .command("stats")
  .description("a VM's figures now: QEMU's CPU time and memory, disk I/O, network bytes, uptime, boot time")
  .argument("<vm>")
  .option("--json", "print JSON on stdout")
  .action((ref: string, flags: { json?: boolean }) => done(statsCommand(ref, flags)));

program
  .command("exec")
  .description("run a command in a running VM")
  .argument("<vm>")
  .argument("<command...>", "the command (put -- before it)")
  .option("-i, --interactive", "pass stdin to the command")
  .option("-t, --tty", "give the command a terminal of this one's size (mvm exec -it VM -- sh)")
  .option("-d, --detach", "run it in the background and print its session id (see mvm session)")
  .option("--timeout <duration>", "kill the command and everything it started after this long (1500, 30s, 2m); status 124")
  .option("-e, --env <NAME=VALUE>", "an environment variable (repeatable)", collect, [])
  .option("-w, --workdir <dir>", "working directory")
  .option("-u, --user <user>", "user (name or uid)")
  .option("--json", "print the result as JSON on stdout")
  .action((ref: string, argv: string[], flags: ExecFlags) => done(execCommand(ref, argv, flags)));

const session = program.command("session").description("commands running in a VM: background ones (mvm exec -d) by their id");
session.command("ls").description("list a VM's commands").argument("<vm>").option("--json", "print JSON on stdout").action((vm: string, flags: { json?: boolean }) => done(sessionLsCommand(vm, flags)));
session
  .command("attach")
  .description("print a command's output (from what was kept) until it ends; exit with its status")
  .argument("<vm>")
  .argument("<id>")
  .option("--json", "print the result and output as JSON at the end")
  .action((vm: string, id: string, flags: { json?: boolean }) => done(sessionAttachCommand(vm, id, flags)));
session.command("wait").description("wait for a command to end; print its status").argument("<vm>").argument("<id>").option("--json", "print JSON on stdout").action((vm: string, id: string, flags: { json?: boolean }) => done(sessionWaitCommand(vm, id, flags)));
session
  .command("kill")
  .description("send a signal to a command")
  .argument("<vm>")
  .argument("<id>")
  .option("-s, --signal <signal>", "name or number", "TERM")
  .option("--json", "print JSON on stdout")
  .action((vm: string, id: string, flags: { signal: string; json?: boolean }) => done(sessionKillCommand(vm, id, flags)));
session
  .command("stdin")
  .description("send our stdin to a command's stdin (it must have been started with stdin open), then close it")
  .argument("<vm>")
  .argument("<id>")
  .option("--keep-open", "leave the command's stdin open at our end of input")
  .option("--json", "print JSON on stdout")
  .action((vm: string, id: string, flags: { keepOpen?: boolean; json?: boolean }) => done(sessionStdinCommand(vm, id, flags)));
session.command("rm").description("kill (if running) and forget commands").argument("<vm>").argument("<id...>").option("--json", "print JSON on stdout").action((vm: string, ids: string[], flags: { json?: boolean }) => done(sessionRmCommand(vm, ids, flags)));

program
  .command("cp")
  .description("copy files and directories between the host and a VM (docker cp syntax: VM:PATH on one side)")
  .argument("<src>")
  .argument("<dst>")
  .option("-q, --quiet", "no progress or summary")
  .option("--json", "print the totals as JSON on stdout")
  .action((src: string, dst: string, flags: { json?: boolean; quiet?: boolean }) => done(cpCommand(src, dst, flags)));

program.command("console").description("the VM's serial console, interactive (a root shell); Ctrl-] detaches").argument("<vm>").action((ref: string) => done(consoleCommand(ref)));

program.command("wait").description("wait for a VM to stop; prints its command's status").argument("<vm>").option("--json", "print JSON on stdout").action((ref: string, flags: { json?: boolean }) => done(waitCommand(ref, flags)));

program.command("doctor").description("what this host can do, and how to fix what it cannot").option("--json", "print JSON on stdout").action((flags: { json?: boolean }) => done(doctorCommand(flags)));

program
  .command("daemon")
  .description("run the daemon in the foreground (the CLI otherwise starts it on demand)")
  .option("--listen <host:port>", "also serve the API on TCP, for tokens (mvm token create): loopback unless TLS or --insecure-listen")
  .option("--tls-cert <file>", "serve --listen over TLS with this certificate (PEM)")
  .option("--tls-key <file>", "and this private key (PEM)")
  .option("--insecure-listen", "allow a non-loopback --listen without TLS")
  .action(async (flags: { listen?: string; tlsCert?: string; tlsKey?: string; insecureListen?: boolean }) => {
    // The daemon reads these as it reads $MVM_HOME/config.json's, over which they win (src/daemon/daemon-config.ts).
    if (flags.listen) process.env.MVM_LISTEN = flags.listen;
    if (flags.tlsCert) process.env.MVM_TLS_CERT = resolve(flags.tlsCert);
    if (flags.tlsKey) process.env.MVM_TLS_KEY = resolve(flags.tlsKey);
    if (flags.insecureListen) process.env.MVM_INSECURE_LISTEN = "true";
    await import("../daemon/main.js");
  });

registerTokenCommands(program, done);
registerConfigCommands(program, done);
registerDashboardCommand(program, done);

const network = program.command("network").description("bridged networks: VMs that reach each other and the host by address (needs root)");
network
  .command("create")
  .description("a Linux bridge with the subnet's gateway address")
  .argument("<name>")
  .option("--subnet <cidr>", "e.g. 10.89.0.0/24 (default: the first free 10.89.x.0/24)")
  .option("--nat", "masquerade the subnet's outbound traffic")
  .option("--json", "print JSON on stdout")
  .action((name: string, flags: { subnet?: string; nat?: boolean; json?: boolean }) => done(networkCreateCommand(name, flags)));
network.command("ls").description("list networks, with their VMs").option("--json", "print JSON on stdout").action((flags: { json?: boolean }) => done(networkLsCommand(flags)));
network.command("rm").description("remove networks no VM uses").argument("<name...>").option("--json", "print JSON on stdout").action((names: string[], flags: { json?: boolean }) => done(networkRmCommand(names, flags)));

const volume = program.command("volume").description("named volumes: host folders the host's root registers, shared with VMs as -v NAME:/guest/dir[:ro]");
volume
  .command("create")
  .description("register an existing host folder as a volume (the host's root only)")
  .argument("<name>")
  .argument("<path>", "the folder (stored with symlinks resolved)")
  .option("--read-only", "VMs may mount it read-only only")
  .option("--json", "print JSON on stdout")
  .action((name: string, path: string, flags: { readOnly?: boolean; json?: boolean }) => done(volumeCreateCommand(name, path, flags)));
volume.command("ls").description("list volumes, with the VMs sharing each").option("--json", "print JSON on stdout").action((flags: { json?: boolean }) => done(volumeLsCommand(flags)));
volume.command("rm").description("remove volumes no VM uses (their folders are left as they are)").argument("<name...>").option("--json", "print JSON on stdout").action((names: string[], flags: { json?: boolean }) => done(volumeRmCommand(names, flags)));

const image = program.command("image").description("disk images to boot VMs from (--image NAME)");
image
  .command("build")
  .description("build an image: debian, with debootstrap (needs the daemon to run as root)")
  .argument("<distro>", "debian")
  .option("--suite <suite>", "Debian suite", "bookworm")
  .option("--packages <a,b>", "extra packages to include")
  .option("--name <name>", "the image's name (default: the distro)")
  .option("--json", "print JSON on stdout")
  .action((distro: string, flags: { suite: string; packages?: string; name?: string; json?: boolean }) => done(imageBuildCommand(distro, flags)));
image
  .command("import")
  .description("register an image: qcow2, raw ext4, or a root filesystem tarball (docker export)")
  .argument("<file>")
  .option("--name <name>", "the image's name (default: from the file name)")
  .option("--json", "print JSON on stdout")
  .action((file: string, flags: { name?: string; json?: boolean }) => done(imageImportCommand(file, flags)));
image.command("ls").description("list images").option("--json", "print JSON on stdout").action((flags: { json?: boolean }) => done(imageLsCommand(flags)));
image.command("rm").description("remove images no VM uses").argument("<name...>").option("--json", "print JSON on stdout").action((names: string[], flags: { json?: boolean }) => done(imageRmCommand(names, flags)));

const snapshot = program.command("snapshot").description("a VM's memory, devices and root disk at one moment; mvm run|create --snapshot NAME makes VMs of it");
snapshot
  .command("create")
  .description("snapshot a running or paused VM (stopped while its state is saved, then it goes on as it was)")
  .argument("<vm>")
  .option("--name <name>", "the snapshot's name (default: the VM's name and the time)")
  .option("--json", "print JSON on stdout")
  .action((vm: string, flags: { name?: string; json?: boolean }) => done(snapshotCreateCommand(vm, flags)));
snapshot.command("ls").description("list snapshots, oldest first").option("--json", "print JSON on stdout").action((flags: { json?: boolean }) => done(snapshotLsCommand(flags)));
snapshot.command("inspect").description("snapshots as JSON").argument("<name...>").option("--json", "(always JSON)").action((names: string[]) => done(snapshotInspectCommand(names)));
snapshot.command("rm").description("remove snapshots").argument("<name...>").option("--json", "print JSON on stdout").action((names: string[], flags: { json?: boolean }) => done(snapshotRmCommand(names, flags)));

const bench = program.command("bench").description("measure mvm on this host");
bench
  .command("guest")
  .description("guest boot timeline, exec round trip and agent throughput (under TCG here)")
  .option("--boots <n>", "boots per configuration", "10")
  .option("--execs <n>", "exec round trips", "100")
  .option("--stream-mib <n>", "MiB streamed each way", "64")
  .option("--json", "print JSON on stdout (the default)")
  .action(async (flags: { boots: string; execs: string; streamMib: string }) => {
    const artifacts = await ensureGuestArtifacts({ onProgress: progress });
    printJson(await benchGuest({ artifacts, boots: Number(flags.boots), execs: Number(flags.execs), streamMiB: Number(flags.streamMib), onProgress: (l) => progress(`bench: ${l}`) }));
  });

bench
  .command("exec")
  .description("exec round trips (library, CLI) and file copy speed through the daemon, beside the raw agent in the same run")
  .option("--execs <n>", "library and raw exec round trips", "200")
  .option("--cli-execs <n>", "CLI exec round trips", "20")
  .option("--copy-mib <n>", "MiB copied each way per round", "128")
  .option("--rounds <n>", "copy rounds (the median is reported)", "3")
  .option("--json", "print JSON on stdout (the default)")
  .action(async (flags: { execs: string; cliExecs: string; copyMib: string; rounds: string }) => {
    const artifacts = await ensureGuestArtifacts({ onProgress: progress });
    const n = (v: string) => Number(v);
    printJson(await benchExec({ artifacts, execs: n(flags.execs), cliExecs: n(flags.cliExecs), copyMiB: n(flags.copyMib), rounds: n(flags.rounds), onProgress: (l) => progress(`bench: ${l}`) }));
  });

bench
  .command("start")
  .description("start request -> ready for cold boots, clones and the warm pool, plus mvm run --rm -- true and create+exec+rm, in one run")
  .option("--runs <n>", "starts per configuration", "10")
  .option("--cli-runs <n>", "mvm run --rm -- true through the CLI", "10")
  .option("--json", "print JSON on stdout (the default)")
  .action(async (flags: { runs: string; cliRuns: string }) => {
    printJson(await benchStart({ runs: Number(flags.runs), cliRuns: Number(flags.cliRuns), onProgress: (l) => progress(`bench: ${l}`) }));
  });

bench
  .command("density")
  .description("start N VMs as users get them (clones, the pool), check each answers, then their PSS, RSS and idle CPU")
  .option("--count <n>", "VMs to start", "50")
  .option("--concurrency <n>", "starts at once", "8")
  .option("--idle-seconds <n>", "how long idle CPU is measured", "10")
  .option("--json", "print JSON on stdout (the default)")
  .action(async (flags: { count: string; concurrency: string; idleSeconds: string }) => {
    printJson(await benchDensity({ count: Number(flags.count), concurrency: Number(flags.concurrency), idleSeconds: Number(flags.idleSeconds), onProgress: (l) => progress(`bench: ${l}`) }));
  });

bench
  .command("boot")
  .description("cold boot of mvm's default VM, with each boot-time lever undone in turn, beside q35 with Debian's cloud kernel, same run (TCG here)")
  .option("--runs <n>", "boots per configuration", "10")
  .option("--phases", "also boot each configuration verbose and split its time into phases")
  .option("--chart <file.svg>", "write the phases as a stacked bar chart (implies --phases)")
  .option("--busy-boots <n>", "then boot N times with every host core busy, counting hangs, and check the guest clock", "0")
  .option("--compare-guest <manifest.json>", "also boot another guest build (an older manifest from $MVM_CACHE/guest/) as mvm booted it")
  .option("--json", "print JSON on stdout (the default)")
  .action(async (flags: { runs: string; phases?: boolean; chart?: string; busyBoots: string; compareGuest?: string }) => {
    const runs = positiveInt(flags.runs, "--runs");
    const busyBoots = positiveInt(flags.busyBoots, "--busy-boots", true);
    const compare = flags.compareGuest ? { name: `mvm as built before (${basename(flags.compareGuest)})`, artifacts: await readManifest(flags.compareGuest) } : undefined;
    const artifacts = await ensureGuestArtifacts({ onProgress: progress });
    const onProgress = (l: string) => progress(`bench: ${l}`);
    const result = await benchBoot({ artifacts, runs, phases: flags.phases || !!flags.chart, onProgress, compare });
    const stress = busyBoots > 0 ? await benchBootStress({ artifacts, boots: busyBoots, onProgress }) : undefined;
    if (flags.chart && result.phases) {
      const svg = await renderPhaseChart(result.phases.map((p) => ({ config: p.config, phases: p.phases })), {
        title: "mvm cold boot under TCG: where the time goes",
        subtitle: `verbose boots, median per phase of ${runs} runs; kernel ${artifacts.kernel.info.release}`,
      });
      await writeFile(flags.chart, svg);
      progress(`bench: chart written to ${flags.chart}`);
    }
    printJson({ ...result, ...(stress ? { stress } : {}) });
  });

bench
  .command("jail")
  .description("cold boots with the jail on and off, interleaved, and each QEMU's idle RSS (needs root)")
  .option("--runs <n>", "boots per configuration", "10")
  .option("--json", "print JSON on stdout (the default)")
  .action(async (flags: { runs: string }) => {
    const artifacts = await ensureGuestArtifacts({ onProgress: progress });
    printJson(await benchJail({ artifacts, runs: positiveInt(flags.runs, "--runs"), onProgress: (l) => progress(`bench: ${l}`) }));
  });

bench
  .command("api")
  .description("the API under load (autocannon): GET /v1/vms with N VMs present, and exec `true` round trips; requests/s, p50, p99 against the targets")
  .option("--vms <n>", "VMs to boot first (real guests: under TCG this takes a while)", "20")
  .option("--memory <size>", "memory of each VM", "256M")
  .option("--duration <seconds>", "seconds of load per measurement", "10")
  .option("--connections <n>", "connections at once for GET /v1/vms", "10")
  .option("--url <url>", "a TCP listener already running (mvm daemon --listen HOST:PORT), instead of a daemon of the bench's own")
  .option("--token <token>", "the token for --url (mvm token create NAME)")
  .option("--unix", "this home's daemon over its Unix socket, instead of a daemon of the bench's own over TCP")
  .option("--json", "print JSON on stdout (the default)")
  .action(async (flags: { vms: string; memory: string; duration: string; connections: string; url?: string; token?: string; unix?: boolean }) => {
    const o = { vms: positiveInt(flags.vms, "--vms"), durationS: positiveInt(flags.duration, "--duration"), connections: positiveInt(flags.connections, "--connections") };
    printJson(await benchApi({ ...o, memory: flags.memory, url: flags.url, token: flags.token, unix: flags.unix, onProgress: (l) => progress(`bench: ${l}`) }));
  });

bench
  .command("e2b")
  .description("the official E2B SDK against mvm's E2B backend, beside mvm's own library in the same run: Sandbox.create, commands.run('true'), files write/read")
  .option("--creates <n>", "sandboxes (and VMs) to create, after one warm-up each", "5")
  .option("--gap <ms>", "pause before each create, for the warm pool to refill (0: back to back)", "3000")
  .option("--runs <n>", "commands.run('true') and exec round trips", "50")
  .option("--file-mib <n>", "size of the file written and read back", "10")
  .option("--file-rounds <n>", "times each way", "3")
  .option("--url <url>", "a TCP listener already running, instead of a daemon of the bench's own")
  .option("--token <token>", "an admin token for --url")
  .option("--json", "print JSON on stdout (the default)")
  .action(async (flags: { creates: string; gap: string; runs: string; fileMib: string; fileRounds: string; url?: string; token?: string }) => {
    const o = { creates: positiveInt(flags.creates, "--creates"), gapMs: positiveInt(flags.gap, "--gap", true), runs: positiveInt(flags.runs, "--runs"), fileMiB: positiveInt(flags.fileMib, "--file-mib"), fileRounds: positiveInt(flags.fileRounds, "--file-rounds") };
    if (o.fileMiB > 1024) throw new InvalidArgumentError(`--file-mib ${o.fileMiB} is more than the bench holds in memory (1024)`, { hint: "for example --file-mib 10" });
    printJson(await benchE2b({ ...o, url: flags.url, token: flags.token, onProgress: (l) => progress(`bench: ${l}`) }));
  });

/** A guest manifest written by guest/build.sh, with the files it names still there. */
async function readManifest(path: string): Promise<GuestArtifacts> {
  let m: GuestArtifacts;
  try {
    m = JSON.parse(await readFile(path, "utf8")) as GuestArtifacts;
  } catch (e) {
    throw new InvalidArgumentError(`cannot read the guest manifest ${path}: ${(e as Error).message}`, { hint: "name a JSON file from $MVM_CACHE/guest/ (guest/build.sh writes them)" });
  }
  for (const f of [m.kernel?.vmlinux, m.initramfs?.path]) {
    if (typeof f !== "string" || !existsSync(f)) throw new InvalidArgumentError(`the guest manifest ${path} names ${JSON.stringify(f)}, which is not there`, { hint: "pick a manifest whose kernel and initramfs are still cached" });
  }
  return m;
}

/** A count from the command line, or a usage error that names the flag. */
function positiveInt(v: string, flag: string, zeroOk = false): number {
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < (zeroOk ? 0 : 1) || n > 10000) throw new InvalidArgumentError(`${flag} must be a whole number from ${zeroOk ? 0 : 1} to 10000, not ${JSON.stringify(v)}`, { hint: `for example ${flag} 10` });
  return n;
}

try {
  await program.parseAsync(process.argv);
} catch (e) {
  printError(e, wantsJson());
  process.exitCode = EXIT_MVM_FAILED;
}
