// The library: a typed client of the daemon, which it starts when none is running. Every operation the
// CLI has is here, each taking an AbortSignal; VM handles implement Symbol.asyncDispose.

import type { ExecResult } from "../api/command-schemas.js";
import type { AttachEvent, DaemonInfo, ExitEvent, VmSpecInput, VmView } from "../api/vm-schemas.js";
import { DaemonDisconnectedError, errorFromBody } from "../errors.js";
import type { ImageView as ImageRecord, NetworkView as NetworkRecord, VolumeView } from "../api/resource-schemas.js";
import type { SnapshotView } from "../api/snapshot-schemas.js";
import type { LimitsPatchBody } from "../api/limit-schemas.js";
import { createInterface } from "node:readline";
import type { Duplex } from "node:stream";
import { openUpgrade, requestBody, requestJson, requestStream, requestText, type HttpOptions } from "./http.js";
import { Command, type SessionInfo } from "./command.js";
import { checkResult } from "./exec-errors.js";
import { GuestFiles } from "./files.js";
import { listenPortForward, openForward, type PortForward, type PortForwardOptions } from "./ports.js";
import { VmHandle } from "./vm-handle.js";
import { eventsPath, readEvents, type EventsOptions, type StreamedEvent } from "./events.js";
import type { VmStats } from "../api/event-schemas.js";
import type { HostStatsHistory, VmStatsHistory } from "../api/stats-schemas.js";

/** An API token as the daemon shows it. */
export interface TokenView {
  name: string;
  role: "admin" | "user" | "read";
  quota: { maxVms?: number; maxCpus?: number; maxMemoryMiB?: number };
  createdAt: string;
  lastUsedAt?: string;
  connections?: number;
}

export type { VmView, VmSpecInput, ExitEvent, AttachEvent, SessionInfo, DaemonInfo, SnapshotView, VolumeView, EventsOptions, StreamedEvent, VmStats, VmStatsHistory, HostStatsHistory };

/** A change of a VM's limits: a rate (bytes per second, or "5M"), IOPS, CPU weight, cores or memory size sets one, null removes it, a key left out keeps it. */
export type LimitsPatch = LimitsPatchBody;
export { Command, GuestFiles, VmHandle };
export { connect } from "./connect.js";

/** A daemon's network listener (mvm daemon --listen): where, the token, and for https what to trust. */
export interface RemoteOptions {
  /** http://HOST:PORT or https://HOST:PORT. */
  url: string;
  /** A token the daemon's host's root made (mvm token create). */
  token?: string;
  /** Certificate authorities (PEM) to trust beside the system's: a self-signed listener's certificate. */
  ca?: string | Buffer;
}

export interface ConnectOptions {
  /** The daemon's network listener instead of this host's socket (default: $MVM_URL); never started on demand. */
  url?: string;
  /** The token for `url` (default: $MVM_TOKEN). */
  token?: string;
  /** For an https `url`: certificate authorities to trust (PEM). */
  ca?: string | Buffer;
  /** $MVM_HOME; defaults as the daemon's. */
  home?: string;
  /** Start the daemon when none answers (default true). */
  autoStart?: boolean;
  signal?: AbortSignal;
}

export interface ExecRequestOptions {
  env?: Record<string, string>;
  /** Kill the command and everything it started after this long; the result says timedOut (status 124). */
  timeoutMs?: number;
  cwd?: string;
  user?: string;
  input?: Buffer | string;
  onStdout?: (chunk: Buffer) => void;
  onStderr?: (chunk: Buffer) => void;
  /** Called once the command has a session: use it to send signals (e.g. SIGINT on Ctrl-C). */
  onSession?: (control: { id: string; signal: (signo: number) => Promise<void> }) => void;
  /** Aborting disconnects, which kills the command. */
  signal?: AbortSignal;
  /** Reject with COMMAND_FAILED (non-zero status) or COMMAND_TIMED_OUT instead of resolving. */
  check?: boolean;
}

