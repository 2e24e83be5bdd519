// Boot-phase charts for the bench reports: a Vega-Lite spec compiled and rendered headless to an SVG string.
// vega and vega-lite are imported inside the render function: together they take a noticeable time to load,
// and every CLI command would otherwise pay for it at startup.
// With no node-canvas installed vega estimates text widths from the font size; that is good enough for labels.

import type { TopLevelSpec } from "vega-lite";

export interface PhaseBar {
  config: string;
  phases: Array<{ phase: string; ms: number }>;
}

/** Width of the whole chart in px (fit-x: the plot shrinks to leave room for the y labels). */
const WIDTH = 900;
/** Height per bar in px. A fixed height rather than a band step: with a step, fit-x autosizing logs a spurious warning. */
const BAR_STEP = 28;
/**
 * Vega's tableau20 with its dark shades first: in scheme order each colour sits beside its own light shade,
 * and neighbouring phases in a stack would look alike. Twenty names before colours repeat.
 */
const PALETTE = ["#4c78a8", "#f58518", "#54a24b", "#b79a20", "#439894", "#e45756", "#79706e", "#d67195", "#b279a2", "#9e765f",
  "#9ecae9", "#ffbf79", "#88d27a", "#f2cf5b", "#83bcb6", "#ff9d98", "#bab0ac", "#fcbfd2", "#d6a5c9", "#d8b5a5"];
/** Config labels are sentences ("mvm, gzip initramfs (idle host)"): truncating them would lose the point. */
const LABEL_LIMIT = 400;

/** Throws a RangeError for input that would chart as something it is not (a missing or merged bar, a negative span). */
function validate(bars: PhaseBar[]): void {
  if (bars.length === 0) throw new RangeError("a phase chart needs at least one bar");
  const seen = new Set<string>();
  for (const bar of bars) {
    // Bars are keyed by config on the y axis: two with the same name would be drawn as one.
    if (seen.has(bar.config)) throw new RangeError(`two bars are named "${bar.config}"`);
    seen.add(bar.config);
    if (bar.phases.length === 0) throw new RangeError(`bar "${bar.config}" has no phases`);
    for (const { phase, ms } of bar.phases) {
      if (!Number.isFinite(ms) || ms < 0) throw new RangeError(`bar "${bar.config}", phase "${phase}": ms must be a finite number >= 0, not ${ms}`);
    }
  }
}

/** The Vega-Lite spec: a stacked bar layer and a text layer with each bar's total at its right end. */
function phaseSpec(bars: PhaseBar[], o: { title?: string; subtitle?: string }): TopLevelSpec {
  // `order` is the phase's index within its bar: stacking sorts on it, so phases stack in the order given.
  const rows = bars.flatMap((b) => b.phases.map((p, order) => ({ config: b.config, phase: p.phase, ms: p.ms, order })));
  const totals = bars.map((b) => ({ config: b.config, total: b.phases.reduce((s, p) => s + p.ms, 0) }));
  // One colour per phase name across all bars, legend in first-seen order: an explicit scale domain does both.
  const phaseNames = [...new Set(rows.map((r) => r.phase))];
  const maxTotal = Math.max(...totals.map((t) => t.total));
  const y = { field: "config", type: "nominal", title: null, scale: { domain: bars.map((b) => b.config) } } as const;
  return {
    ...(o.title === undefined ? {} : { title: { text: o.title, ...(o.subtitle === undefined ? {} : { subtitle: o.subtitle }) } }),
    width: WIDTH,
    height: BAR_STEP * bars.length,
    autosize: { type: "fit-x", contains: "padding" },
    background: "white",
    encoding: { y },
    layer: [
      {
        data: { values: rows },
        mark: "bar",
        encoding: {
          // Room past the longest bar for its total, which would otherwise run off the plot (layers share this scale).
          x: { field: "ms", type: "quantitative", stack: "zero", title: "ms from QEMU spawn", scale: { domain: [0, maxTotal * 1.12 || 1] } },
          color: { field: "phase", type: "nominal", title: "phase", scale: { domain: phaseNames, range: PALETTE } },
          order: { field: "order", type: "quantitative" },
        },
      },
      {
        data: { values: totals.map((t) => ({ ...t, label: `${Math.round(t.total)} ms` })) },
        mark: { type: "text", align: "left", dx: 4 },
        encoding: { x: { field: "total", type: "quantitative" }, text: { field: "label", type: "nominal" } },
      },
    ],
    config: {
      axisY: { labelLimit: LABEL_LIMIT },
      // Below the plot: 11 phase names in a column beside it would make the chart much wider than 900 px.
      // Two columns of long phase names fit under the plot (it starts right of the bar labels); more ran off the edge.
      legend: { orient: "bottom", columns: 2, labelLimit: 280 },
    },
  };
}

/** One bar per configuration (in the given order), its phases stacked left to right in the given order, x axis "ms from QEMU spawn". */
export async function renderPhaseChart(bars: PhaseBar[], o: { title?: string; subtitle?: string } = {}): Promise<string> {
  validate(bars);
  const [vl, vega] = await Promise.all([import("vega-lite"), import("vega")]);
  const view = new vega.View(vega.parse(vl.compile(phaseSpec(bars, o)).spec), { renderer: "none" });
  try {
    return await view.toSVG();
  } finally {
    view.finalize(); // drops the view's timers and listeners
  }
}
