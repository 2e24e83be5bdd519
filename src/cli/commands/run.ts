// `mvm run` and `mvm create`: a VM from flags, through the daemon. Without -d, run follows the command's
// output and exits with its status (Docker's convention); with --rm the VM is removed afterwards.

import { connect, type MvmClient } from "../../client/client.js";
import { InvalidArgumentError } from "../../errors.js";
import { ensureGuestArtifacts } from "../../guest/artifacts.js";
import { printJson, progress } from "../output.js";
import { execInteractive } from "./exec.js";
import { ensureDefaultImage } from "./image.js";
import { specFromFlags, type VmFlags } from "../vm-flags.js";

export interface RunFlags extends VmFlags {
  rm?: boolean;
  detach?: boolean;
  interactive?: boolean;
  tty?: boolean;
}

const write = (stream: NodeJS.WriteStream, data: string) => stream.write(Buffer.from(data, "base64"));

/**
 * The guest kernel and initramfs, built here with progress on stderr when missing (minutes, once), so that
 * the daemon, which would otherwise build them silently, finds them ready. A cache hit costs milliseconds.
 */
async function guestReady(): Promise<void> {
  await ensureGuestArtifacts({ onProgress: progress });
}

export async function createCommand(command: string[], flags: VmFlags): Promise<number> {
  await guestReady();
  const client = await connect();
  await ensureDefaultImage(client, flags.image);
  const vm = await client.create(specFromFlags(flags, command));
  if (flags.json) printJson(vm);
  else process.stdout.write(`${vm.name}\n`);
  return 0;
}

export async function runCommand(command: string[], flags: RunFlags): Promise<number> {
  if (flags.detach && flags.rm) throw new InvalidArgumentError("--rm and -d cannot be used together", { hint: "a detached VM is removed with mvm rm when you are done" });
  // An interactive run without a command is a shell, as with docker run -it.
  const spec = specFromFlags(flags, command.length === 0 && (flags.interactive || flags.tty) ? ["/bin/sh"] : command);
  if (!flags.detach && !spec.command) throw new InvalidArgumentError("run needs a command unless it runs detached", { hint: "mvm run -- uname -a, or mvm run -d --name NAME" });
  await guestReady();
  const client = await connect();
  await ensureDefaultImage(client, spec.image);
  if (flags.detach) {
    const vm = await client.create(spec);
    const started = await client.start(vm.id);
    if (flags.json) printJson(started);
    else process.stdout.write(`${vm.name}\n`);
    return 0;
  }
  // -i/-t: the VM runs without a command of its own, and the command runs through exec with stdin.
  const interactive = flags.interactive || flags.tty;
  const vm = await client.create(interactive ? { ...spec, command: undefined } : spec);
  // Ctrl-C goes to the command as SIGINT; a second one kills the VM.
  let interrupts = 0;
  // (With -i, the exec forwards the first Ctrl-C to the command itself.)
  const onSigint = () => {
    if (++interrupts > 1) void client.kill(vm.id).catch(() => undefined);
    else if (!interactive) void client.signal(vm.id, "job", 2).catch(() => client.kill(vm.id).catch(() => undefined));
  };
  process.on("SIGINT", onSigint);
  try {
    const status = interactive ? await runInteractive(client, vm.id, spec.command!, flags) : await runAttached(client, vm.id, flags);
    return interrupts > 1 ? 130 : status;
  } finally {
    process.off("SIGINT", onSigint);
    if (flags.rm) await client.remove(vm.id, { force: true }).catch(() => undefined);
  }
}

async function runAttached(client: MvmClient, id: string, flags: RunFlags): Promise<number> {
  const out: Record<"stdout" | "stderr", Buffer[]> = { stdout: [], stderr: [] };
  const exit = await client.startAttached(id, (e) => {
    if (e.type !== "stdout" && e.type !== "stderr") return;
    if (flags.json) out[e.type].push(Buffer.from(e.data, "base64"));
    else write(e.type === "stdout" ? process.stdout : process.stderr, e.data);
  });
  const ce = exit.commandExit;
  if (!flags.json && ce?.status !== undefined && ce.status >= 125 && ce.message) process.stderr.write(`mvm: ${ce.message}\n`);
  if (flags.json) {
    printJson({ vm: await client.get(id), exit: ce, stdout: Buffer.concat(out.stdout).toString(), stderr: Buffer.concat(out.stderr).toString() });
  }
  return ce?.status ?? 125;
}

async function runInteractive(client: MvmClient, id: string, command: string[], flags: RunFlags): Promise<number> {
  await client.start(id);
  const status = await execInteractive(client, id, command, { cwd: flags.workdir, user: flags.user, tty: flags.tty });
  await client.stop(id).catch(() => undefined);
  return status;
}