export interface SpawnOptions {
  env?: Record<string, string>;
  timeoutMs?: number;
  cwd?: string;
  user?: string;
  /** Keep stdin open for Command.write() / closeStdin(); otherwise it reads /dev/null. */
  stdin?: boolean;
  signal?: AbortSignal;
}

export interface ExecStream {
  result: Promise<ExecResult>;
  write(data: Buffer | string): void;
  end(): void;
  signal(signo: number): void;
  /** A pty session's new window size. */
  resize(rows: number, cols: number): void;
  close(): void;
}


const enc = encodeURIComponent;

export class MvmClient {
  /** The daemon's Unix socket (empty for a client of a network listener). */
  readonly socketPath: string;
  private readonly remote?: RemoteOptions;

  /** A client of the daemon on this Unix socket, or of the network listener at `url` with a token. */
  constructor(where: string | RemoteOptions) {
    this.socketPath = typeof where === "string" ? where : "";
    if (typeof where !== "string") this.remote = { url: where.url, token: where.token, ca: where.ca };
  }

  private http(signal?: AbortSignal): HttpOptions {
    return this.remote ? { ...this.remote, signal } : { socketPath: this.socketPath, signal };
  }

  info(signal?: AbortSignal): Promise<DaemonInfo> {
    return requestJson(this.http(signal), "GET", "/v1/info");
  }

  list(signal?: AbortSignal): Promise<VmView[]> {
    return requestJson(this.http(signal), "GET", "/v1/vms");
  }

  get(ref: string, signal?: AbortSignal): Promise<VmView> {
    return requestJson(this.http(signal), "GET", `/v1/vms/${enc(ref)}`);
  }

  create(spec: VmSpecInput, signal?: AbortSignal): Promise<VmView> {
    return requestJson(this.http(signal), "POST", "/v1/vms", spec);
  }

  start(ref: string, signal?: AbortSignal): Promise<VmView> {
    return requestJson(this.http(signal), "POST", `/v1/vms/${enc(ref)}/start`);
  }

  /** Starts the VM and follows its command's output to its exit. */
  async startAttached(ref: string, onEvent: (e: AttachEvent | { type: "started"; vm: VmView }) => void, signal?: AbortSignal): Promise<ExitEvent> {
    return this.followStream(`/v1/vms/${enc(ref)}/start?attach=true`, onEvent, signal);
  }

  /** Follows a VM's command from the beginning of its kept output to its exit. */
  attach(ref: string, onEvent: (e: AttachEvent) => void, signal?: AbortSignal): Promise<ExitEvent> {
    return this.followStream(`/v1/vms/${enc(ref)}/attach`, onEvent, signal);
  }

  private async followStream(path: string, onEvent: (e: never) => void, signal?: AbortSignal): Promise<ExitEvent> {
    let exit: ExitEvent | undefined;
    await requestStream(this.http(signal), "POST", path, undefined, (v) => {
      if (v.type === "error") throw errorFromBody(undefined, v);
      if (v.type === "exit") exit = v as unknown as ExitEvent;
      (onEvent as (e: unknown) => void)(v);
    });
    if (!exit) throw new DaemonDisconnectedError("the daemon closed the stream before the command ended", { hint: "the daemon may have restarted; mvm ps shows the VM's state" });
    return exit;
  }

  stop(ref: string, signal?: AbortSignal): Promise<VmView> {
    return requestJson(this.http(signal), "POST", `/v1/vms/${enc(ref)}/stop`);
  }

  kill(ref: string, signal?: AbortSignal): Promise<VmView> {
    return requestJson(this.http(signal), "POST", `/v1/vms/${enc(ref)}/kill`);
  }

  pause(ref: string, signal?: AbortSignal): Promise<VmView> {
    return requestJson(this.http(signal), "POST", `/v1/vms/${enc(ref)}/pause`);
  }

