import assert from "node:assert/strict";
import { test } from "node:test";
import type { ExecOptions, ExecResult, ExecSession } from "../agent/exec-session.js";
import { SessionRegistry, type SessionEvent } from "./session-registry.js";

/** An agent session driven by hand: output and exit come when the test says. */
function fakeExec() {
  let options!: ExecOptions;
  let finish!: (r: ExecResult) => void;
  const paused: boolean[] = [];
  const session = {
    id: 42,
    started: Promise.resolve(7),
    result: new Promise<ExecResult>((r) => (finish = r)),
    kill: () => undefined,
    pause: () => paused.push(true),
    resume: () => paused.push(false),
  } as unknown as ExecSession;
  return { exec: (o: ExecOptions) => ((options = o), session), out: (b: string) => options.onStdout?.(Buffer.from(b)), finish, paused };
}

const exitOf = (status: number): ExecResult => ({ exitCode: status, signal: null, status, durationMs: 1 });

test("a background command keeps its output for late readers, drops the oldest past the limit, and its result", async () => {
  const reg = new SessionRegistry();
  const f = fakeExec();
  const t = reg.start("vm", f.exec, { argv: ["x"], background: true });
  await t.session.started;
  f.out("first ");
  f.out("second");
  const seen: SessionEvent[] = [];
  t.subscribe((e) => void seen.push(e), true);
  assert.deepEqual(seen.map((e) => e.type), ["started", "stdout", "stdout"]);
  const big = "z".repeat(3 * 1024 * 1024); // 4 MiB of base64 each
  for (let i = 0; i < 3; i++) f.out(big);
  assert.ok(t.info.droppedBytes >= 12, "the oldest output went first");
  f.finish(exitOf(3));
  await t.ended;
  assert.equal(seen.at(-1)?.type, "exit");
  assert.deepEqual([t.info.state, t.info.result?.status, reg.list("vm").length], ["exited", 3, 1]);
  const late: string[] = [];
  t.subscribe((e) => void late.push(e.type), true);
  assert.equal(late.at(-1), "exit", "a reader after the end still gets the end");
});

test("a foreground command is forgotten when it ends; a slow reader pauses it", async () => {
  const reg = new SessionRegistry();
  const f = fakeExec();
  const t = reg.start("vm", f.exec, { argv: ["y"] });
  const off = t.subscribe(() => false, false); // a reader whose buffer is full
  f.out("data");
  assert.deepEqual(f.paused, [true]);
  off();
  assert.deepEqual(f.paused, [true, false], "a reader leaving lets the command go on");
  f.finish(exitOf(0));
  await t.ended;
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(reg.list("vm"), []);
  assert.throws(() => reg.get("vm", "vm", t.id), /has no command/);
  assert.throws(() => reg.signal("vm", "vm", "nope", 15), /has no command/);
  const g = fakeExec();
  const u = reg.start("vm", g.exec, { argv: ["z"] });
  assert.throws(() => reg.signal("vm", "vm", u.id, 99), /invalid signal/);
});
