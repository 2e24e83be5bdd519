// mvm cp SRC DST, as docker cp: one side is VM:PATH, the other a host path; files and directories.

import { connect } from "../../client/client.js";
import { copyIn, copyOut, parseCopyArg, type CopyStats } from "../../client/copy.js";
import { InvalidArgumentError } from "../../errors.js";
import { printJson } from "../output.js";

export async function cpCommand(src: string, dst: string, flags: { json?: boolean; quiet?: boolean }): Promise<number> {
  const from = parseCopyArg(src);
  const to = parseCopyArg(dst);
  if (!!from.vm === !!to.vm) {
    throw new InvalidArgumentError("mvm cp copies between the host and a VM: exactly one side must be VM:PATH", { hint: "mvm cp ./app.tar myvm:/root/ or mvm cp myvm:/var/log ./logs" });
  }
  const client = await connect();
  const started = performance.now();
  // A progress line on a terminal, redrawn at most every 200 ms.
  let last = 0;
  const onProgress = (s: CopyStats) => {
    if (flags.json || flags.quiet || !process.stderr.isTTY || performance.now() - last < 200) return;
    last = performance.now();
    process.stderr.write(`\r${(s.bytes / 1048576).toFixed(1)} MiB, ${s.files} files`);
  };
  const stats = from.vm ? await copyOut(client.files(from.vm), from.path, to.path, { onProgress }) : await copyIn(client.files(to.vm!), from.path, to.path, { onProgress });
  const seconds = (performance.now() - started) / 1000;
  if (last) process.stderr.write("\r\x1b[K");
  if (flags.json) printJson({ ...stats, seconds });
  else if (!flags.quiet) process.stderr.write(`copied ${stats.files} files, ${stats.dirs} directories, ${stats.symlinks} symlinks, ${(stats.bytes / 1048576).toFixed(1)} MiB in ${seconds.toFixed(1)} s\n`);
  return 0;
}