  /** Unfreezes a paused VM, or brings a suspended one back from its saved state (in a new QEMU). */
  resume(ref: string, signal?: AbortSignal): Promise<VmView> {
    return requestJson(this.http(signal), "POST", `/v1/vms/${enc(ref)}/resume`);
  }

  /** Saves a running or paused VM's whole state to disk and ends its QEMU; resume() brings it back. */
  suspend(ref: string, signal?: AbortSignal): Promise<VmView> {
    return requestJson(this.http(signal), "POST", `/v1/vms/${enc(ref)}/suspend`);
  }

  /**
   * Changes the VM's limits (diskBps, diskIops, netBps, cpuShare, cpuMax, memoryMax; null removes one): at
   * once on a running or paused VM, and for every later start. The view's `limits` are those now in effect.
   */
  setLimits(ref: string, limits: LimitsPatch, signal?: AbortSignal): Promise<VmView> {
    return requestJson(this.http(signal), "PATCH", `/v1/vms/${enc(ref)}/limits`, limits);
  }

  /**
   * A new time to live for the VM, from now: seconds or "10m", "1h30m"; null: none. The daemon kills and
   * removes the VM at the view's `expiresAt`.
   */
  setTtl(ref: string, ttl: number | string | null, signal?: AbortSignal): Promise<VmView> {
    return requestJson(this.http(signal), "PUT", `/v1/vms/${enc(ref)}/ttl`, { ttl });
  }

  async remove(ref: string, options: { force?: boolean; signal?: AbortSignal } = {}): Promise<void> {
    await requestJson(this.http(options.signal), "DELETE", `/v1/vms/${enc(ref)}${options.force ? "?force=true" : ""}`);
  }

  prune(signal?: AbortSignal): Promise<{ removed: string[] }> {
    return requestJson(this.http(signal), "POST", "/v1/prune");
  }

  /**
   * The daemon's events as they happen (VM states, commands, images, snapshots), each with its id: pass the
   * last id seen as `since` to resume after it. Ends when the daemon closes the stream or `signal` aborts.
   */
  async *events(o: EventsOptions = {}): AsyncGenerator<StreamedEvent> {
    try {
      yield* readEvents(await requestBody(this.http(o.signal), eventsPath(o)), o.signal);
    } catch (e) {
      if (!o.signal?.aborted) throw e;
    }
  }

  /** One VM's figures now: QEMU's CPU seconds, memory, disk I/O, tap counters, uptime, boot timings. */
  stats(ref: string, signal?: AbortSignal): Promise<VmStats> {
    return requestJson(this.http(signal), "GET", `/v1/vms/${enc(ref)}/stats`);
  }

  /** One VM's CPU seconds, CPU % and RSS over the last 5 minutes, as the daemon sampled them every 5 s (oldest first). */
  statsHistory(ref: string, signal?: AbortSignal): Promise<VmStatsHistory> {
    return requestJson(this.http(signal), "GET", `/v1/vms/${enc(ref)}/stats/history`);
  }

  /** The VMs' CPU % and RSS summed, and the machine's CPU and memory, over the last 5 minutes (a user token: its own VMs, no machine). */
  hostStatsHistory(signal?: AbortSignal): Promise<HostStatsHistory> {
    return requestJson(this.http(signal), "GET", "/v1/host/stats/history");
  }

  wait(ref: string, signal?: AbortSignal): Promise<ExitEvent> {
    return requestJson(this.http(signal), "POST", `/v1/vms/${enc(ref)}/wait`);
  }

