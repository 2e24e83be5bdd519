// The Unix sockets mvm listens on before QEMU starts. QEMU connects to them (with reconnect), so nothing
// polls for a socket file to appear, and a restarted daemon only has to listen again to be found.

import { unlink } from "node:fs/promises";
import { createServer, type Server, type Socket } from "node:net";

/** Listens on a Unix socket path (replacing a stale socket file). */
export async function listenOn(path: string): Promise<Server> {
  await unlink(path).catch(() => undefined);
  const server = createServer();
  await new Promise<void>((resolve, reject) => server.listen(path, resolve).once("error", reject));
  return server;
}

/** The next connection the server accepts. */
export const nextConnection = (server: Server): Promise<Socket> => new Promise<Socket>((resolve) => server.once("connection", resolve));

/** The three channels of a VM, listening, with their first connections pending. */
export interface VmSockets {
  agent: Server;
  qmp: Server;
  console?: Server;
  agentConnected: Promise<Socket>;
  qmpConnected: Promise<Socket>;
}

export async function listenForVm(files: { agentSocket: string; qmpSocket: string; consoleSocket: string }, withConsole: boolean): Promise<VmSockets> {
  // Each first connection is awaited as soon as its socket listens: a running QEMU (one being adopted)
  // may connect to the agent socket while the others are still being set up, and a connection nobody
  // waits for yet would be accepted and lost (QEMU, connected, would not try again).
  const agent = await listenOn(files.agentSocket);
  const agentConnected = nextConnection(agent);
  const qmp = await listenOn(files.qmpSocket);
  const qmpConnected = nextConnection(qmp);
  const console = withConsole ? await listenOn(files.consoleSocket) : undefined;
  return { agent, qmp, console, agentConnected, qmpConnected };
}

export function closeVmSockets(s: VmSockets): void {
  s.agent.close();
  s.qmp.close();
  s.console?.close();
}
