// A VM command's output: kept in job.log in the VM's directory, capped (when the file passes the cap it
// becomes job.log.1 and a new one starts, so at most twice the cap is kept), and fanned out to attached
// clients as it arrives. Each entry is one NDJSON line saying which stream it came from.

import { appendFileSync, readFileSync, renameSync, statSync } from "node:fs";
import { join } from "node:path";

export interface OutputEvent {
  type: "stdout" | "stderr";
  /** base64, so binary output survives JSON. */
  data: string;
}

export class JobLog {
  private readonly listeners = new Set<(e: OutputEvent) => void>();
  private size: number;

  constructor(
    private readonly dir: string,
    private readonly cap = 1024 * 1024,
  ) {
    try {
      this.size = statSync(this.path).size;
    } catch {
      this.size = 0;
    }
  }

  get path(): string {
    return join(this.dir, "job.log");
  }

  write(type: OutputEvent["type"], chunk: Buffer): void {
    const event: OutputEvent = { type, data: chunk.toString("base64") };
    const line = `${JSON.stringify(event)}\n`;
    if (this.size + line.length > this.cap && this.size > 0) {
      renameSync(this.path, `${this.path}.1`);
      this.size = 0;
    }
    appendFileSync(this.path, line, { mode: 0o600 });
    this.size += line.length;
    for (const l of this.listeners) l(event);
  }

  subscribe(listener: (e: OutputEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Everything kept so far, oldest first. */
  history(): OutputEvent[] {
    const read = (p: string) => {
      try {
        return readFileSync(p, "utf8");
      } catch {
        return "";
      }
    };
    return (read(`${this.path}.1`) + read(this.path))
      .split("\n")
      .filter(Boolean)
      .map((l) => JSON.parse(l) as OutputEvent);
  }
}
