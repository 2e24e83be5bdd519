// `mvm run`: boot a microVM, run one command in it, stream its output, power off, exit with its status.
// Until the daemon lands every VM is ephemeral: it lives exactly as long as its command.

import type { ExecSession } from "../agent/exec-session.js";
import { MvmError } from "../errors.js";
import { ensureGuestArtifacts } from "../guest/artifacts.js";
import { checkKernelFile, checkReadableFile } from "../guest/kernel-file.js";
import { launchGuest } from "../guest/launch.js";
import { chooseAccel, readHostFacts } from "../host/accel.js";
import { parseMemoryMiB } from "../spec/size.js";
import { printJson, progress } from "./output.js";

export interface RunFlags {
  env: string[];
  workdir?: string;
  user?: string;
  hostname?: string;
  cpus: string;
  memory: string;
  kernel?: string;
  initrd?: string;
  append?: string;
  cmdline?: string;
  accel: string;
  interactive?: boolean;
  json?: boolean;
}

function parseEnv(list: string[]): Record<string, string> {
  const env: Record<string, string> = {};
  for (const item of list) {
    const eq = item.indexOf("=");
    if (eq <= 0) throw new MvmError(`invalid environment entry ${JSON.stringify(item)}`, { hint: "write -e NAME=VALUE" });
    env[item.slice(0, eq)] = item.slice(eq + 1);
  }
  return env;
}

function parseCpus(text: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1 || n > 64) throw new MvmError(`invalid CPU count ${JSON.stringify(text)}`, { hint: "give --cpus between 1 and 64" });
  return n;
}

export async function runCommand(argv: string[], flags: RunFlags): Promise<number> {
  if (flags.append !== undefined && flags.cmdline !== undefined) {
    throw new MvmError("--append and --cmdline cannot be used together", { hint: "--append adds to the default kernel command line, --cmdline replaces it" });
  }
  if (!["auto", "kvm", "tcg"].includes(flags.accel)) throw new MvmError(`unknown accelerator ${JSON.stringify(flags.accel)}`, { hint: "use --accel auto, kvm or tcg" });
  const accel = chooseAccel(flags.accel as "auto" | "kvm" | "tcg", readHostFacts());
  if (!accel.usable) throw new MvmError(`KVM cannot be used here: ${accel.reason}`, { hint: "use --accel tcg (or auto) on this host" });
  const env = parseEnv(flags.env);
  const memoryMiB = parseMemoryMiB(flags.memory);
  const cpus = parseCpus(flags.cpus);
  if (flags.kernel) checkKernelFile(flags.kernel);
  if (flags.initrd) checkReadableFile(flags.initrd, "initrd");

  const artifacts = await ensureGuestArtifacts({ onProgress: flags.json ? undefined : progress });
  const guest = await launchGuest({
    artifacts,
    accel: accel.chosen,
    cpus,
    memoryMiB,
    kernel: flags.kernel,
    initrd: flags.initrd,
    append: flags.append,
    cmdline: flags.cmdline,
    config: { hostname: flags.hostname },
  });
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  let session: ExecSession | undefined;
  let interrupts = 0;
  const onSigint = () => {
    // First Ctrl-C goes to the command; a second one stops the VM.
    if (++interrupts === 1 && session) session.kill(2);
    else void guest.kill();
  };
  process.on("SIGINT", onSigint);
  try {
    session = guest.agent!.exec({
      argv,
      env,
      cwd: flags.workdir,
      user: flags.user,
      stdin: Boolean(flags.interactive),
      onStdout: (b) => (flags.json ? out.push(b) : process.stdout.write(b)),
      onStderr: (b) => (flags.json ? err.push(b) : process.stderr.write(b)),
    });
    if (flags.interactive) {
      const s = session;
      process.stdin.on("data", (b: Buffer) => void s.write(b).catch(() => undefined));
      process.stdin.on("end", () => void s.end().catch(() => undefined));
    }
    const result = await session.result;
    if (result.message) process.stderr.write(`mvm: ${result.message}\n`);
    if (flags.json) {
      printJson({
        status: result.status,
        exitCode: result.exitCode,
        signal: result.signal,
        message: result.message,
        stdout: Buffer.concat(out).toString("utf8"),
        stderr: Buffer.concat(err).toString("utf8"),
        accel,
        kernel: guest.hello?.kernel,
        timeline: guest.timeline,
      });
    }
    return result.status;
  } finally {
    process.off("SIGINT", onSigint);
    process.stdin.pause();
    await guest.stop();
  }
}
