// The messages of an interactive exec stream, whatever carries them: NDJSON lines on an upgraded
// connection (upgrades.ts, Upgrade: mvm-exec) or text messages on a WebSocket (websocket.ts). The first
// message is the exec request; the ones after it feed the command: {type:"stdin",data} (base64),
// {type:"eof"}, {type:"signal",signal}, {type:"resize",rows,cols}. Anything else is ignored.

import { Value } from "@sinclair/typebox/value";
import { SignalBodySchema } from "../api/command-schemas.js";
import { BadRequestError } from "../errors.js";
import { execOptions } from "./exec-routes.js";
import type { TrackedSession } from "./session-registry.js";
import type { VmManager } from "./vm-manager.js";

/** A terminal size from a client: whole rows and columns, 1-65535 each. */
export function ttySize(v: unknown): { rows: number; cols: number } {
  const t = v as { rows?: unknown; cols?: unknown };
  const ok = (n: unknown) => Number.isInteger(n) && (n as number) >= 1 && (n as number) <= 65535;
  if (!t || !ok(t.rows) || !ok(t.cols)) throw new BadRequestError(`a terminal size needs rows and cols (1-65535), not ${JSON.stringify(v)}`);
  return { rows: t.rows as number, cols: t.cols as number };
}

/** The stream's first message: the command to run (checked against the exec body's schema), stdin open. */
export function startStreamExec(manager: VmManager, ref: string, msg: Record<string, unknown>): TrackedSession {
  const tty = msg.tty === undefined ? undefined : ttySize(msg.tty);
  return manager.exec(ref, { ...execOptions(msg), background: false, stdin: true, tty });
}

/**
 * One message after the first. Stdin is taken as fast as the guest takes it: `input.pause()` holds the
 * client's further messages until this chunk is in, `input.resume()` lets them come again.
 */
export function applyExecMessage(t: TrackedSession, msg: Record<string, unknown>, input: { pause: () => void; resume: () => void }): void {
  const s = t.session;
  if (msg.type === "stdin" && typeof msg.data === "string") {
    input.pause();
    void s.write(Buffer.from(msg.data, "base64")).catch(() => undefined).finally(() => input.resume());
  } else if (msg.type === "eof") {
    void s.end().catch(() => undefined);
  } else if (msg.type === "signal" && Value.Check(SignalBodySchema, { signal: msg.signal })) {
    // As POST .../signal takes them (1-64); anything else is ignored, as a bad resize is.
    s.kill(msg.signal as number);
  } else if (msg.type === "resize") {
    try {
      const { rows, cols } = ttySize(msg);
      s.resize(rows, cols);
    } catch {
      /* a bad size from a terminal is ignored, as a terminal would */
    }
  }
}
