// A command in a VM known by its session id: one started with spawn() (a background command, which
// outlives the client), or found again later with client.command(vm, id). Its output can be read as
// async iterators, from the start of what the daemon kept, as often as wanted.

import type { ExecResult } from "../api/command-schemas.js";
import { errorFromBody, InternalError } from "../errors.js";
import type { SessionInfo } from "../api/command-schemas.js";
import { requestJson, requestUpload, streamLines, type HttpOptions } from "./http.js";
import { chunks, type WriteData } from "./files.js";
import { checkResult } from "./exec-errors.js";

export type { SessionInfo };

export interface OutputChunk {
  stream: "stdout" | "stderr";
  data: Buffer;
}

const enc = encodeURIComponent;

export class Command {
  constructor(
    private readonly http: (signal?: AbortSignal) => HttpOptions,
    readonly vm: string,
    readonly id: string,
  ) {}

  private get path(): string {
    return `/v1/vms/${enc(this.vm)}/sessions/${enc(this.id)}`;
  }

  info(signal?: AbortSignal): Promise<SessionInfo> {
    return requestJson(this.http(signal), "GET", this.path);
  }

  /**
   * Waits for the command to end. Resolves with its result; rejects when the VM went away (VM_GONE)
   * or, with check, when it failed (COMMAND_FAILED) or timed out (COMMAND_TIMED_OUT).
   */
  async wait(o: { check?: boolean; signal?: AbortSignal } = {}): Promise<ExecResult> {
    const info = await requestJson<SessionInfo>(this.http(o.signal), "POST", `${this.path}/wait`);
    if (info.error) throw errorFromBody(undefined, info.error);
    if (!info.result) throw new InternalError(`command ${this.id} has no result`);
    return o.check ? checkResult(info.argv, info.result) : info.result;
  }

  /** Sends a signal (default SIGTERM) to the command's process group. */
  async kill(signo = 15, signal?: AbortSignal): Promise<void> {
    await requestJson(this.http(signal), "POST", `${this.path}/signal`, { signal: signo });
  }

  /** Writes to the command's stdin (spawn it with stdin: true). */
  async write(data: WriteData, signal?: AbortSignal): Promise<void> {
    await requestUpload(this.http(signal), "POST", `${this.path}/stdin`, chunks(data));
  }

  /** Closes the command's stdin: it reads end-of-file. */
  async closeStdin(signal?: AbortSignal): Promise<void> {
    await requestUpload(this.http(signal), "POST", `${this.path}/stdin?eof=true`, chunks(Buffer.alloc(0)));
  }

  /** Kills the command if it still runs, and makes the daemon forget it. */
  async remove(signal?: AbortSignal): Promise<void> {
    await requestJson(this.http(signal), "DELETE", this.path);
  }

  /** Everything the command writes, stdout and stderr in order, from the start of what was kept, to its end. */
  async *output(signal?: AbortSignal): AsyncGenerator<OutputChunk> {
    for await (const e of streamLines(this.http(signal), "GET", `${this.path}/attach`)) {
      if (e.type === "stdout" || e.type === "stderr") yield { stream: e.type, data: Buffer.from(e.data as string, "base64") };
    }
  }

  async *stdout(signal?: AbortSignal): AsyncGenerator<Buffer> {
    for await (const c of this.output(signal)) if (c.stream === "stdout") yield c.data;
  }

  async *stderr(signal?: AbortSignal): AsyncGenerator<Buffer> {
    for await (const c of this.output(signal)) if (c.stream === "stderr") yield c.data;
  }
}
