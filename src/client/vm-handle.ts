// A VM the library started with run(): its methods name it, and `await using` removes it when the block
// ends, however it ends.

import type { ExecResult } from "../api/command-schemas.js";
import type { VmView } from "../api/vm-schemas.js";
import type { ExecRequestOptions, MvmClient, SpawnOptions } from "./client.js";
import type { Command } from "./command.js";
import type { GuestFiles } from "./files.js";

export class VmHandle implements AsyncDisposable {
  constructor(
    private readonly client: MvmClient,
    readonly id: string,
    readonly name: string,
  ) {}

  exec(argv: string[], o?: ExecRequestOptions): Promise<ExecResult> {
    return this.client.exec(this.id, argv, o);
  }

  spawn(argv: string[], o?: SpawnOptions): Promise<Command> {
    return this.client.spawn(this.id, argv, o);
  }

  get files(): GuestFiles {
    return this.client.files(this.id);
  }

  inspect(signal?: AbortSignal): Promise<VmView> {
    return this.client.get(this.id, signal);
  }

  stop(signal?: AbortSignal): Promise<VmView> {
    return this.client.stop(this.id, signal);
  }

  remove(): Promise<void> {
    return this.client.remove(this.id, { force: true });
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.remove();
  }
}
