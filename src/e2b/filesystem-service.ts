// envd's filesystem.Filesystem service on the agent's file operations: Stat, MakeDir, Move, ListDir (with
// depth), Remove. Paths may be relative or start with ~: they resolve against the user's home. EntryInfo
// is envd's: the type by name, Go's FileMode bits, ls-style permissions, RFC 3339 times.

import { posix } from "node:path";
import type { FileEntry } from "../agent/messages.js";
import type { VmManager } from "../daemon/vm-manager.js";
import { E2bError } from "./errors.js";
import { homeOf, type SandboxRef } from "./process-service.js";

/** Go's os.FileMode type bits. */
const GO_MODE_DIR = 2 ** 31;
const GO_MODE_SYMLINK = 2 ** 27;

/** A request's path as an absolute guest path: relative and ~ against the user's home. */
export function resolvePath(path: unknown, user: string): string {
  if (typeof path !== "string" || !path) throw new E2bError("path must be a non-empty string", "invalid_argument");
  if (path.includes("\0") || Buffer.byteLength(path) >= 4096) throw new E2bError("path has a NUL byte or is over 4095 bytes", "invalid_argument");
  const home = homeOf(user);
  const expanded = path === "~" ? home : path.startsWith("~/") ? `${home}/${path.slice(2)}` : path;
  return posix.resolve(home, expanded);
}

function permissions(e: FileEntry): string {
  const kind = e.type === "dir" ? "d" : e.type === "symlink" ? "L" : "-";
  let out = "";
  for (let shift = 6; shift >= 0; shift -= 3) {
    const bits = (e.mode >> shift) & 7;
    out += `${bits & 4 ? "r" : "-"}${bits & 2 ? "w" : "-"}${bits & 1 ? "x" : "-"}`;
  }
  return kind + out;
}

const owner = (id: number) => (id === 0 ? "root" : String(id));

/** envd's EntryInfo of an agent entry at `path`. */
export function entryInfo(e: FileEntry, path: string): Record<string, unknown> {
  const type = e.type === "file" ? "FILE_TYPE_FILE" : e.type === "dir" ? "FILE_TYPE_DIRECTORY" : e.type === "symlink" ? "FILE_TYPE_SYMLINK" : "FILE_TYPE_UNSPECIFIED";
  return {
    name: posix.basename(path),
    type,
    path,
    size: e.size,
    mode: (e.mode & 0o777) + (e.type === "dir" ? GO_MODE_DIR : 0) + (e.type === "symlink" ? GO_MODE_SYMLINK : 0),
    permissions: permissions(e),
    owner: owner(e.uid),
    group: owner(e.gid),
    modifiedTime: new Date(e.mtimeMs).toISOString(),
    ...(e.target ? { symlinkTarget: e.target } : {}),
  };
}

export class FilesystemService {
  constructor(private readonly manager: VmManager) {}

  private agent(sbx: SandboxRef) {
    return this.manager.agentFor(sbx.vmId, "files").agent;
  }

  private async stat(sbx: SandboxRef, path: string): Promise<FileEntry> {
    const [e] = await this.agent(sbx).fileOp({ op: "stat", path });
    if (!e) throw new E2bError(`${path} not found`, "not_found");
    return e;
  }

  async call(method: string, sbx: SandboxRef, msg: Record<string, unknown>): Promise<Record<string, unknown>> {
    const agent = this.agent(sbx);
    switch (method) {
      case "Stat": {
        const path = resolvePath(msg.path, sbx.user);
        return { entry: entryInfo(await this.stat(sbx, path), path) };
      }
      case "MakeDir": {
        const path = resolvePath(msg.path, sbx.user);
        const there = await this.stat(sbx, path).catch(() => undefined);
        if (there) throw new E2bError(`${path} already exists`, "already_exists");
        await agent.fileOp({ op: "mkdir", path, parents: true, ...(sbx.user === "root" ? {} : { owner: sbx.user }) });
        return { entry: entryInfo(await this.stat(sbx, path), path) };
      }
      case "Move": {
        const source = resolvePath(msg.source, sbx.user);
        const destination = resolvePath(msg.destination, sbx.user);
        await agent.fileOp({ op: "rename", path: source, path2: destination });
        return { entry: entryInfo(await this.stat(sbx, destination), destination) };
      }
      case "ListDir": {
        const path = resolvePath(msg.path, sbx.user);
        const depth = msg.depth === undefined ? 1 : Number(msg.depth);
        if (!Number.isInteger(depth) || depth < 1 || depth > 1000) throw new E2bError("depth must be 1 to 1000", "invalid_argument");
        const dir = await this.stat(sbx, path);
        if (dir.type !== "dir") throw new E2bError(`${path} is not a directory`, "invalid_argument");
        const entries = await agent.fileOp({ op: "list", path, depth });
        return { entries: entries.map((e) => entryInfo(e, posix.join(path, e.name))) };
      }
      case "Remove": {
        const path = resolvePath(msg.path, sbx.user);
        await agent.fileOp({ op: "remove", path, recursive: true });
        return {};
      }
      default:
        throw new E2bError(`filesystem.Filesystem/${method} is not implemented by mvm's envd`, "unimplemented");
    }
  }
}
