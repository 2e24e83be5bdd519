// `mvm console NAME`: the VM's serial console, interactive. Ctrl-] detaches (the VM keeps running).

import { connect } from "../../client/client.js";

const DETACH = 0x1d; // Ctrl-]

export async function consoleCommand(ref: string): Promise<number> {
  const client = await connect();
  const stream = await client.console(ref);
  const tty = process.stdin.isTTY;
  process.stderr.write(`Connected to the console of ${ref}${tty ? "; detach with Ctrl-]" : ""}.\r\n`);
  stream.pipe(process.stdout);
  if (tty) process.stdin.setRawMode(true);
  return new Promise<number>((resolve) => {
    const finish = () => {
      if (tty) process.stdin.setRawMode(false);
      process.stdin.pause();
      stream.destroy();
      resolve(0);
    };
    process.stdin.on("data", (b: Buffer) => {
      const at = b.indexOf(DETACH);
      if (at >= 0) {
        if (at > 0) stream.write(b.subarray(0, at));
        process.stderr.write("\r\nDetached.\r\n");
        finish();
      } else stream.write(b);
    });
    // Piped input: send it all, give the guest a moment to answer, then leave.
    process.stdin.on("end", () => setTimeout(finish, 1500));
    stream.on("close", finish);
  });
}
