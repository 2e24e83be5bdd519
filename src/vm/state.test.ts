import assert from "node:assert/strict";
import { test } from "node:test";
import { WrongStateError } from "../errors.js";
import { OPERATIONS, VM_STATES, requireState, type Operation } from "./state.js";

test("every operation is allowed exactly in its states and refused, naming both states, elsewhere", () => {
  for (const op of Object.keys(OPERATIONS) as Operation[]) {
    for (const state of VM_STATES) {
      const allowed = (OPERATIONS[op] as readonly string[]).includes(state);
      if (allowed) requireState("vm1", op, state);
      else
        assert.throws(
          () => requireState("vm1", op, state),
          (e: unknown) => e instanceof WrongStateError && e.message.includes(state) && e.details.state === state && Boolean(e.hint),
          `${op} in ${state}`,
        );
    }
  }
});

test("the documented transitions", () => {
  requireState("v", "start", "created");
  requireState("v", "start", "crashed");
  requireState("v", "pause", "running");
  requireState("v", "resume", "paused");
  requireState("v", "forceRemove", "running");
  assert.throws(() => requireState("v", "remove", "running"), (e: WrongStateError) => /stop it first/.test(e.hint ?? ""));
  assert.throws(() => requireState("v", "exec", "paused"), (e: WrongStateError) => /resume it first/.test(e.hint ?? ""));
  assert.throws(() => requireState("v", "start", "running"), WrongStateError);
  // Guest operations say what was asked and the way to a running guest.
  assert.throws(() => requireState("v", "forward", "stopped"), (e: WrongStateError) => e.message === "cannot forward a port of VM v: it is stopped, and forward needs it running" && /mvm start v/.test(e.hint ?? ""));
  assert.throws(() => requireState("v", "watch", "suspended"), (e: WrongStateError) => /^cannot watch the files of VM v/.test(e.message) && /mvm resume v/.test(e.hint ?? ""));
});
