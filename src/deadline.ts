// Every wait in mvm has a deadline: a guest may hang, a QEMU may never answer.

import { AbortError, TimeoutError } from "./errors.js";

/** Races a promise against a timeout and an AbortSignal, failing with TimeoutError or AbortError. */
export function withDeadline<T>(p: Promise<T>, options: { timeoutMs?: number; signal?: AbortSignal }, what: string): Promise<T> {
  const { timeoutMs, signal } = options;
  if (timeoutMs === undefined && !signal) return p;
  return new Promise<T>((resolve, reject) => {
    const timer =
      timeoutMs === undefined
        ? undefined
        : setTimeout(() => { cleanup(); reject(new TimeoutError(`${what} within ${timeoutMs} ms`)); }, timeoutMs);
    const onAbort = () => { cleanup(); reject(new AbortError(`${what}: aborted`, { cause: signal?.reason })); };
    const cleanup = () => { clearTimeout(timer); signal?.removeEventListener("abort", onAbort); };
    // Subscribed first: a promise given to an already-aborted wait must not reject unhandled later.
    p.then((v) => { cleanup(); resolve(v); }, (e: Error) => { cleanup(); reject(e); });
    if (signal?.aborted) return onAbort();
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
