// When is a VM ready? A pluggable wait: by default the agent's hello (mvm's own initramfs, or an image
// booted through it); for a user's own initrd without mvm's agent, a console line matching a pattern.
// Each wait runs under the launch's deadline and loses to QEMU exiting (see launch.ts).

import type { Socket } from "node:net";
import { AgentClient } from "../agent/client.js";
import type { Hello, IdentityRequest } from "../agent/messages.js";
import { withDeadline } from "../deadline.js";
import { AgentDisconnectedError } from "../errors.js";
import type { ConsoleTap } from "./console-tap.js";

/**
 * agent: the hello a booting agent sends. restored: a guest loaded from a saved state said hello long ago
 * (to another host), so it is asked: with `identity`, the clone's own clock, hostname and entropy go first
 * and the agent's answer is a fresh hello. console: a line matching a pattern.
 */
export type Readiness = { kind: "agent" } | { kind: "restored"; identity?: () => IdentityRequest } | { kind: "console"; pattern: string };

export const AGENT_READY: Readiness = { kind: "agent" };

export interface ReadyContext {
  agentConnected: Promise<Socket>;
  console: ConsoleTap;
  /** A QEMU found running: its agent may be running commands already, and its console said its piece long ago. */
  adopted: boolean;
  /** Rejects with QEMU's output once QEMU has exited. */
  exitedEarly: Promise<never>;
  now(): number;
}

export interface Ready {
  agent?: AgentClient;
  channel?: Socket;
  hello?: Hello;
  agentConnectedMs?: number;
  helloMs?: number;
}

export function waitReady(r: Readiness, ctx: ReadyContext): Promise<Ready> {
  if (r.kind === "console") return consoleLine(ctx, new RegExp(r.pattern));
  return agentHello(ctx, r.kind === "restored" ? r.identity : undefined);
}

async function agentHello(ctx: ReadyContext, identity?: () => IdentityRequest): Promise<Ready> {
  const channel = await ctx.agentConnected;
  const agentConnectedMs = ctx.now();
  const agent = new AgentClient(channel, { keepOrphans: ctx.adopted });
  try {
    const hello = await (identity ? agent.identity(identity()) : agent.hello());
    return { agent, channel, hello, agentConnectedMs, helloMs: ctx.now() };
  } catch (e) {
    agent.close();
    // The channel closing before hello means QEMU is going away: report that, with its output.
    if (e instanceof AgentDisconnectedError) await withDeadline(ctx.exitedEarly, { timeoutMs: 5000 }, "QEMU closed the agent channel but did not exit");
    throw e;
  }
}

/** Console lines longer than this are cut before matching: a guest cannot feed a pattern unbounded input. */
const LINE_CAP = 4096;

function consoleLine(ctx: ReadyContext, pattern: RegExp): Promise<Ready> {
  if (ctx.adopted) return Promise.resolve({});
  return new Promise<Ready>((resolve) => {
    let partial = "";
    const test = (text: string): boolean => {
      const lines = (partial + text).split(/\r?\n/);
      partial = lines.pop()!.slice(-LINE_CAP);
      return lines.some((l) => pattern.test(l.slice(0, LINE_CAP))) || pattern.test(partial);
    };
    const done = () => {
      off();
      resolve({ helloMs: ctx.now() });
    };
    const off = ctx.console.listen((b) => test(b.toString("latin1")) && done());
    // What came before this wait began (QEMU's stdout is read from spawn on).
    if (test(ctx.console.seen())) done();
  });
}
