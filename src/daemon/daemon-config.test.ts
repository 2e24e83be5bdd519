import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { InvalidArgumentError } from "../errors.js";
import { checkConfig, checkConfigValue, isLoopback, listenSettings, parseListen, readConfig, writeConfig } from "./daemon-config.js";
import { planListen } from "./listen.js";

test("listen addresses: HOST:PORT and [IPv6]:PORT; loopback is 127/8, ::1 and localhost", () => {
  assert.deepEqual(parseListen("127.0.0.1:7070"), { host: "127.0.0.1", port: 7070 });
  assert.deepEqual(parseListen("[::1]:0"), { host: "::1", port: 0 });
  assert.deepEqual(parseListen("localhost:80"), { host: "localhost", port: 80 });
  for (const bad of ["7070", "127.0.0.1", "127.0.0.1:", "127.0.0.1:70000", "::1:7070", "a b:1", "host:port"]) assert.throws(() => parseListen(bad), InvalidArgumentError, bad);
  for (const h of ["127.0.0.1", "127.5.6.7", "::1", "localhost", "LOCALHOST"]) assert.ok(isLoopback(h), h);
  for (const h of ["0.0.0.0", "::", "10.0.0.1", "192.168.1.2", "example.com", "128.0.0.1"]) assert.ok(!isLoopback(h), h);
});

test("config values are checked one by one; unknown keys and bad values are refused", () => {
  assert.equal(checkConfigValue("listen", " 127.0.0.1:1 "), "127.0.0.1:1");
  assert.equal(checkConfigValue("insecureListen", "true"), true);
  assert.equal(checkConfigValue("insecureListen", false), false);
  assert.throws(() => checkConfigValue("insecureListen", "yes"), InvalidArgumentError);
  assert.throws(() => checkConfigValue("tlsCert", "cert.pem"), /absolute/);
  assert.throws(() => checkConfigValue("listen", 7070), InvalidArgumentError);
  assert.throws(() => checkConfigValue("port", "1"), /unknown setting/);
  assert.throws(() => checkConfig([]), InvalidArgumentError);
  assert.deepEqual(checkConfig({ listen: "[::1]:7", insecureListen: true }), { listen: "[::1]:7", insecureListen: true });
});

test("the config file: written atomically with mode 0600, read back, a bad file refused with its path; the environment wins", () => {
  const home = mkdtempSync(join(tmpdir(), "mvm-config-"));
  try {
    assert.deepEqual(readConfig(home), {});
    writeConfig(home, { listen: "127.0.0.1:7070" });
    assert.equal(statSync(join(home, "config.json")).mode & 0o777, 0o600);
    assert.deepEqual(JSON.parse(readFileSync(join(home, "config.json"), "utf8")), { listen: "127.0.0.1:7070" });
    assert.throws(() => writeConfig(home, { listen: "nope" }), InvalidArgumentError);
    assert.deepEqual(listenSettings(home, {}), { listen: "127.0.0.1:7070" });
    assert.deepEqual(listenSettings(home, { MVM_LISTEN: "127.0.0.2:1", MVM_INSECURE_LISTEN: "true" }), { listen: "127.0.0.2:1", insecureListen: true });
    writeFileSync(join(home, "config.json"), '{"listen":"127.0.0.1:1","colour":"blue"}');
    assert.throws(() => readConfig(home), (e: unknown) => e instanceof InvalidArgumentError && e.message.includes(join(home, "config.json")) && /colour/.test(e.message));
  } finally {
    rmSync(home, { recursive: true, force: true });
  }
});

test("planListen: loopback in clear, non-loopback only with TLS or insecureListen; both TLS files or neither", () => {
  const dir = mkdtempSync(join(tmpdir(), "mvm-tls-"));
  try {
    assert.equal(planListen({}), undefined);
    assert.deepEqual(planListen({ listen: "127.0.0.1:0" }), { address: { host: "127.0.0.1", port: 0 }, tls: undefined, insecure: false });
    assert.throws(() => planListen({ listen: "0.0.0.0:7070" }), (e: unknown) => e instanceof InvalidArgumentError && /without TLS/.test(e.message) && /--tls-cert/.test(e.hint ?? ""));
    assert.equal(planListen({ listen: "0.0.0.0:7070", insecureListen: true })?.insecure, true);
    assert.throws(() => planListen({ listen: "0.0.0.0:7070", tlsCert: "/x" }), /both a certificate and a key/);
    assert.throws(() => planListen({ listen: "0.0.0.0:7070", tlsCert: join(dir, "none.pem"), tlsKey: join(dir, "none.key") }), /cannot read the TLS certificate/);
    execFileSync("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", join(dir, "k.pem"), "-out", join(dir, "c.pem"), "-days", "1", "-subj", "/CN=localhost"], { stdio: "ignore" });
    const p = planListen({ listen: "0.0.0.0:7070", tlsCert: join(dir, "c.pem"), tlsKey: join(dir, "k.pem") });
    assert.ok(p?.tls && p.tls.cert.includes("BEGIN CERTIFICATE"));
    assert.equal(p.insecure, false);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
