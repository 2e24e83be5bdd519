// Named volumes (docs/vm-spec.md): host folders the host's root registers so that callers who may not name
// host paths can still share them with VMs. Registering and removing one is for a caller who may name any
// host path (src/auth/caller.ts); listing is for every caller. A volume a VM's spec uses cannot be removed.

import { realpathSync, statSync } from "node:fs";
import { isAbsolute } from "node:path";
import { requireHostPathAdmin, type Caller } from "../auth/caller.js";
import { InvalidSpecError, InvalidStorageError, NameTakenError, WrongStateError } from "../errors.js";
import type { VolumeRecord, VolumeStore } from "../store/volume-store.js";
import type { VmStore } from "../store/vm-store.js";
import { NAME_PATTERN } from "../vmspec/names.js";
import type { NamedVolume } from "../vmspec/storage.js";

export class VolumeManager {
  constructor(
    private readonly volumes: VolumeStore,
    private readonly vms: VmStore,
  ) {}

  /** Every volume, with the VMs whose spec shares it. */
  list(): Array<VolumeRecord & { vms: string[] }> {
    const vms = this.vms.list();
    return this.volumes.list().map((v) => ({ ...v, vms: vms.filter((r) => r.spec.volumes.some((x) => x.volume === v.name)).map((r) => r.name) }));
  }

  get(name: string): VolumeRecord {
    return this.volumes.get(name);
  }

  /** What a spec's -v NAME:... resolves to (NOT_FOUND for a name not registered). */
  resolve(name: string): NamedVolume {
    const v = this.volumes.get(name);
    return { name: v.name, path: v.path, readOnly: v.readOnly };
  }

  create(name: string, path: string, o: { readOnly?: boolean }, caller: Caller): VolumeRecord {
    requireHostPathAdmin(caller, "register volumes");
    if (!new RegExp(NAME_PATTERN).test(name)) throw new InvalidSpecError(`invalid volume name ${JSON.stringify(name)}`, { hint: "lower-case letters, digits and '-', at most 63, as VM names" });
    if (this.volumes.find(name)) throw new NameTakenError(`a volume named ${name} already exists`, { hint: `pick another name, or remove it first (mvm volume rm ${name})`, details: { volume: name } });
    if (!isAbsolute(path)) throw new InvalidStorageError(`the volume's folder ${JSON.stringify(path)} is not an absolute path`, { hint: "give the folder's full path (the CLI resolves a relative one)" });
    let real: string;
    try {
      real = realpathSync.native(path);
      if (!statSync(real).isDirectory()) throw Object.assign(new Error("not a folder"), { code: "ENOTDIR" });
    } catch (e) {
      throw new InvalidStorageError(`cannot register ${path} as a volume: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, { hint: "a volume is an existing folder on the daemon's host" });
    }
    return this.volumes.add({ name, path: real, readOnly: Boolean(o.readOnly) });
  }

  remove(name: string, caller: Caller): void {
    requireHostPathAdmin(caller, "remove volumes");
    this.volumes.get(name);
    const users = this.list().find((v) => v.name === name)?.vms ?? [];
    if (users.length) throw new WrongStateError(`volume ${name} is used by ${users.join(", ")}`, { hint: `remove those VMs first (mvm rm -f ${users.join(" ")})`, details: { volume: name, vms: users } });
    this.volumes.remove(name);
  }
}
