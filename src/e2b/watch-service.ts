// envd's filesystem.Filesystem/WatchDir on the agent's inotify watch: {start:{}}, then one
// {filesystem:{name, type}} per change (names relative to the watched directory), keepalives; the watch
// ends when the client goes away. A guest whose agent has no "watch" capability is refused with its error.

import type { IncomingMessage, ServerResponse } from "node:http";
import type { WatchEvent } from "../agent/watch-session.js";
import type { VmManager } from "../daemon/vm-manager.js";
import { ConnectStream } from "./connect-stream.js";
import { resolvePath } from "./filesystem-service.js";
import type { SandboxRef } from "./process-service.js";

const TYPES: Record<string, string> = { create: "EVENT_TYPE_CREATE", write: "EVENT_TYPE_WRITE", remove: "EVENT_TYPE_REMOVE", rename: "EVENT_TYPE_RENAME", chmod: "EVENT_TYPE_CHMOD" };

export async function watchDir(manager: VmManager, sbx: SandboxRef, msg: Record<string, unknown>, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const path = resolvePath(msg.path, sbx.user);
  const { agent } = manager.agentFor(sbx.vmId, "files");
  // Resolves once the guest watches it: a missing path or a file fails here, before the stream's 200.
  const watch = await agent.watch(path, { recursive: msg.recursive === true });
  const stream = new ConnectStream(req, res, { keepalive: {} });
  stream.onClose = () => watch.close();
  stream.send({ start: {} });
  try {
    for await (const e of watch as AsyncIterable<WatchEvent>) {
      if (stream.closed) break;
      if (e.type === "overflow" || e.type === "limit") continue; // envd has no event for these: changes were missed
      stream.send({ filesystem: { name: e.name, type: TYPES[e.type] } });
    }
    stream.end();
  } catch (e) {
    stream.end(e);
  } finally {
    watch.close();
  }
}
