// Saved states of jailed QEMUs. A jailed QEMU sees only its own paths, and writes a state (`exec:cat > …`)
// into the drop directory of its VM directory, which its uid owns; the daemon then moves the file to where
// it belongs. A QEMU that lies could leave a link or another file there instead: the file is checked once it
// is out of QEMU's reach (a regular file, one link, written by QEMU's uid), and refused otherwise. States
// end up root's, readable by the group of jailed QEMUs, so a clone or a restore can load them.

import { randomBytes } from "node:crypto";
import { constants, createWriteStream, type Stats } from "node:fs";
import { chmod, chown, lstat, open, rename, rm } from "node:fs/promises";
import { pipeline } from "node:stream/promises";
import { dirname, join } from "node:path";
import { StateFileError } from "../errors.js";
import { dropDir, readJailRecord } from "../jail/access.js";
import { saveState } from "../qemu/migration.js";
import type { Guest } from "./guest.js";

export async function saveGuestState(guest: Guest, file: string, o: { ignoreShared: boolean; timeoutMs?: number }): Promise<void> {
  const jail = readJailRecord(guest.dir);
  if (!jail?.namespaces) return saveState(guest.qmp, file, o);
  const name = `state-${randomBytes(6).toString("hex")}`;
  const outside = join(dropDir(guest.dir), name);
  try {
    await saveState(guest.qmp, join(dropDir(jail.dir), name), o);
    await moveFile(outside, file, jail.uid);
  } finally {
    await rm(outside, { force: true });
  }
  await chown(file, 0, jail.sharedGid ?? 0);
  await chmod(file, jail.sharedGid ? 0o640 : 0o600);
  // The folder of a suspend lies in the VM's directory, which a restored QEMU sees: the group walks it.
  if (jail.sharedGid) {
    await chown(dirname(file), 0, jail.sharedGid);
    await chmod(dirname(file), 0o750);
  }
}

const refuse = (file: string, st: { uid: number; nlink: number }) =>
  new StateFileError(`the state QEMU saved as ${file} is not a plain file it wrote (owner ${st.uid}, ${st.nlink} links): refused`, { hint: "the guest's QEMU may be compromised: kill the VM (mvm kill) and look at its qemu.log" });

const plain = (st: Stats, uid: number) => st.isFile() && st.nlink === 1 && st.uid === uid;

/** Moves QEMU's file out of its reach, then checks it (a rename moves a link as a link); across filesystems, copies it without following a link. */
async function moveFile(from: string, to: string, uid: number): Promise<void> {
  try {
    await rename(from, to);
    const st = await lstat(to);
    if (!plain(st, uid)) {
      await rm(to, { force: true });
      throw refuse(to, st);
    }
    return;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "EXDEV") throw e;
  }
  const src = await open(from, constants.O_RDONLY | constants.O_NOFOLLOW);
  try {
    const st = await src.stat();
    if (!plain(st, uid)) throw refuse(from, st);
    await pipeline(src.createReadStream({ autoClose: false }), createWriteStream(to, { flags: "wx", mode: 0o600 }));
  } catch (e) {
    await rm(to, { force: true });
    throw e;
  } finally {
    await src.close();
  }
}
