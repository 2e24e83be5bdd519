// VMs' time to live: one timer per VM with an end time (its record's expiresAt); when it fires the VM is
// killed and removed. The end time lives in the record, so a daemon that restarts arms them all again
// (armAll at reconcile): one whose time passed while no daemon ran goes at once.

/** setTimeout holds at most 2^31-1 ms (~24.8 days); a longer wait is done in steps. */
const MAX_STEP_MS = 2 ** 31 - 1;

export class ExpiryTimers {
  private readonly timers = new Map<string, NodeJS.Timeout>();

  /** `expire(id)` removes the VM; its failure is logged, and the VM is tried again a minute later. */
  constructor(private readonly o: { expire: (id: string) => Promise<void>; log?: (line: string) => void; now?: () => number }) {}

  /** (Re-)arms the VM's timer for `expiresAt` (ISO), or disarms it when there is none. */
  arm(id: string, expiresAt: string | undefined): void {
    this.disarm(id);
    if (expiresAt === undefined) return;
    const at = Date.parse(expiresAt);
    if (!Number.isFinite(at)) return;
    const wait = at - (this.o.now ?? Date.now)();
    const step = Math.max(0, Math.min(wait, MAX_STEP_MS));
    const timer = setTimeout(() => {
      this.timers.delete(id);
      if (wait > MAX_STEP_MS) return this.arm(id, expiresAt);
      this.o.expire(id).catch((e: unknown) => {
        this.o.log?.(`removing VM ${id} at the end of its time to live failed: ${(e as Error).message}; trying again in a minute`);
        if (!this.timers.has(id)) this.arm(id, new Date((this.o.now ?? Date.now)() + 60_000).toISOString());
      });
    }, step);
    // A daemon stopping must not wait for a VM's end time.
    timer.unref();
    this.timers.set(id, timer);
  }

  disarm(id: string): void {
    const t = this.timers.get(id);
    if (t) clearTimeout(t);
    this.timers.delete(id);
  }

  /** At daemon start: every record's end time. */
  armAll(records: { id: string; expiresAt?: string }[]): void {
    for (const r of records) if (r.expiresAt !== undefined) this.arm(r.id, r.expiresAt);
  }

  /** VMs with a timer armed (for tests). */
  get armed(): string[] {
    return [...this.timers.keys()];
  }

  close(): void {
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
  }
}
