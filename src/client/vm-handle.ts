// A VM the library started with run(): its methods name it, and `await using` removes it when the block
// ends, however it ends.

import type { ExecResult } from "../api/command-schemas.js";
import type { SnapshotView } from "../api/snapshot-schemas.js";
import type { VmView } from "../api/vm-schemas.js";
import type { ExecRequestOptions, LimitsPatch, MvmClient, SpawnOptions } from "./client.js";
import type { Command } from "./command.js";
import type { GuestFiles } from "./files.js";
import type { PortForward, PortForwardOptions } from "./ports.js";
import type { Duplex } from "node:stream";

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

  /** One TCP connection to a guest port as a Duplex (no guest network needed). */
  forward(port: number, o?: { address?: string; signal?: AbortSignal }): Promise<Duplex> {
    return this.client.forward(this.id, port, o);
  }

  /** A local listener forwarding to a guest port: `.port`, `.close()`. */
  portForward(o: PortForwardOptions): Promise<PortForward> {
    return this.client.portForward(this.id, o);
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

  /** Saves the VM's whole state to disk and ends its QEMU (its memory goes back to the host). */
  suspend(signal?: AbortSignal): Promise<VmView> {
    return this.client.suspend(this.id, signal);
  }

  /** Brings a suspended VM back (or unfreezes a paused one). */
  resume(signal?: AbortSignal): Promise<VmView> {
    return this.client.resume(this.id, signal);
  }

  /** A snapshot of the VM as it is now, which it runs on from; client.run({snapshot: name}) makes VMs of it. */
  snapshot(o: { name?: string; signal?: AbortSignal } = {}): Promise<SnapshotView> {
    return this.client.createSnapshot(this.id, { name: o.name }, o.signal);
  }

  /** Changes its limits, live (null removes one): vm.setLimits({ diskBps: "10M", cpuMax: 0.5 }). */
  setLimits(limits: LimitsPatch, signal?: AbortSignal): Promise<VmView> {
    return this.client.setLimits(this.id, limits, signal);
  }

  /** A new time to live from now ("10m", seconds; null: none): vm.setTtl("5m"). */
  setTtl(ttl: number | string | null, signal?: AbortSignal): Promise<VmView> {
    return this.client.setTtl(this.id, ttl, signal);
  }

  remove(): Promise<void> {
    return this.client.remove(this.id, { force: true });
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.remove();
  }
}
