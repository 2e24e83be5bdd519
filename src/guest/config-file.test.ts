import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { encodeGuestConfig, writeGuestConfig } from "./config-file.js";
import { GuestConfigError } from "../errors.js";

test("every setting becomes one escaped line", () => {
  const text = encodeGuestConfig({
    hostname: "web-1",
    env: { A: "1", MULTI: "line1\nline2", PCT: "100%" },
    root: { device: "/dev/vda", readOnly: true },
    network: { iface: "eth0", address: "10.0.2.15/24", gateway: "10.0.2.2", dns: ["10.0.2.3"] },
  });
  assert.equal(
    text,
    [
      "version=1",
      "hostname=web-1",
      "env=A=1",
      "env=MULTI=line1%0Aline2",
      "env=PCT=100%25",
      "root=/dev/vda",
      "rootfstype=ext4",
      "rootro=1",
      "net.iface=eth0",
      "net.address=10.0.2.15/24",
      "net.gateway=10.0.2.2",
      "net.dns=10.0.2.3",
      "",
    ].join("\n"),
  );
});

test("bad names and NUL bytes are refused", () => {
  assert.throws(() => encodeGuestConfig({ hostname: "bad_host!" }), GuestConfigError);
  assert.throws(() => encodeGuestConfig({ env: { "1X": "y" } }), GuestConfigError);
  assert.throws(() => encodeGuestConfig({ env: { "A=B": "y" } }), GuestConfigError);
  assert.throws(() => encodeGuestConfig({ env: { A: "nul\0" } }), GuestConfigError);
});

test("the file is private to its owner and never overwritten", async () => {
  const dir = await mkdtemp(join(tmpdir(), "mvm-cfg-"));
  try {
    const path = join(dir, "config");
    await writeGuestConfig(path, { env: { SECRET: "s3cret" } });
    assert.equal((await stat(path)).mode & 0o777, 0o600);
    assert.match(await readFile(path, "utf8"), /SECRET=s3cret/);
    await assert.rejects(writeGuestConfig(path, {}), { code: "EEXIST" });
  } finally {
    await rm(dir, { recursive: true });
  }
});
