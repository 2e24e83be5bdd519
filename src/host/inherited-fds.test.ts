import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

const MODULE = fileURLToPath(new URL("./inherited-fds.js", import.meta.url));

test("descriptors inherited without close-on-exec are closed; Node's own and stdio stay", () => {
  // A shell hands fd 200 (no close-on-exec; Node itself marks only the first few inherited ones close-on-exec) to a Node that closes what it inherited and lists what is left.
  const script = `import("${MODULE}").then((m) => { const closed = m.closeInheritedFds(); const fs = require("node:fs"); console.log(JSON.stringify({ closed, left: fs.readdirSync("/proc/self/fd").map(Number) })); })`;
  const out = JSON.parse(execFileSync("bash", ["-c", `exec 200</dev/null; exec "${process.execPath}" -e '${script}'`]).toString()) as { closed: number[]; left: number[] };
  assert.ok(out.closed.includes(200), `fd 200 closed: ${JSON.stringify(out)}`);
  assert.ok(!out.left.includes(200), "fd 200 is gone");
  assert.ok([0, 1, 2].every((fd) => out.left.includes(fd)), "stdio stays");
  assert.ok(out.left.length > 3, "Node's own descriptors (close-on-exec) stay");
});
