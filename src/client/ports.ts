// Guest ports from the library: one connection as a Duplex (an upgraded request to the daemon, so it works
// over the Unix socket and over TCP alike), a local listener that forwards each connection it accepts
// (what `mvm port-forward` runs), and a directory watch as an async iterable.

import { createServer, type AddressInfo, type Server, type Socket } from "node:net";
import type { Duplex } from "node:stream";
import { errorFromBody } from "../errors.js";
import { openUpgrade, streamLines, type HttpOptions } from "./http.js";

const enc = encodeURIComponent;

/** One TCP connection to `port` inside the VM; rejects with GUEST_PORT (nothing listens), AGENT_CAPABILITY... */
export function openForward(http: HttpOptions, ref: string, port: number, o: { address?: string } = {}): Promise<Duplex> {
  const q = o.address ? `?address=${enc(o.address)}` : "";
  return openUpgrade(http, `/v1/vms/${enc(ref)}/ports/${enc(String(port))}${q}`, "mvm-port");
}

export interface PortForwardOptions {
  guestPort: number;
  /** The local port; 0 or absent: any free one (see .port). */
  hostPort?: number;
  /** The local address to listen on: 127.0.0.1 unless given. */
  host?: string;
  /** An IP literal inside the guest to connect to: 127.0.0.1 unless given. */
  guestAddress?: string;
  /** Called when one forwarded connection could not be opened or failed (the local one is closed). */
  onError?: (e: Error, local: Socket) => void;
}

/** A local listener whose every connection is a connection to the guest port. */
export class PortForward {
  private readonly sockets = new Set<Socket>();

  constructor(
    private readonly server: Server,
    readonly guestPort: number,
  ) {
    server.on("connection", (s) => {
      this.sockets.add(s);
      s.once("close", () => this.sockets.delete(s));
    });
  }

  /** The local address it listens on. */
  get address(): string {
    return (this.server.address() as AddressInfo).address;
  }

  /** The local port it listens on (the one the system picked when hostPort was 0). */
  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  /** Stops listening and ends the connections under way. */
  close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

export async function listenPortForward(http: () => HttpOptions, ref: string, o: PortForwardOptions): Promise<PortForward> {
  const server = createServer({ allowHalfOpen: true, pauseOnConnect: true }, (local) => {
    local.on("error", () => undefined);
    openForward(http(), ref, o.guestPort, { address: o.guestAddress }).then(
      (remote) => {
        if (local.destroyed) return void remote.destroy();
        remote.on("error", () => local.destroy());
        local.on("close", () => remote.destroy());
        remote.on("close", () => local.destroy());
        local.pipe(remote);
        remote.pipe(local);
        local.resume();
      },
      (e: Error) => {
        o.onError?.(e, local);
        local.destroy();
      },
    );
  });
  const pf = new PortForward(server, o.guestPort);
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(o.hostPort ?? 0, o.host ?? "127.0.0.1", () => {
      server.off("error", reject);
      resolve();
    });
  });
  return pf;
}

export type FileWatchEvent =
  | { type: "create" | "write" | "remove" | "rename" | "chmod"; name: string }
  | { type: "overflow" }
  | { type: "limit"; name: string };

/** Events below a watched guest directory; close() (or breaking out of a for await) ends the watch. */
export class FileWatch implements AsyncIterable<FileWatchEvent> {
  constructor(
    private readonly lines: AsyncGenerator<Record<string, unknown>>,
    private readonly controller: AbortController,
  ) {}

  close(): void {
    this.controller.abort();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<FileWatchEvent> {
    try {
      for (;;) {
        let next: IteratorResult<Record<string, unknown>>;
        try {
          next = await this.lines.next();
        } catch (e) {
          if (this.controller.signal.aborted) return; // closed by us
          throw e;
        }
        if (next.done) return;
        const v = next.value;
        if (v.type === "error") throw errorFromBody(undefined, v);
        yield v as FileWatchEvent;
      }
    } finally {
      this.close();
    }
  }
}

export async function openWatch(http: (signal: AbortSignal) => HttpOptions, ref: string, path: string, o: { recursive?: boolean; signal?: AbortSignal } = {}): Promise<FileWatch> {
  const controller = new AbortController();
  o.signal?.addEventListener("abort", () => controller.abort(), { once: true });
  const q = `path=${enc(path)}${o.recursive ? "&recursive=true" : ""}`;
  const lines = streamLines(http(controller.signal), "GET", `/v1/vms/${enc(ref)}/files/watch?${q}`);
  const first = await lines.next(); // {type:"started"}, or the request's error thrown
  if (first.done) throw new Error("the watch stream ended before it started");
  return new FileWatch(lines, controller);
}