  /**
   * Runs a command in a running VM; output streams to the callbacks, stdout and stderr apart. Resolves
   * with the result (exit code, signal, status, durationMs, timedOut); rejects with VM_GONE when the VM
   * went away meanwhile, and with check, COMMAND_FAILED / COMMAND_TIMED_OUT.
   */
  async exec(ref: string, argv: string[], o: ExecRequestOptions = {}): Promise<ExecResult> {
    let result: ExecResult | undefined;
    const input = o.input === undefined ? undefined : Buffer.from(o.input).toString("base64");
    await requestStream(this.http(o.signal), "POST", `/v1/vms/${enc(ref)}/exec`, { argv, env: o.env, cwd: o.cwd, user: o.user, input, timeoutMs: o.timeoutMs }, (v) => {
      if (v.type === "session") o.onSession?.({ id: v.id as string, signal: (signo) => this.signal(ref, v.id as string, signo) });
      else if (v.type === "stdout") o.onStdout?.(Buffer.from(v.data as string, "base64"));
      else if (v.type === "stderr") o.onStderr?.(Buffer.from(v.data as string, "base64"));
      else if (v.type === "exit") result = v as unknown as ExecResult;
      else if (v.type === "error") throw errorFromBody(undefined, v);
    });
    if (!result) throw new DaemonDisconnectedError("the daemon closed the stream before the command ended", { hint: "the VM may have stopped; mvm ps shows its state" });
    return o.check ? checkResult(argv, result) : result;
  }

  /**
   * Starts a command in the background: it keeps running when this client goes away. The handle waits,
   * kills, writes stdin and reads output (async iterators); client.command(vm, id) finds it again.
   */
  async spawn(ref: string, argv: string[], o: SpawnOptions = {}): Promise<Command> {
    const info = await requestJson<SessionInfo>(this.http(o.signal), "POST", `/v1/vms/${enc(ref)}/exec`, {
      argv, env: o.env, cwd: o.cwd, user: o.user, timeoutMs: o.timeoutMs, background: true, stdin: o.stdin,
    });
    return new Command((s) => this.http(s), ref, info.id);
  }

  /** A handle on a command by its session id (from spawn, or mvm session ls). */
  command(ref: string, id: string): Command {
    return new Command((s) => this.http(s), ref, id);
  }

  /** The VM's commands: running ones, and background ones that ended and were not removed. */
  sessions(ref: string, signal?: AbortSignal): Promise<SessionInfo[]> {
    return requestJson(this.http(signal), "GET", `/v1/vms/${enc(ref)}/sessions`);
  }

  /** The files of a running VM: read, write, list, stat, mkdir, rename, remove, chmod, chown, symlink. */
  files(ref: string): GuestFiles {
    return new GuestFiles((s) => this.http(s), ref);
  }

  /** The serial console log, or the command's output log (NDJSON events) when console is false. */
  logs(ref: string, o: { console?: boolean; follow?: boolean; onData: (chunk: Buffer) => void; onEvent?: (e: AttachEvent) => void; signal?: AbortSignal }): Promise<void> {
    const q = `console=${o.console ? "true" : "false"}&follow=${o.follow ? "true" : "false"}`;
    if (o.console) return requestText(this.http(o.signal), `/v1/vms/${enc(ref)}/logs?${q}`, o.onData);
    return requestStream(this.http(o.signal), "GET", `/v1/vms/${enc(ref)}/logs?${q}`, undefined, (v) => o.onEvent?.(v as unknown as AttachEvent));
  }

  /**
   * Runs a command with stdin streamed as it comes (an upgraded connection): write() and end() feed its
   * stdin, signal() sends it signals; output goes to the callbacks; `result` settles when it ends.
   */
  async execStream(ref: string, argv: string[], o: Omit<ExecRequestOptions, "input" | "check"> & { tty?: { rows: number; cols: number } } = {}): Promise<ExecStream> {
    const socket = await openUpgrade(this.http(o.signal), `/v1/vms/${enc(ref)}/exec`, "mvm-exec");
    const send = (v: unknown) => socket.writable && socket.write(`${JSON.stringify(v)}\n`);
    send({ argv, env: o.env, cwd: o.cwd, user: o.user, timeoutMs: o.timeoutMs, tty: o.tty });
    const result = new Promise<ExecResult>((resolve, reject) => {
      let settled = false;
      createInterface({ input: socket }).on("line", (line) => {
        const v = JSON.parse(line) as Record<string, unknown>;
        if (v.type === "stdout") o.onStdout?.(Buffer.from(v.data as string, "base64"));
        else if (v.type === "stderr") o.onStderr?.(Buffer.from(v.data as string, "base64"));
        else if (v.type === "exit") {
          settled = true;
          resolve(v as unknown as ExecResult);
        } else if (v.type === "error") {
          settled = true;
          reject(errorFromBody(undefined, v));
        }
      });
      socket.on("close", () => settled || reject(new DaemonDisconnectedError("the daemon closed the exec stream before the command ended", { hint: "the VM may have stopped; mvm ps shows its state" })));
    });
    return {
      result,
      write: (data) => void send({ type: "stdin", data: Buffer.from(data).toString("base64") }),
      end: () => void send({ type: "eof" }),
      signal: (signo) => void send({ type: "signal", signal: signo }),
      resize: (rows, cols) => void send({ type: "resize", rows, cols }),
      close: () => socket.destroy(),
    };
  }

