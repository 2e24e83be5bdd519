// The WebSocket streams against a real guest under TCG (issue 13): a shell on the serial console answers
// a command typed in a binary message, and exec over WebSocket runs a real command, stdout and stderr apart.
import assert from "node:assert/strict";
import { join } from "node:path";
import { test } from "node:test";
import WebSocket from "ws";
import { startTestDaemon } from "../support/daemon.js";

test("WebSocket: the console echoes a command's output; exec runs one in the guest", { timeout: 180_000 }, async (t) => {
  const d = await startTestDaemon(t);
  await d.client.start((await d.client.create({ name: "wsc" })).id);
  const url = (path: string) => `ws+unix://${join(d.home, "mvm.sock")}:${path}`;

  const con = new WebSocket(url("/v1/vms/wsc/console/ws"));
  let seen = "";
  const answered = new Promise<void>((resolve, reject) => {
    con.on("message", (b: Buffer, isBinary) => {
      if (!isBinary) return reject(new Error(`a control message: ${b.toString()}`));
      seen += b.toString("latin1");
      // The answer, not the echo of what was typed: $((6*7)) is worked out by the guest's shell.
      if (seen.includes("ws-console-42")) resolve();
    });
    con.once("error", reject);
  });
  await new Promise((r, j) => con.once("open", r).once("error", j));
  con.send(Buffer.from("echo ws-console-$((6*7))\n"));
  await Promise.race([answered, new Promise((_, reject) => setTimeout(() => reject(new Error(`no answer; console said: ${seen.slice(-500)}`)), 20000))]);
  con.close();

  const ex = new WebSocket(url("/v1/vms/wsc/exec/ws"));
  const msgs: Array<Record<string, unknown>> = [];
  ex.on("message", (b: Buffer) => msgs.push(JSON.parse(b.toString()) as Record<string, unknown>));
  const closed = new Promise<number>((r) => ex.on("close", (code) => r(code)));
  await new Promise((r, j) => ex.once("open", r).once("error", j));
  ex.send(JSON.stringify({ argv: ["sh", "-c", "uname -s; echo oops >&2; exit 5"] }));
  assert.equal(await closed, 1000);
  const text = (type: string) => msgs.filter((m) => m.type === type).map((m) => Buffer.from(m.data as string, "base64").toString()).join("");
  assert.deepEqual({ out: text("stdout"), err: text("stderr"), status: msgs.at(-1)?.status }, { out: "Linux\n", err: "oops\n", status: 5 });
  assert.equal((await d.client.get("wsc")).state, "running", "the VM runs on after both streams");
});
