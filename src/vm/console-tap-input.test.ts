// Console input under backpressure: ConsoleTap.write says false when QEMU is not taking keystrokes as fast
// as they come (here: a console connection that does not read), and calls onDrain once it has caught up,
// which is what the WebSocket console pauses its client on (src/daemon/websocket.ts).

import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { connect, createServer, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { ConsoleTap } from "./console-tap.js";

test("console input: write is false while QEMU does not read, and onDrain comes once it has", async () => {
  const dir = mkdtempSync(join(tmpdir(), "mvm-tap-"));
  const server = createServer();
  const tap = new ConsoleTap(() => 0);
  tap.serve(server);
  await new Promise<void>((r) => server.listen(join(dir, "console.sock"), r));
  const qemu: Socket = connect(join(dir, "console.sock"));
  await new Promise((r) => qemu.once("connect", r));
  qemu.pause(); // QEMU's serial port, stalled
  await new Promise((r) => setTimeout(r, 50));
  try {
    let drained = false;
    let writes = 0;
    const chunk = Buffer.alloc(64 * 1024, 0x61);
    while (tap.write(chunk, () => (drained = true))) if (++writes > 10_000) assert.fail("write never said false");
    assert.equal(drained, false, "not drained while nothing reads");
    let read = 0;
    qemu.on("data", (b: Buffer) => (read += b.length));
    qemu.resume();
    const end = Date.now() + 5000;
    while (!drained && Date.now() < end) await new Promise((r) => setTimeout(r, 5));
    assert.ok(drained, "onDrain once QEMU read what was waiting");
    assert.ok(read >= writes * chunk.length);
  } finally {
    qemu.destroy();
    await new Promise((r) => server.close(r));
    rmSync(dir, { recursive: true, force: true });
  }
});
