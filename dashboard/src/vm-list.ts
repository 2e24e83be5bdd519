// The VM list, live: the store follows the event stream; this view redraws its rows when the store changes.

import { bytes, duration, h, mib, replace } from "./dom.js";
import { actionButtons } from "./actions.js";
import * as store from "./store.js";
import type { Vm } from "./store.js";

const STATES = ["", "created", "starting", "running", "paused", "stopping", "stopped", "crashed", "suspended"];
const filters = { state: "", name: "" };

export const memoryOf = (v: Vm): string => (v.spec.memoryMiB !== undefined ? mib(v.spec.memoryMiB) : typeof v.spec.memory === "number" ? mib(v.spec.memory) : (v.spec.memory ?? "—"));

export function vmListView(main: HTMLElement): () => void {
  const state = h("select", { id: "filter-state", onchange: () => ((filters.state = state.value), draw()) }, STATES.map((s) => h("option", { value: s, selected: s === filters.state }, s || "any state")));
  const name = h("input", { id: "filter-name", type: "search", value: filters.name, placeholder: "name contains…", oninput: () => ((filters.name = name.value), draw()) });
  const body = h("tbody");
  const empty = h("p", { class: "muted" });
  main.append(
    h("h2", {}, "VMs"),
    h("div", { class: "filters" }, h("label", { for: "filter-state" }, "State"), state, h("label", { for: "filter-name" }, "Name"), name),
    h("div", { class: "table-wrap" }, h("table", { class: "vms", "aria-label": "VMs" }, h("thead", {}, h("tr", {}, ["Name", "State", "Image", "vCPUs", "Memory", "Boot", "Ready", "Uptime", "CPU", "RSS", "Actions"].map((c) => h("th", { scope: "col" }, c)))), body)),
    empty,
  );
  const draw = () => {
    const list = [...store.vms.values()]
      .filter((v) => (!filters.state || v.state === filters.state) && (!filters.name || v.name.includes(filters.name)))
      .sort((a, b) => a.createdAt.localeCompare(b.createdAt));
    // The rows are redrawn every 2 s: the focused control (a filter, an action button) keeps its focus.
    const focused = document.activeElement as HTMLElement | null;
    const keep = focused && body.contains(focused) ? { vm: focused.closest("tr")?.dataset.vm, sel: focused.dataset.action ? `[data-action="${focused.dataset.action}"]` : "a" } : undefined;
    replace(
      body,
      list.map((v) => {
        const s = store.latest(v.id);
        const live = v.state === "running" || v.state === "paused";
        return h(
          "tr",
          { "data-vm": v.name, "data-state": v.state },
          h("td", {}, h("a", { href: `#/vm/${encodeURIComponent(v.name)}/overview` }, v.name)),
          h("td", {}, h("span", { class: `state ${v.state}` }, v.state)),
          h("td", {}, v.spec.image ?? "(initramfs)"),
          h("td", { class: "num" }, v.spec.cpus ?? 1),
          h("td", { class: "num" }, memoryOf(v)),
          h("td", {}, v.boot?.how ?? "—"),
          h("td", { class: "num" }, v.boot?.readyMs !== undefined ? `${v.boot.readyMs} ms` : "—"),
          h("td", { class: "num" }, live ? duration(v.uptimeMs) : "—"),
          h("td", { class: "num" }, live && s ? `${s.cpuPct.toFixed(0)}%` : "—"),
          h("td", { class: "num" }, live && s ? bytes(s.rssBytes) : "—"),
          h("td", {}, actionButtons(v)),
        );
      }),
    );
    if (keep?.vm) body.querySelector<HTMLElement>(`tr[data-vm="${CSS.escape(keep.vm)}"] ${keep.sel}`)?.focus();
    empty.textContent = list.length ? "" : store.vms.size ? "No VM matches the filters." : "No VMs yet: create one here or with mvm run.";
  };
  draw();
  return store.onChange(draw);
}
