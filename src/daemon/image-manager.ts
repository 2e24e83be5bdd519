// Disk images: registered files (imported or built with debootstrap) that VMs boot from through an
// overlay of their own. An image in use by a VM cannot be removed.

import { rm } from "node:fs/promises";
import { join } from "node:path";
import { buildDebian, importImage, type DebianOptions } from "../images/image-builder.js";
import type { ImageRecord, ImageStore } from "../store/image-store.js";
import type { VmStore } from "../store/vm-store.js";
import { checkSpec } from "../vmspec/vm-spec.js";
import { MvmError, NameTakenError, WrongStateError } from "../errors.js";
import { HOST_ROOT, requireMayCreate, type Caller } from "../auth/caller.js";
import { checkHostPath, type HostPathPolicy } from "../auth/host-paths.js";
import type { EventInput } from "./events.js";

export class ImageManager {
  constructor(
    private readonly o: {
      images: ImageStore;
      vms: VmStore;
      home: string;
      /** Shared by every home: finished debootstraps are reused from here. */
      cacheDir: string;
      /** Who may name which host paths (src/auth/host-paths.ts): the file to import is one. */
      hostPaths: () => HostPathPolicy;
      /** Where progress and the end of imports and builds go (the daemon's event bus). */
      publish?: (e: EventInput) => void;
    },
  ) {}

  private get dir(): string {
    return join(this.o.home, "images");
  }

  list(): ImageRecord[] {
    return this.o.images.list();
  }

  get(name: string): ImageRecord {
    return this.o.images.get(name);
  }

  private checkNewName(name: string): void {
    checkSpec({ name }); // the same name rules as VMs
    if (this.o.images.find(name)) throw new NameTakenError(`an image named ${name} already exists`, { hint: `remove it first (mvm image rm ${name}) or pick another --name` });
  }

  // Not async: what can be checked at once (the name, the file's kind, the packages) throws here, before
  // the route starts streaming progress, so a request refused is answered with its 4xx. The file is a host
  // path, so the caller must be one who may name it.
  import(file: string, name: string, onLine: (l: string) => void, caller: Caller = HOST_ROOT): Promise<ImageRecord> {
    requireMayCreate(caller, "import images");
    const path = checkHostPath(file, "image file", caller, this.o.hostPaths());
    this.checkNewName(name);
    return this.published("import", name, onLine, (l) => importImage(path, name, this.dir, l).then((built) => this.o.images.add({ name, ...built })));
  }

  build(name: string, o: DebianOptions, onLine: (l: string) => void): Promise<ImageRecord> {
    this.checkNewName(name);
    return this.published("build", name, onLine, (l) => buildDebian(name, o, this.dir, l, this.o.cacheDir).then((built) => this.o.images.add({ name, ...built })));
  }

  /** Runs an import or build with its progress, and its end, published as events too. */
  private published(op: "import" | "build", image: string, onLine: (l: string) => void, run: (onLine: (l: string) => void) => Promise<ImageRecord>): Promise<ImageRecord> {
    const publish = this.o.publish ?? (() => undefined);
    const running = run((line) => {
      publish({ type: "image.progress", image, op, line });
      onLine(line);
    });
    running.then(
      () => publish({ type: "image.done", image, op }),
      (e: unknown) => publish({ type: "image.error", image, op, error: e instanceof MvmError ? e.code : "INTERNAL", message: e instanceof Error ? e.message : String(e) }),
    );
    return running;
  }

  async remove(name: string): Promise<void> {
    const image = this.o.images.get(name);
    const users = this.o.vms.list().filter((v) => v.spec.image === name).map((v) => v.name);
    if (users.length) throw new WrongStateError(`image ${name} is used by ${users.join(", ")}`, { hint: `remove those VMs first (mvm rm -f ${users.join(" ")})`, details: { image: name, vms: users } });
    this.o.images.remove(name);
    await rm(image.path, { force: true });
  }
}
