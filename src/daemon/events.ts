// The daemon's event bus: what happens to VMs, commands, images and snapshots, published where it happens
// (VmStore's transitions, the session registry, the image manager, the VM manager) and delivered to the
// subscribers of GET /v1/events. Each event gets an id, increasing for the daemon's whole life and across
// restarts (the first is the daemon's start in microseconds), and the last `keep` events stay in a ring
// buffer so that a client that reconnects resumes after the last id it saw. Publishing never throws and
// never waits: a subscriber that fails is dropped, one that is slow is its own stream's problem
// (event-routes.ts cuts it off).

import type { EventType, MvmEvent } from "../api/event-schemas.js";

export type { EventType, MvmEvent };

/** An event as the bus keeps it: the event and its id. */
export interface Published {
  id: number;
  event: MvmEvent;
}

/** What publish() takes: an event without its time (the bus stamps it). */
export type EventInput = MvmEvent extends infer E ? (E extends MvmEvent ? Omit<E, "at"> : never) : never;

export interface Replay {
  events: Published[];
  /** Set when events after `since` are no longer kept (the ring moved on, or they were a previous daemon's). */
  gap?: { requested: number; oldest: number | null };
}

/** Events kept for clients that resume (docs/api.md): a few minutes of a busy daemon. */
export const DEFAULT_KEEP = 1000;

export class EventBus {
  private readonly ring: Array<Published | undefined>;
  /** Where the next event goes in the ring, and how many it holds. */
  private head = 0;
  private size = 0;
  private next: number;
  private readonly listeners = new Set<(p: Published) => void>();

  constructor(
    readonly keep = DEFAULT_KEEP,
    firstId = Date.now() * 1000,
  ) {
    this.ring = new Array<Published | undefined>(keep);
    this.next = firstId;
  }

  /** The id the last event got (one below the first id while there was none). */
  get lastId(): number {
    return this.next - 1;
  }

  publish(e: EventInput): Published {
    const p: Published = { id: this.next++, event: { ...e, at: new Date().toISOString() } };
    this.ring[this.head] = p;
    this.head = (this.head + 1) % this.keep;
    this.size = Math.min(this.size + 1, this.keep);
    for (const l of [...this.listeners]) {
      try {
        l(p);
      } catch {
        this.listeners.delete(l);
      }
    }
    return p;
  }

  /** Calls `listener` with every event published from now on; returns the unsubscribe function. */
  subscribe(listener: (p: Published) => void): () => void {
    this.listeners.add(listener);
    return () => void this.listeners.delete(listener);
  }

  get subscribers(): number {
    return this.listeners.size;
  }

  /** The kept events, oldest first. */
  kept(): Published[] {
    const out: Published[] = [];
    for (let i = 0; i < this.size; i++) out.push(this.ring[(this.head - this.size + i + this.keep) % this.keep]!);
    return out;
  }

  /**
   * The kept events after `since`. A gap is reported when some ids between `since` and the oldest kept were
   * lost (they fell out of the ring, or belong to a daemon before this one): those are not coming. An id
   * this daemon has not reached yet (a previous daemon's, under a clock that went back) is a gap too, and
   * everything kept follows it.
   */
  since(since: number): Replay {
    const all = this.kept();
    const oldest = all[0]?.id ?? null;
    if (since > this.lastId) return { events: all, gap: { requested: since, oldest } };
    const events = all.filter((p) => p.id > since);
    return since + 1 < (oldest ?? this.next) ? { events, gap: { requested: since, oldest } } : { events };
  }
}

/** The VM an event is about, if any: what ownership filters look at. */
export const vmOf = (e: MvmEvent): { id: string; name: string } | undefined => ("vm" in e ? e.vm : undefined);

/**
 * A filter from ?types=: exact types, or prefixes ending in '.' (vm. matches vm.created, vm.state...).
 * Returns undefined for no filter; throws the unknown names for the route to refuse.
 */
export function typeFilter(spec: string | undefined, known: readonly string[]): ((t: string) => boolean) | undefined {
  if (spec === undefined || spec.trim() === "") return undefined;
  const wanted = spec.split(",").map((s) => s.trim()).filter(Boolean);
  const unknown = wanted.filter((w) => (w.endsWith(".") ? !known.some((k) => k.startsWith(w)) : !known.includes(w)));
  if (unknown.length) throw new UnknownEventTypes(unknown);
  return (t) => wanted.some((w) => (w.endsWith(".") ? t.startsWith(w) : t === w));
}

export class UnknownEventTypes extends Error {
  constructor(readonly names: string[]) {
    super(`unknown event type ${names.join(", ")}`);
  }
}
