// The host's totals over the last minutes and the ready times of recent starts. The totals are the
// daemon's history (GET /v1/host/stats/history: the VMs' CPU and memory summed every 5 s, and the machine's
// own figures), read when the view opens and every 5 s after, with the page's own 2 s samples of its VMs
// summed after the history's last point.

import { api } from "./api.js";
import { bytes, h } from "./dom.js";
import { lineChart } from "./charts.js";
import * as store from "./store.js";

interface HostSample {
  at: string;
  vms: number;
  cpuPercent: number;
  rssBytes: number;
  machine?: { cpuPercent?: number; memTotalBytes: number; memAvailableBytes: number };
}

export function hostView(main: HTMLElement): () => void {
  const cpu = lineChart("Host: CPU of all VMs %", [{ label: "CPU", stroke: "#2b7bb9", unit: (n) => `${n.toFixed(0)}%` }]);
  const mem = lineChart("Host: memory of all VMs (RSS)", [{ label: "RSS", stroke: "#b9552b", unit: (n) => bytes(n) }]);
  const ready = lineChart("Ready times of recent starts (ms)", [{ label: "ready", stroke: "#3a9b4f", unit: (n) => `${n.toFixed(0)} ms` }], { bars: true });
  const counts = h("p", { class: "muted" });
  const machine = h("p", { class: "muted", id: "host-machine" });
  main.append(h("h2", {}, "Host"), counts, machine, h("div", { class: "charts" }, cpu.el, mem.el, ready.el));
  let history: HostSample[] = [];
  const draw = () => {
    const pts = history.map((s) => ({ t: Date.parse(s.at) / 1000, cpu: s.cpuPercent, rss: s.rssBytes }));
    const after = pts.at(-1)?.t ?? -Infinity;
    // The page's samples of different VMs come from one poll: bucket them per 2 s so the sums line up.
    const sums = new Map<number, { cpu: number; rss: number }>();
    for (const list of store.samples.values())
      for (const s of list) {
        const k = Math.round(s.t / 2000) * 2;
        if (k <= after) continue;
        const e = sums.get(k) ?? { cpu: 0, rss: 0 };
        e.cpu += s.cpuPct;
        e.rss += s.rssBytes;
        sums.set(k, e);
      }
    for (const k of [...sums.keys()].sort((a, b) => a - b)) pts.push({ t: k, ...sums.get(k)! });
    cpu.set([pts.map((p) => p.t), pts.map((p) => p.cpu)]);
    mem.set([pts.map((p) => p.t), pts.map((p) => p.rss)]);
    ready.set([store.readyTimes.map((r) => r.t / 1000), store.readyTimes.map((r) => r.ms)]);
    const byState = new Map<string, number>();
    for (const v of store.vms.values()) byState.set(v.state, (byState.get(v.state) ?? 0) + 1);
    counts.textContent = `${store.vms.size} VMs: ${[...byState].map(([s, n]) => `${n} ${s}`).join(", ") || "none"}`;
    const m = history.at(-1)?.machine;
    machine.textContent = m ? `The machine: CPU ${m.cpuPercent === undefined ? "—" : `${m.cpuPercent.toFixed(0)}%`} of all cores, memory ${bytes(m.memTotalBytes - m.memAvailableBytes)} used of ${bytes(m.memTotalBytes)}` : "";
  };
  let timer: ReturnType<typeof setTimeout> | undefined;
  let gone = false;
  const load = async () => {
    try {
      history = (await api<{ samples: HostSample[] }>("GET", "/v1/host/stats/history")).samples;
      draw();
    } catch {
      /* the page's own samples still draw; the banner is for actions */
    }
    if (!gone) timer = setTimeout(() => void load(), 5000);
  };
  draw();
  void load();
  const off = store.onChange(draw);
  return () => {
    gone = true;
    clearTimeout(timer);
    off();
    cpu.destroy();
    mem.destroy();
    ready.destroy();
  };
}
