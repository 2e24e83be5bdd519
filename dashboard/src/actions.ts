// The actions on a VM, with plain names, offered only in the states the API allows them.

import { api } from "./api.js";
import { h } from "./dom.js";
import { attempt } from "./errors.js";
import * as store from "./store.js";
import type { Vm } from "./store.js";

const LIVE = ["running", "paused", "starting", "stopping"];
const ACTIONS: { label: string; op: string; when: string[]; confirm?: boolean }[] = [
  { label: "Start", op: "start", when: ["created", "stopped", "crashed"] },
  { label: "Stop", op: "stop", when: ["running", "paused", "suspended"] },
  { label: "Pause", op: "pause", when: ["running"] },
  { label: "Resume", op: "resume", when: ["paused", "suspended"] },
  { label: "Suspend", op: "suspend", when: ["running", "paused"] },
  { label: "Snapshot", op: "snapshots", when: ["running", "paused"] },
  { label: "Kill", op: "kill", when: LIVE },
  { label: "Delete", op: "delete", when: ["created", "stopped", "crashed", "suspended"], confirm: true },
];

export function actionButtons(v: Vm, after?: (op: string) => void): HTMLElement {
  const box = h("div", { class: "actions", role: "group", "aria-label": `Actions on ${v.name}` });
  for (const a of ACTIONS) {
    if (!a.when.includes(v.state)) continue;
    const b = h("button", {
      type: "button",
      "data-action": a.op,
      onclick: async () => {
        if (a.confirm && !confirm(`Delete VM ${v.name}? Its disk and logs go with it.`)) return;
        b.disabled = true;
        b.classList.add("busy");
        const ref = encodeURIComponent(v.id);
        await attempt(() => (a.op === "delete" ? api("DELETE", `/v1/vms/${ref}`) : a.op === "snapshots" ? api("POST", `/v1/vms/${ref}/snapshots`, {}) : api("POST", `/v1/vms/${ref}/${a.op}`)));
        b.disabled = false;
        b.classList.remove("busy");
        await store.refresh().catch(() => undefined);
        after?.(a.op);
      },
    }, a.label);
    box.append(b);
  }
  return box;
}
