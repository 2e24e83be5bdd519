// A VM's states and the operations allowed in each. A call in the wrong state fails with a WrongStateError
// naming both states, never with undefined behaviour.
//
//   created -> starting -> running <-> paused
//   running/paused -> stopping -> stopped
//   starting/running/paused -> crashed (QEMU died unasked)
//   stopped/crashed -> starting (start)
//   running/paused -> suspending -> suspended (state saved to disk, QEMU ended) -> starting (resume)

import { WrongStateError } from "../errors.js";

export const VM_STATES = ["created", "starting", "running", "paused", "stopping", "stopped", "crashed", "suspended"] as const;
export type VmState = (typeof VM_STATES)[number];

const LIVE: VmState[] = ["starting", "running", "paused", "stopping"];

export const OPERATIONS = {
  start: ["created", "stopped", "crashed"],
  stop: ["running", "paused", "suspended"],
  kill: LIVE,
  pause: ["running"],
  resume: ["paused", "suspended"],
  suspend: ["running", "paused"],
  snapshot: ["running", "paused"],
  exec: ["running"],
  files: ["running"],
  forward: ["running"],
  watch: ["running"],
  // Live on a running or paused QEMU; stored for the next start otherwise. Not while one is starting or ending.
  limits: ["created", "running", "paused", "stopped", "crashed", "suspended"],
  remove: ["created", "stopped", "crashed", "suspended"],
  forceRemove: VM_STATES as unknown as VmState[],
} satisfies Record<string, VmState[]>;

export type Operation = keyof typeof OPERATIONS;

/** What the message says for operations whose name is not a verb of "VM NAME". */
const VERBS: Partial<Record<Operation, string>> = { forceRemove: "remove", forward: "forward a port of", watch: "watch the files of" };
/** Operations in the running guest (through its agent). */
const GUEST_OPERATIONS: Operation[] = ["exec", "files", "forward", "watch"];

export const isLive = (s: VmState): boolean => LIVE.includes(s);

export function requireState(name: string, operation: Operation, current: VmState): void {
  const allowed: VmState[] = OPERATIONS[operation];
  if (allowed.includes(current)) return;
  const verb = VERBS[operation] ?? operation;
  const inGuest = GUEST_OPERATIONS.includes(operation);
  const noun = operation === "forceRemove" ? "remove" : operation;
  throw new WrongStateError(`cannot ${verb} VM ${name}: it is ${current}, and ${noun} needs it ${allowed.join(" or ")}`, {
    hint:
      current === "running" && operation === "remove"
        ? `stop it first (mvm stop ${name}) or remove it by force (mvm rm -f ${name})`
        : inGuest && (current === "paused" || current === "suspended")
          ? `resume it first (mvm resume ${name})`
          : inGuest && (current === "created" || current === "stopped" || current === "crashed")
            ? `start it first (mvm start ${name})`
            : `check its state with mvm ps -a`,
    details: { vm: name, operation, state: current, allowed },
  });
}