  networks(signal?: AbortSignal): Promise<Array<NetworkRecord & { vms: string[] }>> {
    return requestJson(this.http(signal), "GET", "/v1/networks");
  }

  createNetwork(name: string, o: { subnet?: string; nat?: boolean } = {}, signal?: AbortSignal): Promise<NetworkRecord> {
    return requestJson(this.http(signal), "POST", "/v1/networks", { name, ...o });
  }

  async removeNetwork(name: string, signal?: AbortSignal): Promise<void> {
    await requestJson(this.http(signal), "DELETE", `/v1/networks/${enc(name)}`);
  }

  /** Named volumes: host folders the host's root registered, which a spec shares as `NAME:/guest/dir[:ro]`. */
  volumes(signal?: AbortSignal): Promise<VolumeView[]> {
    return requestJson(this.http(signal), "GET", "/v1/volumes");
  }

  /** Registers an existing host folder (an absolute path on the daemon's host) as a named volume; the host's root only. */
  createVolume(name: string, path: string, o: { readOnly?: boolean } = {}, signal?: AbortSignal): Promise<VolumeView> {
    return requestJson(this.http(signal), "POST", "/v1/volumes", { name, path, ...(o.readOnly ? { readOnly: true } : {}) });
  }

  /** Removes a named volume no VM uses (WRONG_STATE naming them otherwise); its folder is left as it is. */
  async removeVolume(name: string, signal?: AbortSignal): Promise<void> {
    await requestJson(this.http(signal), "DELETE", `/v1/volumes/${enc(name)}`);
  }

  images(signal?: AbortSignal): Promise<ImageRecord[]> {
    return requestJson(this.http(signal), "GET", "/v1/images");
  }

  async removeImage(name: string, signal?: AbortSignal): Promise<void> {
    await requestJson(this.http(signal), "DELETE", `/v1/images/${enc(name)}`);
  }

  /** Registers an image from a file (qcow2, raw ext4, or a root filesystem tarball); progress lines as they come. */
  importImage(file: string, name: string, onProgress?: (line: string) => void, signal?: AbortSignal): Promise<ImageRecord> {
    return this.imageBuild("/v1/images/import", { file, name }, onProgress, signal);
  }

  /** Builds a Debian image with debootstrap (the daemon must run as root). */
  buildImage(o: { name?: string; suite?: string; packages?: string[] }, onProgress?: (line: string) => void, signal?: AbortSignal): Promise<ImageRecord> {
    return this.imageBuild("/v1/images/build", { distro: "debian", ...o }, onProgress, signal);
  }

  private async imageBuild(path: string, body: unknown, onProgress?: (line: string) => void, signal?: AbortSignal): Promise<ImageRecord> {
    let image: ImageRecord | undefined;
    await requestStream(this.http(signal), "POST", path, body, (v) => {
      if (v.type === "progress") onProgress?.(String(v.line));
      else if (v.type === "done") image = v.image as ImageRecord;
      else if (v.type === "error") throw errorFromBody(undefined, v);
    });
    if (!image) throw new DaemonDisconnectedError("the daemon closed the stream before the image was ready", { hint: "the daemon may have restarted; nothing was registered" });
    return image;
  }

