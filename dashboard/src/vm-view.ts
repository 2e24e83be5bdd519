// One VM: its overview (figures, actions, boot timeline, CPU and memory charts) and the tabs Console,
// Terminal, Logs and Files.

import { text, ndjson } from "./api.js";
import { bytes, duration, h, replace } from "./dom.js";
import { actionButtons } from "./actions.js";
import { lineChart } from "./charts.js";
import { showError } from "./errors.js";
import { filesView } from "./files.js";
import { consoleView, terminalView } from "./terminals.js";
import { memoryOf } from "./vm-list.js";
import * as store from "./store.js";
import type { Vm } from "./store.js";

const TABS = ["overview", "console", "terminal", "logs", "files"];

export function vmView(main: HTMLElement, ref: string, tab: string): () => void {
  const v = store.byRef(ref);
  const title = h("h2", {}, ref, " ", h("span", { class: `state ${v?.state ?? ""}` }, v?.state ?? ""));
  const tabs = h("nav", { class: "tabs", "aria-label": "VM views" }, TABS.map((t) => h("a", { href: `#/vm/${encodeURIComponent(ref)}/${t}`, "aria-current": t === tab ? "page" : undefined }, t[0]!.toUpperCase() + t.slice(1))));
  const body = h("section");
  main.append(title, tabs, body);
  if (!v) {
    // The list may not be in yet (a link opened directly): redraw once it is.
    return store.onChange(() => store.byRef(ref) && window.dispatchEvent(new HashChangeEvent("hashchange")));
  }
  const offTitle = store.onChange(() => {
    const now = store.byRef(ref);
    if (now) replace(title, now.name, " ", h("span", { class: `state ${now.state}` }, now.state));
  });
  let off: () => void;
  if (tab === "console") off = consoleView(body, v.id);
  else if (tab === "terminal") off = terminalView(body, v.id);
  else if (tab === "logs") off = logsView(body, v);
  else if (tab === "files") off = filesView(body, v);
  else off = overview(body, v);
  return () => (offTitle(), off());
}

function overview(body: HTMLElement, v0: Vm): () => void {
  const facts = h("dl", { class: "facts" });
  const actions = h("div");
  const timeline = h("div", { class: "timeline", "aria-label": "Boot timeline" });
  const cpu = lineChart("CPU %", [{ label: "CPU", stroke: "#2b7bb9", unit: (n) => `${n.toFixed(0)}%` }]);
  const mem = lineChart("Memory (RSS)", [{ label: "RSS", stroke: "#b9552b", unit: (n) => bytes(n) }]);
  body.append(h("div", { class: "cols" }, h("div", {}, facts, actions), h("div", {}, h("h3", {}, "Boot timeline"), timeline)), h("div", { class: "charts" }, cpu.el, mem.el));
  const draw = () => {
    const v = store.vms.get(v0.id) ?? v0;
    const s = store.latest(v.id);
    const row = (k: string, val: string | number) => [h("dt", {}, k), h("dd", {}, String(val))];
    replace(
      facts,
      row("ID", v.id),
      row("Image", v.spec.image ?? "(initramfs)"),
      row("vCPUs", v.spec.cpus ?? 1),
      row("Memory", memoryOf(v)),
      row("Network", v.spec.network ?? "user"),
      row("Started as", v.boot ? `${v.boot.how}${v.boot.readyMs !== undefined ? `, ready in ${v.boot.readyMs} ms` : ""}` : "—"),
      row("Uptime", v.state === "running" || v.state === "paused" ? duration(v.uptimeMs) : "—"),
      row("CPU now", s ? `${s.cpuPct.toFixed(1)}%` : "—"),
      row("RSS now", s ? bytes(s.rssBytes) : "—"),
      v.owner ? row("Owner", v.owner) : null,
    );
    replace(actions, actionButtons(v, (op) => op === "delete" && (location.hash = "#/vms")));
    replace(timeline, bootTimeline(v));
    const list = store.samples.get(v.id) ?? [];
    cpu.set([list.map((x) => x.t / 1000), list.map((x) => x.cpuPct)]);
    mem.set([list.map((x) => x.t / 1000), list.map((x) => x.rssBytes)]);
  };
  draw();
  const off = store.onChange(draw);
  // A VM stopped before the page came still has its last minutes in the daemon's history.
  void store.seed(v0.id);
  return () => (off(), cpu.destroy(), mem.destroy());
}

/** spawn → QMP → kernel/init → agent hello → ready, each a bar from the start, in ms. */
function bootTimeline(v: Vm): HTMLElement {
  const t = v.timings ?? {};
  const steps: [string, number | undefined][] = [
    ["QEMU up (QMP)", t.qmpMs],
    ["state restored", t.restoredMs],
    ["guest init", t.guestInitUptimeMs !== undefined && t.qmpMs !== undefined ? t.qmpMs + t.guestInitUptimeMs : undefined],
    ["agent hello", t.helloMs],
    ["ready", v.boot?.readyMs],
  ];
  const shown = steps.filter((s): s is [string, number] => s[1] !== undefined);
  if (!shown.length) return h("p", { class: "muted" }, "No start measured yet.");
  const max = Math.max(...shown.map((s) => s[1]), 1);
  return h("ol", {}, shown.map(([label, ms]) => h("li", {}, h("span", { class: "label" }, label), h("span", { class: "bar", style: `width:${Math.max(2, (ms / max) * 100)}%` }), h("span", { class: "num" }, `${Math.round(ms)} ms`))));
}

function logsView(body: HTMLElement, v: Vm): () => void {
  const ac = new AbortController();
  const which = h("select", { id: "log-kind", onchange: () => follow() }, h("option", { value: "console" }, "Console log"), h("option", { value: "command" }, "Command log"));
  const pre = h("pre", { class: "log", id: "log", tabindex: 0, "aria-live": "off" });
  body.append(h("div", { class: "filters" }, h("label", { for: "log-kind" }, "Log"), which), pre);
  let cur: AbortController | undefined;
  const add = (s: string) => {
    const atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 8;
    pre.append(s);
    if (atEnd) pre.scrollTop = pre.scrollHeight;
  };
  const follow = () => {
    cur?.abort();
    cur = new AbortController();
    ac.signal.addEventListener("abort", () => cur?.abort());
    pre.textContent = "";
    const ref = encodeURIComponent(v.id);
    const done = which.value === "console"
      ? text(`/v1/vms/${ref}/logs?console=true&follow=true`, add, cur.signal)
      : ndjson("GET", `/v1/vms/${ref}/logs?follow=true`, undefined, (e) => {
          if ((e.type === "stdout" || e.type === "stderr") && typeof e.data === "string") add(new TextDecoder().decode(Uint8Array.from(atob(e.data), (c) => c.charCodeAt(0))));
          else if (e.type === "exit") add(`\n[exit ${JSON.stringify(e)}]\n`);
        }, cur.signal);
    done.catch((e: unknown) => (e as Error).name !== "AbortError" && showError(e));
  };
  follow();
  return () => ac.abort();
}
