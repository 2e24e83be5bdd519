// Charts with uPlot: a time series of one or more lines, redrawn with new data in place.

import uPlot from "uplot";
import { h } from "./dom.js";

export interface Series {
  label: string;
  stroke: string;
  unit?: (v: number) => string;
}

export function lineChart(title: string, series: Series[], opts: { bars?: boolean; xTime?: boolean } = {}): { el: HTMLElement; set: (data: number[][]) => void; destroy: () => void } {
  const el = h("figure", { class: "chart", "data-chart": title }, h("figcaption", {}, title));
  const box = h("div");
  el.append(box);
  let plot: uPlot | undefined;
  const width = () => Math.max(260, Math.min(720, (el.parentElement?.clientWidth ?? 600) - 16));
  const make = (data: number[][]) => {
    plot = new uPlot(
      {
        width: width(),
        height: 180,
        scales: { x: { time: opts.xTime !== false } },
        series: [{}, ...series.map((s) => ({ label: s.label, stroke: s.stroke, width: 2, ...(opts.bars ? { paths: uPlot.paths.bars!({ size: [0.6, 40] }), fill: s.stroke } : {}), value: (_u: uPlot, v: number | null) => (v === null ? "—" : s.unit ? s.unit(v) : v.toFixed(1)) }))],
        axes: [{}, { values: (_u, vals) => vals.map((v) => (series[0]?.unit ? series[0].unit(v) : String(v))), size: 70 }],
      },
      data as uPlot.AlignedData,
      box,
    );
  };
  const onResize = () => plot?.setSize({ width: width(), height: 180 });
  window.addEventListener("resize", onResize);
  return {
    el,
    set: (data) => {
      el.dataset.points = String(data[0]?.length ?? 0);
      // The first point's time (s): tests see the history drawn before the page sampled anything.
      el.dataset.from = String(data[0]?.[0] ?? "");
      if (!plot) make(data);
      else plot.setData(data as uPlot.AlignedData);
    },
    destroy: () => {
      window.removeEventListener("resize", onResize);
      plot?.destroy();
    },
  };
}
