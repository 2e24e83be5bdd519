// The boot-time levers (docs/boot-time.md) must not cost correctness: a guest told its APIC timer period
// keeps true time on one vCPU and on several, the console shell still comes (after the hello), and the
// machine really has no PIT. Asserted from the host's clock and from what the guest prints.
import assert from "node:assert/strict";
import { test } from "node:test";
import { bootGuest, withConsole } from "../support/guests.js";

/** Host ms a guest `sleep` of `seconds` takes, with the guest's own uptime difference. */
async function timedSleep(agent: NonNullable<Awaited<ReturnType<typeof bootGuest>>["agent"]>, seconds: number): Promise<{ hostMs: number; guestMs: number }> {
  const t = performance.now();
  const r = await agent.run(["sh", "-c", `a=$(cut -d' ' -f1 /proc/uptime); sleep ${seconds}; b=$(cut -d' ' -f1 /proc/uptime); echo $a $b`]);
  const hostMs = performance.now() - t;
  assert.equal(r.exitCode, 0, r.stderr.toString());
  const [a, b] = r.stdout.toString().trim().split(" ").map(Number);
  return { hostMs, guestMs: (b! - a!) * 1000 };
}

for (const cpus of [1, 2]) {
  test(`${cpus} vCPU: sleep 5 in the guest takes 5 s of host time and 5 s of guest time`, { timeout: 180_000 }, async (t) => {
    const guest = await bootGuest((fn) => t.after(fn), { cpus });
    await withConsole(guest, async () => {
      const agent = guest.agent!;
      const cmdline = (await agent.run(["cat", "/proc/cmdline"])).stdout.toString();
      assert.match(cmdline, / lapic_timer_period=\d+ /, "the period is given under TCG");
      assert.match(cmdline, / init_poison=off /);
      assert.equal((await agent.run(["nproc"])).stdout.toString().trim(), String(cpus));
      const { hostMs, guestMs } = await timedSleep(agent, 5);
      // The exec round trip adds well under a second; a wrong period would be off by a factor, not ms.
      assert.ok(hostMs >= 4950 && hostMs < 6500, `host saw ${Math.round(hostMs)} ms`);
      assert.ok(guestMs >= 4950 && guestMs < 5600, `guest uptime moved ${Math.round(guestMs)} ms`);
    });
  });
}

test("no PIT on the machine, the LAPIC drives the tick, and the console shell starts after the hello", { timeout: 180_000 }, async (t) => {
  const guest = await bootGuest((fn) => t.after(fn));
  await withConsole(guest, async () => {
    const qtree = await guest.qmp.execute<string>("human-monitor-command", { "command-line": "info qtree" });
    assert.doesNotMatch(qtree, /isa-pit|kvm-pit|i8254/, "pit=off");
    assert.match(qtree, /virtio-mmio/, "the qtree was read");
    const agent = guest.agent!;
    const tick = (await agent.run(["cat", "/sys/devices/system/clockevents/clockevent0/current_device"])).stdout.toString();
    assert.equal(tick.trim(), "lapic");
    // The console shell is busybox's ash on ttyS0; it comes once the agent has sent its hello.
    let shell = "";
    for (let i = 0; i < 50 && !shell; i++) {
      shell = (await agent.run(["sh", "-c", "for p in /proc/[0-9]*; do [ \"$(cat $p/cmdline 2>/dev/null | tr -d '\\0')\" = -sh ] && echo ${p#/proc/}; done"])).stdout.toString().trim();
      if (!shell) await new Promise((r) => setTimeout(r, 100));
    }
    assert.match(shell, /^\d+$/, "a console shell runs");
  });
});
