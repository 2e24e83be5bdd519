// mvm events [--json] [--vm REF] [--type T...] [--since ID]: the daemon's events as they happen, one line
// each (NDJSON with --json), until interrupted or the daemon closes the stream.

import { connect } from "../../client/client.js";
import type { StreamedEvent } from "../../client/events.js";

export interface EventsFlags {
  json?: boolean;
  vm?: string;
  type?: string[];
  since?: string;
}

/** One event as a person reads it: time, type, what it is about, what happened. */
export function formatEvent(e: StreamedEvent): string {
  if (e.type === "reset") return `-- some events were lost (${e.reason}); going on from ${e.oldest ?? "now"}`;
  if (e.type === "overflow") return `-- disconnected: ${e.reason}`;
  const what = "vm" in e && e.vm ? `${e.vm.name} (${e.vm.id})` : "";
  const detail = (() => {
    switch (e.type) {
      case "vm.state":
        return `${e.from} → ${e.to}`;
      case "command.start":
        return `session ${e.session}${e.background ? " (background)" : ""}: ${e.argv.join(" ")}`;
      case "command.exit":
        return `session ${e.session}: ${e.error ? `failed (${e.error})` : `status ${e.status}`}`;
      case "image.progress":
        return `${e.op} ${e.image}: ${e.line}`;
      case "image.done":
        return `${e.op} ${e.image}: done`;
      case "image.error":
        return `${e.op} ${e.image}: ${e.error}: ${e.message}`;
      case "snapshot.created":
      case "snapshot.removed":
        return `snapshot ${e.snapshot}`;
      default:
        return "";
    }
  })();
  return [e.at, e.type.padEnd(16), what, detail].filter(Boolean).join("  ");
}

export async function eventsCommand(flags: EventsFlags): Promise<number> {
  const client = await connect();
  const abort = new AbortController();
  const onSignal = () => abort.abort();
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  try {
    const since = flags.since === undefined ? undefined : Number(flags.since);
    for await (const e of client.events({ vm: flags.vm, types: flags.type, since, signal: abort.signal })) {
      process.stdout.write(`${flags.json ? JSON.stringify(e) : formatEvent(e)}\n`);
    }
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
  return 0;
}
