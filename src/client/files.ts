// Files in a running VM, for library users: vm.files.read/write/list/stat/mkdir/rename/remove/... Every
// transfer is checksummed here and compared with the guest's CRC-32, so a copy that arrives is the copy sent.

import { crc32, crc32Hex } from "../api/crc32.js";
import type { Readable } from "node:stream";
import type { FileEntry } from "../api/resource-schemas.js";
import type { TransferResult } from "../api/resource-schemas.js";
import { errorFromBody, FileNotFoundError, IntegrityError } from "../errors.js";
import { requestBody, requestJson, requestUpload, type HttpOptions } from "./http.js";
import { openWatch, type FileWatch } from "./ports.js";

export type { FileEntry, TransferResult };

export interface WriteOptions {
  /** Permission bits for the file (default: kept when replacing a file, else 0644). */
  mode?: number;
  /** "user[:group]" by name or number (default: kept when replacing, else root). */
  owner?: string;
  /** Make missing parent directories. */
  parents?: boolean;
  /** Fail with FILE_EXISTS rather than replace an existing file. */
  exclusive?: boolean;
  /** Called with each chunk's size as it is sent, for progress. */
  onProgress?: (bytes: number) => void;
  signal?: AbortSignal;
}

export type WriteData = Buffer | string | Uint8Array | Readable | AsyncIterable<Buffer>;

const enc = encodeURIComponent;

/** The data as a stream of buffers; big buffers in 1 MiB slices, so sending starts at once and overlaps. */
export async function* chunks(data: WriteData): AsyncIterable<Buffer> {
  const SLICE = 1024 * 1024;
  if (typeof data === "string" || data instanceof Uint8Array) {
    const b = typeof data === "string" ? Buffer.from(data) : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    for (let at = 0; at < b.length; at += SLICE) yield b.subarray(at, at + SLICE);
    if (b.length === 0) yield b;
  } else for await (const c of data as AsyncIterable<Buffer | string>) yield typeof c === "string" ? Buffer.from(c) : c;
}

export class GuestFiles {
  constructor(
    private readonly http: (signal?: AbortSignal) => HttpOptions,
    private readonly ref: string,
  ) {}

  private op(op: string, body: Record<string, unknown>, signal?: AbortSignal): Promise<{ entries: FileEntry[] }> {
    return requestJson(this.http(signal), "POST", `/v1/vms/${enc(this.ref)}/files/${op}`, body);
  }

  /**
   * Watches a directory: `for await (const e of await files.watch("/srv", { recursive: true }))` gets
   * {type: create|write|remove|rename|chmod, name} (relative to the path), and overflow or limit when
   * events were lost or a directory left out; close() ends it. A path that is no directory is refused.
   */
  watch(path: string, o: { recursive?: boolean; signal?: AbortSignal } = {}): Promise<FileWatch> {
    return openWatch((s) => this.http(s), this.ref, path, o);
  }

  /** The entry at a path, not following a final symlink; FILE_NOT_FOUND if there is none. */
  async stat(path: string, signal?: AbortSignal): Promise<FileEntry> {
    return (await this.op("stat", { path }, signal)).entries[0]!;
  }

  async exists(path: string, signal?: AbortSignal): Promise<boolean> {
    try {
      await this.stat(path, signal);
      return true;
    } catch (e) {
      if (e instanceof FileNotFoundError) return false;
      throw e;
    }
  }

  /** A directory's entries, names relative to it; depth 1 (default) is its own, 0 is everything below. Symlinks are not followed. */
  async list(path: string, o: { depth?: number; signal?: AbortSignal } = {}): Promise<FileEntry[]> {
    return (await this.op("list", { path, depth: o.depth }, o.signal)).entries;
  }

  async mkdir(path: string, o: { parents?: boolean; mode?: number; owner?: string; signal?: AbortSignal } = {}): Promise<void> {
    await this.op("mkdir", { path, parents: o.parents, mode: o.mode, owner: o.owner }, o.signal);
  }

