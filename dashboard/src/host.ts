// The host's totals over the last minutes (CPU and memory summed over its VMs, as the page samples them)
// and the ready times of recent starts.

import { bytes, h } from "./dom.js";
import { lineChart } from "./charts.js";
import * as store from "./store.js";

export function hostView(main: HTMLElement): () => void {
  const cpu = lineChart("Host: CPU of all VMs %", [{ label: "CPU", stroke: "#2b7bb9", unit: (n) => `${n.toFixed(0)}%` }]);
  const mem = lineChart("Host: memory of all VMs (RSS)", [{ label: "RSS", stroke: "#b9552b", unit: (n) => bytes(n) }]);
  const ready = lineChart("Ready times of recent starts (ms)", [{ label: "ready", stroke: "#3a9b4f", unit: (n) => `${n.toFixed(0)} ms` }], { bars: true });
  const counts = h("p", { class: "muted" });
  main.append(h("h2", {}, "Host"), counts, h("div", { class: "charts" }, cpu.el, mem.el, ready.el));
  const draw = () => {
    // Samples of different VMs come from one poll: bucket them per 2 s so the sums line up.
    const sums = new Map<number, { cpu: number; rss: number }>();
    for (const list of store.samples.values())
      for (const s of list) {
        const k = Math.round(s.t / 2000) * 2;
        const e = sums.get(k) ?? { cpu: 0, rss: 0 };
        e.cpu += s.cpuPct;
        e.rss += s.rssBytes;
        sums.set(k, e);
      }
    const keys = [...sums.keys()].sort((a, b) => a - b);
    cpu.set([keys, keys.map((k) => sums.get(k)!.cpu)]);
    mem.set([keys, keys.map((k) => sums.get(k)!.rss)]);
    ready.set([store.readyTimes.map((r) => r.t / 1000), store.readyTimes.map((r) => r.ms)]);
    const byState = new Map<string, number>();
    for (const v of store.vms.values()) byState.set(v.state, (byState.get(v.state) ?? 0) + 1);
    counts.textContent = `${store.vms.size} VMs: ${[...byState].map(([s, n]) => `${n} ${s}`).join(", ") || "none"}`;
  };
  draw();
  const off = store.onChange(draw);
  return () => (off(), cpu.destroy(), mem.destroy(), ready.destroy());
}