  /**
   * Snapshots a running or paused VM: its memory, devices and root disk at one moment (the VM is stopped
   * meanwhile and runs on). create({snapshot: name}) makes VMs of it. Without a name one is made up.
   */
  createSnapshot(ref: string, o: { name?: string } = {}, signal?: AbortSignal): Promise<SnapshotView> {
    return requestJson(this.http(signal), "POST", `/v1/vms/${enc(ref)}/snapshots`, o.name === undefined ? {} : { name: o.name });
  }

  snapshots(signal?: AbortSignal): Promise<SnapshotView[]> {
    return requestJson(this.http(signal), "GET", "/v1/snapshots");
  }

  getSnapshot(name: string, signal?: AbortSignal): Promise<SnapshotView> {
    return requestJson(this.http(signal), "GET", `/v1/snapshots/${enc(name)}`);
  }

  async removeSnapshot(name: string, signal?: AbortSignal): Promise<void> {
    await requestJson(this.http(signal), "DELETE", `/v1/snapshots/${enc(name)}`);
  }

  /** Sends a signal to a command: an exec session's id, or "job" for the VM's own command. */
  async signal(ref: string, session: string, signo: number, signal?: AbortSignal): Promise<void> {
    await requestJson(this.http(signal), "POST", `/v1/vms/${enc(ref)}/sessions/${enc(session)}/signal`, { signal: signo });
  }

  /** API tokens: name, role, quota, made, last used, connections open (never the token). The host's root only. */
  tokens(signal?: AbortSignal): Promise<TokenView[]> {
    return requestJson(this.http(signal), "GET", "/v1/tokens");
  }

  /** Makes a token; the answer's `token` is shown this once (only its hash is kept). The host's root only. */
  createToken(name: string, o: { role?: "admin" | "user" | "read"; maxVms?: number; maxCpus?: number; maxMemory?: string | number } = {}, signal?: AbortSignal): Promise<TokenView & { token: string }> {
    return requestJson(this.http(signal), "POST", "/v1/tokens", { name, ...o });
  }

  /** Removes a token: its requests are refused from now on, and its open streams end. */
  async removeToken(name: string, signal?: AbortSignal): Promise<void> {
    await requestJson(this.http(signal), "DELETE", `/v1/tokens/${enc(name)}`);
  }

  /**
   * One TCP connection to a port inside the VM (127.0.0.1 in the guest unless address says otherwise), as
   * a Duplex; it goes through the daemon and the guest agent, so the VM needs no network.
   */
  forward(ref: string, port: number, o: { address?: string; signal?: AbortSignal } = {}): Promise<Duplex> {
    return openForward(this.http(o.signal), ref, port, o);
  }

  /** Listens on a local port (127.0.0.1 unless host says otherwise) and forwards each connection to the guest port. */
  portForward(ref: string, o: PortForwardOptions): Promise<PortForward> {
    return listenPortForward(() => this.http(), ref, o);
  }

  /** The VM's serial console as a raw duplex stream (a root shell on ttyS0, and all console output). */
  console(ref: string, signal?: AbortSignal): Promise<Duplex> {
    return openUpgrade(this.http(signal), `/v1/vms/${enc(ref)}/console`, "mvm-console");
  }

  /**
   * Creates and starts a VM and hands back a handle; `await using` removes it at the end of the scope.
   * With `snapshot: NAME` the VM starts as that snapshot's machine; `boot: "cold"` never clones a template.
   */
  async run(spec: VmSpecInput, signal?: AbortSignal): Promise<VmHandle> {
    const vm = await this.create(spec, signal);
    try {
      await this.start(vm.id, signal);
    } catch (e) {
      await this.remove(vm.id, { force: true }).catch(() => undefined);
      throw e;
    }
    return new VmHandle(this, vm.id, vm.name);
  }
}
