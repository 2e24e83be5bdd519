import { test } from "node:test";
import assert from "node:assert/strict";
import { formatDuration, parseDurationMs } from "./duration.js";
import { InvalidSpecError } from "../errors.js";

test("durations: seconds, units, combinations", () => {
  assert.equal(parseDurationMs(600), 600_000);
  assert.equal(parseDurationMs("600"), 600_000);
  assert.equal(parseDurationMs("90s"), 90_000);
  assert.equal(parseDurationMs("10m"), 600_000);
  assert.equal(parseDurationMs("1h30m"), 5_400_000);
  assert.equal(parseDurationMs("2D"), 172_800_000);
});

test("durations: bad forms and out of range are InvalidSpecError with a hint", () => {
  for (const bad of ["", "10x", "m", "-5", "1.5h", "0", "0s", "400d", "10 m"]) {
    assert.throws(() => parseDurationMs(bad), (e: unknown) => e instanceof InvalidSpecError && !!e.hint, bad);
  }
});

test("durations: shown with at most two units", () => {
  assert.equal(formatDuration(42_000), "42s");
  assert.equal(formatDuration(600_000), "10m");
  assert.equal(formatDuration(5_430_000), "1h30m");
  assert.equal(formatDuration(-5), "0s");
});
