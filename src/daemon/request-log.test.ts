import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { loggedUrl, RequestLog } from "./request-log.js";

test("logged URLs lose their secrets and their excess length", () => {
  assert.equal(loggedUrl("/v1/vms?all=1"), "/v1/vms?all=1");
  assert.equal(loggedUrl("/dashboard/?token=mvm_abc&x=1"), "/dashboard/?token=-&x=1");
  assert.equal(loggedUrl("/files?path=/a&signature=v1_xyz&signature_expiration=99&username=u"), "/files?path=/a&signature=-&signature_expiration=-&username=u");
  assert.equal(loggedUrl("/x?ACCESS_TOKEN=s"), "/x?ACCESS_TOKEN=-");
  const long = loggedUrl(`/v1/vms/${"a".repeat(5000)}`);
  assert.equal(long.length, 1025);
  assert.ok(long.endsWith("…"));
});

test("the request log is JSON lines, and starts again past its size keeping one file before", async () => {
  const dir = mkdtempSync(join(tmpdir(), "mvm-reqlog-"));
  try {
    const path = join(dir, "requests.log");
    const log = new RequestLog(path, 4096);
    // Requests end over time, not in one tick: the file is open (opening is asynchronous) when it turns.
    for (let i = 0; i < 100; i++) {
      log.logger.info({ n: i, pad: "x".repeat(60) }, "request");
      await new Promise((r) => setTimeout(r, 1));
    }
    await log.close();
    const now = readFileSync(path, "utf8").trim().split("\n").map((l) => JSON.parse(l) as { n: number; level: string; time: string; msg: string });
    const before = readFileSync(`${path}.1`, "utf8").trim().split("\n").map((l) => JSON.parse(l) as { n: number });
    // Nothing lost across the last turn, nothing past the bound, the newest last.
    assert.ok(readFileSync(path).length <= 4096 + 200);
    const [first] = now;
    assert.ok(first);
    assert.equal(now.at(-1)?.n, 99);
    assert.equal((before.at(-1)?.n ?? -2) + 1, first.n);
    assert.equal(first.level, "info");
    assert.equal(first.msg, "request");
    assert.ok(!Number.isNaN(Date.parse(first.time)));
    assert.ok(!existsSync(`${path}.2`));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
