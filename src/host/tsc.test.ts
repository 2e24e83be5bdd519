import assert from "node:assert/strict";
import { test } from "node:test";
import { parseCpuinfoForTest } from "./tsc.js";

test("cpu MHz becomes kHz when the CPU has a TSC", () => {
  assert.deepEqual(parseCpuinfoForTest("flags\t\t: fpu tsc msr\ncpu MHz\t\t: 2596.132\n"), { khz: 2596132, source: "/proc/cpuinfo cpu MHz" });
  assert.equal(parseCpuinfoForTest("flags\t\t: fpu tsc\ncpu MHz\t\t: 3000\n")?.khz, 3000000);
});

test("no TSC flag or no MHz line gives nothing", () => {
  assert.equal(parseCpuinfoForTest("flags\t\t: fpu msr\ncpu MHz\t\t: 2596.132\n"), undefined);
  assert.equal(parseCpuinfoForTest("flags\t\t: fpu tsc\n"), undefined);
});