  async rename(from: string, to: string, o: { parents?: boolean; signal?: AbortSignal } = {}): Promise<void> {
    await this.op("rename", { path: from, to, parents: o.parents }, o.signal);
  }

  /** Removes a file, a symlink, or an empty directory; with recursive, a directory and all below it. */
  async remove(path: string, o: { recursive?: boolean; signal?: AbortSignal } = {}): Promise<void> {
    await this.op("remove", { path, recursive: o.recursive }, o.signal);
  }

  async chmod(path: string, mode: number, signal?: AbortSignal): Promise<void> {
    await this.op("chmod", { path, mode }, signal);
  }

  async chown(path: string, owner: string, signal?: AbortSignal): Promise<void> {
    await this.op("chown", { path, owner }, signal);
  }

  async symlink(path: string, target: string, o: { parents?: boolean; signal?: AbortSignal } = {}): Promise<void> {
    await this.op("symlink", { path, target, parents: o.parents }, o.signal);
  }

  /**
   * Streams a file's bytes to onData (e.g. a host file), and resolves once the last byte arrived and
   * its CRC-32 matches the guest's. The whole file never sits in memory.
   */
  async readTo(path: string, onData: (chunk: Buffer) => void | Promise<void>, signal?: AbortSignal): Promise<TransferResult & { mode: number }> {
    const res = await requestBody(this.http(signal), `/v1/vms/${enc(this.ref)}/files/content?path=${enc(path)}`);
    let crc = 0;
    let size = 0;
    for await (const chunk of res as AsyncIterable<Buffer>) {
      crc = crc32(chunk, crc);
      size += chunk.length;
      await onData(chunk);
    }
    const error = res.trailers["x-mvm-error"];
    if (error) throw errorFromBody(undefined, JSON.parse(error) as Record<string, unknown>);
    const mine = crc32Hex(crc);
    const theirs = res.trailers["x-mvm-crc32"];
    if (!res.complete || theirs !== mine) {
      throw new IntegrityError(`${path} arrived damaged or cut short: ${size} bytes with CRC-32 ${mine}, the guest sent ${theirs ?? "no checksum"}`, {
        hint: "copy it again; the daemon may have restarted or the VM stopped",
      });
    }
    return { size, crc32: mine, mode: parseInt(String(res.headers["x-mvm-mode"] ?? "644"), 8) };
  }

  /** A whole file as a Buffer (use readTo for big ones). */
  async read(path: string, signal?: AbortSignal): Promise<Buffer> {
    const parts: Buffer[] = [];
    await this.readTo(path, (c) => void parts.push(c), signal);
    return Buffer.concat(parts);
  }

  async readText(path: string, signal?: AbortSignal): Promise<string> {
    return (await this.read(path, signal)).toString("utf8");
  }

  /**
   * Writes a file from a buffer, a string or a stream. The guest writes a temporary file beside it and
   * renames it into place once complete and checked, so readers never see half a file.
   */
  async write(path: string, data: WriteData, o: WriteOptions = {}): Promise<TransferResult> {
    const q = new URLSearchParams({ path });
    if (o.mode !== undefined) q.set("mode", o.mode.toString(8));
    if (o.owner !== undefined) q.set("owner", o.owner);
    if (o.parents) q.set("parents", "true");
    if (o.exclusive) q.set("exclusive", "true");
    let crc = 0;
    let size = 0;
    const r = await requestUpload<TransferResult>(this.http(o.signal), "PUT", `/v1/vms/${enc(this.ref)}/files/content?${q.toString()}`, chunks(data), (c) => {
      crc = crc32(c, crc);
      size += c.length;
      o.onProgress?.(c.length);
    });
    const mine = crc32Hex(crc);
    if (r.crc32 !== mine || r.size !== size) {
      throw new IntegrityError(`the guest stored ${r.size} bytes with CRC-32 ${r.crc32}; ${size} bytes with ${mine} were sent`, { hint: "write it again" });
    }
    return r;
  }
}
