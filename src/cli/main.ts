#!/usr/bin/env node
// The mvm command line.

import { Command, Option } from "commander";
import { benchGuest } from "../bench/guest.js";
import { ensureGuestArtifacts } from "../guest/artifacts.js";
import { EXIT_MVM_FAILED, printError, printJson, progress } from "./output.js";
import { runCommand, type RunFlags } from "./run.js";

const collect = (value: string, list: string[]) => [...list, value];

function wantsJson(): boolean {
  return process.argv.includes("--json");
}

const program = new Command()
  .name("mvm")
  .description("Fast, strongly isolated Linux microVMs on QEMU's microvm machine")
  .showHelpAfterError()
  .exitOverride((e) => {
    process.exit(e.exitCode === 0 ? 0 : EXIT_MVM_FAILED);
  });

program
  .command("run")
  .description("boot a microVM, run a command in it, and exit with the command's status")
  .argument("<command...>", "the command and its arguments (put -- before it)")
  .option("-e, --env <NAME=VALUE>", "set an environment variable (repeatable)", collect, [])
  .option("-w, --workdir <dir>", "working directory of the command")
  .option("-u, --user <user>", "run the command as this user (name or uid)")
  .option("-i, --interactive", "pass stdin through to the command")
  .option("--hostname <name>", "the guest's hostname", "mvm")
  .option("--cpus <n>", "vCPUs", "1")
  .option("--memory <size>", "guest memory: MiB or with a unit (256, 512M, 1G)", "256M")
  .option("--kernel <path>", "boot this vmlinux or bzImage instead of mvm's kernel")
  .option("--initrd <path>", "use this initramfs instead of mvm's")
  .option("--append <args>", "add to the default kernel command line")
  .option("--cmdline <args>", "replace the default kernel command line")
  .addOption(new Option("--accel <accel>", "accelerator: auto picks KVM only where it is real").choices(["auto", "kvm", "tcg"]).default("auto"))
  .option("--rm", "remove the VM when the command ends (always so until the daemon lands)")
  .option("--json", "print the result as JSON on stdout (the command's output included)")
  .action(async (command: string[], flags: RunFlags) => {
    process.exitCode = await runCommand(command, flags);
  });

const bench = program.command("bench").description("measure mvm on this host");
bench
  .command("guest")
  .description("guest boot timeline, exec round trip and agent throughput (under TCG here)")
  .option("--boots <n>", "boots per configuration", "10")
  .option("--execs <n>", "exec round trips", "100")
  .option("--stream-mib <n>", "MiB streamed each way", "64")
  .option("--json", "print JSON on stdout")
  .action(async (flags: { boots: string; execs: string; streamMib: string; json?: boolean }) => {
    const artifacts = await ensureGuestArtifacts({ onProgress: progress });
    const result = await benchGuest({
      artifacts,
      boots: Number(flags.boots),
      execs: Number(flags.execs),
      streamMiB: Number(flags.streamMib),
      onProgress: (l) => progress(`bench: ${l}`),
    });
    printJson(result);
  });

try {
  await program.parseAsync(process.argv);
} catch (e) {
  printError(e, wantsJson());
  process.exitCode = EXIT_MVM_FAILED;
}
