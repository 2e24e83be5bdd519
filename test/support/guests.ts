// Integration-test helpers: boot real guests under TCG, keep their console on failure, and make sure no
// QEMU a test started survives it.
import assert from "node:assert/strict";
import { after } from "node:test";
import { ensureGuestArtifacts, type GuestArtifacts } from "../../src/guest/artifacts.js";
import { launchGuest, type Guest, type LaunchOptions } from "../../src/vm/launch.js";

let artifacts: Promise<GuestArtifacts> | undefined;
const started = new Set<Guest>();

/** The cached guest kernel and initramfs (built on first use; scripts/setup.sh builds them up front). */
export function guestArtifacts(): Promise<GuestArtifacts> {
  artifacts ??= ensureGuestArtifacts({ onProgress: (l) => process.stderr.write(`${l}\n`) });
  return artifacts;
}

/**
 * Boots a guest for a test. Pass the test's `t.after` as `cleanup` to stop it when the test ends; a suite
 * that shares one guest calls stopGuest from its own `after` hook.
 */
export async function bootGuest(cleanup: ((fn: () => Promise<void>) => void) | undefined, options: LaunchOptions = {}): Promise<Guest> {
  const guest = await launchGuest({ artifacts: await guestArtifacts(), helloTimeoutMs: 60000, ...options });
  started.add(guest);
  cleanup?.(() => stopGuest(guest));
  return guest;
}

/** Kills the guest and checks that its QEMU is gone. */
export async function stopGuest(guest: Guest | undefined): Promise<void> {
  if (!guest) return;
  await guest.kill();
  started.delete(guest);
  assertGone(guest.process.pid);
}

export function assertGone(pid: number | undefined): void {
  assert.ok(pid, "QEMU had no pid");
  assert.throws(() => process.kill(pid, 0), { code: "ESRCH" }, `QEMU ${pid} survived its test`);
}

/** Prints the guest's console into the test log when an assertion fails, then rethrows. */
export async function withConsole<T>(guest: Guest, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    process.stderr.write(`--- guest console ---\n${guest.console().slice(-3000)}\n---\n`);
    throw e;
  }
}

// Whatever a test left running (one that timed out, or a suite's shared guest) is killed when the file ends.
after(
  async () => {
    const left = [...started];
    await Promise.all(left.map((g) => g.kill()));
    for (const g of left) assertGone(g.process.pid);
  },
  { timeout: 60_000 },
);
