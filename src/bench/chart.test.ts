import assert from "node:assert/strict";
import { test } from "node:test";
import { renderPhaseChart, type PhaseBar } from "./chart.js";

const bars: PhaseBar[] = [
  { config: "mvm, gzip initramfs (idle host)", phases: [{ phase: "qemu spawn", ms: 40 }, { phase: "kernel", ms: 300.4 }, { phase: "agent hello", ms: 120 }] },
  { config: "q35 <debian> & cloud", phases: [{ phase: "qemu spawn", ms: 60 }, { phase: "kernel", ms: 900 }, { phase: "agent hello", ms: 251.6 }] },
];

test("renders one labelled bar per config, a legend entry per phase and each bar's total", async () => {
  const svg = await renderPhaseChart(bars, { title: "Boot phases", subtitle: "p50 of 20 runs" });
  assert.ok(svg.startsWith("<svg"), svg.slice(0, 80));
  assert.ok(svg.includes("mvm, gzip initramfs (idle host)"));
  // vega escapes text itself: a config name with markup characters must come out as text, not markup.
  assert.ok(svg.includes("q35 &lt;debian&gt; &amp; cloud"));
  for (const phase of ["qemu spawn", "kernel", "agent hello"]) assert.ok(svg.includes(`>${phase}</text>`), phase);
  assert.ok(svg.includes(">460 ms</text>") && svg.includes(">1212 ms</text>"), "totals, rounded");
  for (const text of ["ms from QEMU spawn", "Boot phases", "p50 of 20 runs"]) assert.ok(svg.includes(text), text);
  // Self-contained: the only URLs are the SVG and XLink namespace names.
  assert.deepEqual([...svg.matchAll(/https?:\/\/[^"]*/g)].map((m) => m[0]).sort(), ["http://www.w3.org/1999/xlink", "http://www.w3.org/2000/svg"]);
  assert.doesNotMatch(svg, /url\(|href=|@import|@font-face/);
});

/** The bar segments vega drew: config and phase from each one's aria-label, its left edge and its fill. */
function segments(svg: string): Array<{ config: string; phase: string; x: number; fill: string }> {
  const re = /aria-label="[^"]*?config: ([^;"]*); phase: ([^;"]*);[^"]*" role="graphics-symbol" aria-roledescription="bar" d="M([\d.]+),[^"]*" fill="([^"]*)"/g;
  return [...svg.matchAll(re)].map((m) => ({ config: m[1]!, phase: m[2]!, x: Number(m[3]), fill: m[4]! }));
}

test("phases stack in the order given, one colour per phase name, the legend in first-seen order", async () => {
  // The second bar lists its phases in another order: its stack follows it, the legend keeps the first bar's.
  const reversed: PhaseBar = { config: "reversed", phases: [...bars[1]!.phases].reverse() };
  const svg = await renderPhaseChart([bars[0]!, reversed]);
  const segs = segments(svg);
  assert.equal(segs.length, 6);
  for (const bar of [bars[0]!, reversed]) {
    const xs = bar.phases.map((p) => segs.find((s) => s.config === bar.config && s.phase === p.phase)!.x);
    assert.deepEqual([...xs].sort((a, b) => a - b), xs, bar.config);
  }
  for (const phase of ["qemu spawn", "kernel", "agent hello"]) assert.equal(new Set(segs.filter((s) => s.phase === phase).map((s) => s.fill)).size, 1, phase);
  assert.equal(new Set(segs.map((s) => s.fill)).size, 3);
  const legend = ["qemu spawn", "kernel", "agent hello"].map((p) => svg.indexOf(`>${p}</text>`));
  assert.deepEqual([...legend].sort((a, b) => a - b), legend);
});

test("bad input is refused with a RangeError naming the bar and phase", async () => {
  await assert.rejects(renderPhaseChart([]), RangeError);
  await assert.rejects(renderPhaseChart([bars[0]!, bars[0]!]), RangeError);
  await assert.rejects(renderPhaseChart([{ config: "empty", phases: [] }]), RangeError);
  for (const ms of [-1, NaN, Infinity]) {
    await assert.rejects(renderPhaseChart([{ config: "cfg-a", phases: [{ phase: "ph-b", ms }] }]), (e: unknown) => e instanceof RangeError && /cfg-a/.test(e.message) && /ph-b/.test(e.message));
  }
});
