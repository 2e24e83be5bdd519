// Hostile input against a real daemon (http-daemon.ts: the HTTP API over the fake QEMU, in a network
// namespace of its own where the host allows one), with fast-check: VM specs, other routes' bodies, paths
// and query strings, lines of an upgraded exec stream, CLI argument lists run through the real CLI, and the
// wire itself (bodies over their limit, clients that send half a body and vanish or trickle it, garbage).
// What must hold for every input: the daemon never crashes and never hangs (every request has a deadline
// here); every refusal is a 4xx in mvm's shape {error, message, hint, details} with a message, never
// INTERNAL; every VM created is a valid record that can be removed; and at the end nothing is left (no fake
// QEMU, no child of the daemon, no VM directory without its record, no open descriptor more than before).
// MVM_FUZZ_SEED replays a run; MVM_FUZZ_SCALE multiplies the number of inputs.

import assert from "node:assert/strict";
import { execFile, execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync, existsSync } from "node:fs";
import { request, type IncomingHttpHeaders } from "node:http";
import { connect } from "node:net";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { after, before, test, type TestContext } from "node:test";
import fc from "fast-check";
import { Value } from "@sinclair/typebox/value";
import { ImageBuildBodySchema, NetworkCreateBodySchema } from "../../src/api/resource-schemas.js";
import { EXEC_BODY_LIMIT, JSON_BODY_LIMIT } from "../../src/api/routes.js";
import { VmViewSchema } from "../../src/api/vm-schemas.js";
import { packageRoot } from "../../src/host/paths.js";
import { FAKE_QEMU, FakeHome, fakeQemuPids, waitFor } from "./harness.js";
import { startHttpDaemon, type HttpDaemon } from "./http-daemon.js";

const SEED = Number(process.env.MVM_FUZZ_SEED ?? 20251202);
const SCALE = Number(process.env.MVM_FUZZ_SCALE ?? 1);
const runs = (n: number) => Math.max(1, Math.round(n * SCALE));
/** A JSON body must arrive within this (the fuzz daemon's deadline, short so that stalls are cheap). */
const BODY_TIMEOUT_MS = 1500;
const CLI = fileURLToPath(new URL("../../src/cli/main.js", import.meta.url));
const T = { timeout: 120_000 };

/** Inputs tried, per category (reported at the end). */
const tried = { specs: 0, api: 0, execStreams: 0, cli: 0, wire: 0 };

let h: FakeHome;
let d: HttpDaemon;
/** Files the generators name: a kernel, disks, a folder, a FIFO (open() on one blocks), odd names. */
let fx: Record<"kernel" | "commaKernel" | "initrd" | "disk" | "qcow2" | "commaDisk" | "dir" | "commaDir" | "fifo" | "text", string>;
let scratch: string;
let baselineFds = 0;
/** Fixtures: a VM that is created (never started) and one that runs (the fake guest answers exec). */
const CREATED = "fz-created";
const RUNNING = "fz-run";

// ---------------------------------------------------------------------------------------------------------
// Talking to the daemon

interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  text: string;
}

/** One request over the daemon's socket, with a deadline: no answer in time fails the test (a hang). */
function call(method: string, path: string, o: { json?: unknown; raw?: string | Buffer; type?: string; timeoutMs?: number } = {}): Promise<Answer> {
  const body = o.raw ?? (o.json === undefined ? undefined : JSON.stringify(o.json));
  const headers: Record<string, string | number> = {};
  if (body !== undefined) {
    headers["content-type"] = o.type ?? "application/json";
    headers["content-length"] = Buffer.byteLength(body);
  } else if (o.type) headers["content-type"] = o.type;
  const ms = o.timeoutMs ?? 10_000;
  return new Promise((resolve, reject) => {
    const req = request({ socketPath: d.socket, method, path, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (b: Buffer) => chunks.push(b));
      res.on("end", () => {
        clearTimeout(timer);
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text: Buffer.concat(chunks).toString() });
      });
      res.on("error", reject);
    });
    const timer = setTimeout(() => req.destroy(new Error(`no answer to ${method} ${path} within ${ms} ms (a hang)`)), ms);
    req.on("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
    req.end(body);
  });
}

const short = (v: unknown) => {
  const s = typeof v === "string" ? v : (JSON.stringify(v) ?? String(v));
  return s.length > 400 ? `${s.slice(0, 400)}... (${s.length} chars)` : s;
};

/** An error body in mvm's shape, with a message, that is not a bug's. */
function assertErrorBody(body: unknown, what: string): { error: string; message: string; details: Record<string, unknown> } {
  const b = body as { error?: unknown; message?: unknown; hint?: unknown; details?: unknown };
  assert.ok(b && typeof b === "object", `${what}: the error is not an object: ${short(body)}`);
  assert.ok(typeof b.error === "string" && /^[A-Z][A-Z_]+$/.test(b.error), `${what}: error code ${short(b.error)}`);
  assert.ok(typeof b.message === "string" && b.message.trim().length > 0, `${what}: no message: ${short(body)}`);
  assert.equal(typeof b.hint, "string", `${what}: no hint: ${short(body)}`);
  assert.ok(b.details && typeof b.details === "object" && !Array.isArray(b.details), `${what}: details ${short(b.details)}`);
  assert.notEqual(b.error, "INTERNAL", `${what}: a bug answered: ${short(body)}`);
  return b as { error: string; message: string; details: Record<string, unknown> };
}

/** A refusal: a 4xx in mvm's shape. */
function assertRefusal(r: Answer, what: string): { error: string; message: string; details: Record<string, unknown> } {
  assert.ok(r.status >= 400 && r.status < 500, `${what}: answered ${r.status}, not a 4xx: ${short(r.text)}`);
  let body: unknown;
  try {
    body = JSON.parse(r.text);
  } catch {
    assert.fail(`${what}: a ${r.status} that is not JSON: ${short(r.text)}`);
  }
  return assertErrorBody(body, `${what} (${r.status})`);
}

/** One of the statuses a route answers when it takes the request, or a refusal. */
function assertAnswer(r: Answer, what: string, ok: number[]): boolean {
  if (ok.includes(r.status)) return true;
  assertRefusal(r, what);
  return false;
}

/** NDJSON lines of a stream answer; any error line must be in mvm's shape and not a bug. */
function ndjsonLines(r: Answer, what: string): Array<Record<string, unknown>> {
  const lines = r.text.split("\n").filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
  for (const l of lines) if (l.type === "error") assertErrorBody(l, `${what}: error line`);
  return lines;
}

/** A path segment as a client would encode it (lone surrogates become U+FFFD, as in UTF-8). */
const seg = (s: string) => [...Buffer.from(s, "utf8")].map((b) => (/[A-Za-z0-9\-._~]/.test(String.fromCharCode(b)) ? String.fromCharCode(b) : `%${b.toString(16).toUpperCase().padStart(2, "0")}`)).join("");
const query = (q: Record<string, unknown>) => {
  const parts = Object.entries(q).filter(([, v]) => v !== undefined).map(([k, v]) => `${seg(k)}=${seg(typeof v === "string" ? v : JSON.stringify(v))}`);
  return parts.length ? `?${parts.join("&")}` : "";
};

/**
 * Why a JSON body must be refused whatever the route, if it must: it is not an object, or a string in it
 * (key or value, at any depth) holds a NUL byte. Checked without recursion, as the daemon checks it.
 */
function mustRefuse(json: unknown): string | undefined {
  if (json === null || typeof json !== "object" || Array.isArray(json)) return "the body is not an object";
  const stack: unknown[] = [json];
  while (stack.length) {
    const v = stack.pop();
    if (typeof v === "string" && v.includes("\0")) return "a string holds a NUL byte";
    if (v && typeof v === "object") for (const [k, c] of Object.entries(v)) stack.push(k, c);
  }
  return undefined;
}

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const badEnvName = (json: unknown) => {
  const env = (json as { env?: unknown } | null)?.env;
  return env && typeof env === "object" && !Array.isArray(env) && Object.keys(env).some((k) => !ENV_NAME.test(k)) ? "an environment variable name that is not one" : undefined;
};

/** The daemon still runs and answers. */
async function assertAlive(what: string): Promise<void> {
  assert.ok(d.running(), `the daemon died (${what}); its log:\n${d.log().slice(-3000)}`);
  const r = await call("GET", "/v1/info");
  assert.equal(r.status, 200, `GET /v1/info after ${what}: ${r.status} ${short(r.text)}`);
}

/** fc.assert with the run's seed, which a failure names so that it can be replayed. */
async function check<T>(t: TestContext, name: string, arb: fc.Arbitrary<T>, numRuns: number, body: (v: T) => Promise<void>): Promise<void> {
  const t0 = Date.now();
  try {
    await fc.assert(
      fc.asyncProperty(arb, body),
      // Shrinking needs the daemon as it was; after a crash or a hang it is not, so the first failure is reported as it is.
      { seed: SEED, numRuns, endOnFailure: process.env.MVM_FUZZ_SHRINK !== "1" },
    );
  } catch (e) {
    const err = e as Error;
    err.message = `fuzz ${name} failed; replay with MVM_FUZZ_SEED=${SEED}\n${err.message}\ndaemon log tail:\n${d.log().slice(-1500)}`;
    throw err;
  }
  t.diagnostic(`${name}: ${numRuns} runs in ${Date.now() - t0} ms`);
}

// ---------------------------------------------------------------------------------------------------------
// What the generators throw

const HOSTILE = [
  "", " ", "\0", "a\0b", "\n", "\r\n", "\t", "\x7f", "\x1b[2J", "../", "../../../../etc/passwd", "/etc/passwd", "/", ".", "..",
  "a,b", ",,", ",", "=", "a=b", "x,id=evil", "file.driver=ssh,file.host=x", "-device", "--help", "-M", "-chardev", "socket,id=x",
  "%00", "%zz", "%", "\u202e", "\ufeff", "\ud800", "\udfff", "é", "e\u0301", "💥", "ＡＢＣ", "null", "true", "0", "-1", "1e309",
  "0x10", "__proto__", "constructor", "$(reboot)", "`id`", "'; DROP TABLE vms; --", "a".repeat(300), "A".repeat(70_000),
];
const weird: fc.Arbitrary<string> = fc.oneof(
  { arbitrary: fc.constantFrom(...HOSTILE), weight: 3 },
  { arbitrary: fc.string({ unit: fc.constantFrom("a", "Z", "0", "9", ",", "=", "/", ".", ":", "-", "_", " ", "\0", "\n", "é", "💥", "%", "\\", "\"", "'"), maxLength: 40 }), weight: 3 },
  { arbitrary: fc.string({ unit: "binary", maxLength: 16 }), weight: 1 },
  { arbitrary: fc.string({ maxLength: 16 }), weight: 1 },
);
const num = fc.oneof(fc.integer(), fc.integer({ min: -5, max: 70 }), fc.double(), fc.constantFrom(0, -0, -1, 0.5, 1.5, 2 ** 31, 2 ** 32, 2 ** 53, 2 ** 53 + 2, 1e308, -1e308, Number.MIN_VALUE));
const anyJson = fc.jsonValue({ maxDepth: 2 });
/** A wrong type (or a wrong value of the right one) for any key. */
const wrong: fc.Arbitrary<unknown> = fc.oneof(weird, num, fc.boolean(), fc.constant(null), fc.array(weird, { maxLength: 3 }), fc.dictionary(weird, anyJson, { maxKeys: 3 }));
/** Mostly what the key takes, sometimes anything at all. */
const or = <T>(good: fc.Arbitrary<T>, weight = 3): fc.Arbitrary<unknown> => fc.oneof({ arbitrary: good, weight }, { arbitrary: wrong, weight: 1 });
const extraKeys = fc.option(fc.dictionary(weird, anyJson, { minKeys: 1, maxKeys: 2 }), { freq: 6 });
const withExtra = <T extends object>(arb: fc.Arbitrary<T>) => fc.tuple(arb, extraKeys).map(([v, extra]) => (extra ? { ...extra, ...v } : v));

const validName = fc.stringMatching(/^[a-z0-9][a-z0-9-]{0,20}$/);
const envName = fc.stringMatching(/^[A-Za-z_][A-Za-z0-9_]{0,10}$/);
const onOff = or(fc.constantFrom("on", "off", "auto"));

function specArb(): fc.Arbitrary<unknown> {
  const hostFile = fc.constantFrom(fx.kernel, fx.initrd, fx.fifo, fx.text, fx.dir, fx.commaDisk, "/dev/zero", "/dev/null", "/dev/tty", "/nonexistent/vmlinux", "relative/vmlinux");
  const disk = fc.oneof(fc.constantFrom(fx.disk, `${fx.disk}:ro`, `${fx.disk}:rw`, fx.qcow2, fx.commaDisk, `${fx.commaDisk}:ro`, fx.fifo, fx.dir, "/dev/null", "/dev/zero", "relative.img", "../x.img", `${fx.disk}:xx`), weird);
  const volume = fc.oneof(fc.constantFrom(`${fx.dir}:/mnt/a`, `${fx.dir}:/mnt/a:ro`, `${fx.commaDir}:/mnt/b`, `/:/mnt`, `${fx.dir}:/proc`, `${fx.dir}:/`, `${fx.dir}:rel`, `${fx.fifo}:/mnt/f`, `${fx.dir}:/mnt/${"x".repeat(600)}`, `${fx.dir}:/mnt/a,b=c`), weird);
  const port = fc.oneof(fc.constantFrom("18080:80", "127.0.0.1:18081:80/udp", "0:1", "65536:1", "1:2:3:4", "18082:80/sctp", "18083:80,hostfwd=tcp::22-:22", "0.0.0.0:18084:22", "::1:18085:22"), weird);
  const spec = fc.record(
    {
      name: or(validName),
      cpus: or(fc.integer({ min: 1, max: 64 })),
      memory: or(fc.oneof(fc.integer({ min: 64, max: 4096 }), fc.constantFrom("256M", "1G", "64MiB", " 512 m", "1T", "2T", "63", "1e3"))),
      kernel: or(hostFile, 2),
      initrd: or(hostFile, 2),
      append: or(weird),
      cmdline: or(weird),
      accel: or(fc.constantFrom("auto", "kvm", "tcg")),
      binary: or(fc.constantFrom("auto", "full", "microvm")),
      hostname: or(validName),
      machine: or(fc.record({ acpi: onOff, pit: onOff, pic: onOff, rtc: onOff }, { requiredKeys: [] })),
      network: or(fc.constantFrom("none", "user", "user,restrict", "lan", "user,hostfwd=tcp::22-:22", "none,x")),
      ip: or(fc.constantFrom("10.0.0.5", "10.0.2.15", "256.1.1.1", "::1")),
      image: or(fc.constantFrom("nope", "debian", "../etc")),
      diskSize: or(fc.constantFrom("4G", 1024, "-1", "1T")),
      disks: or(fc.array(disk, { maxLength: 3 })),
      volumes: or(fc.array(volume, { maxLength: 3 })),
      ports: or(fc.array(port, { maxLength: 3 })),
      command: or(fc.array(weird, { maxLength: 4 })),
      env: or(fc.dictionary(fc.oneof(envName, weird), or(weird), { maxKeys: 4 })),
      workdir: or(weird),
      user: or(weird),
      snapshot: or(fc.constantFrom("nope", "..", "a/b")),
      boot: or(fc.constantFrom("auto", "cold")),
      ready: or(fc.record({ consoleLine: or(fc.constantFrom("login:", "mvm-init", "(", "[", "a{1,3}")) })),
      diskBps: or(fc.constantFrom("5M", 1048576, "0", "1X")),
      diskIops: or(fc.integer({ min: 1, max: 10000 })),
      netBps: or(fc.constantFrom("10M", -5)),
    },
    { requiredKeys: [] },
  );
  return fc.oneof({ arbitrary: withExtra(spec), weight: 10 }, { arbitrary: plausibleSpecArb(), weight: 8 }, { arbitrary: wrong, weight: 1 });
}

/** Free text with what QEMU's option lists, a shell or a config file would take for syntax, but no control characters. */
const text = fc.string({ unit: fc.constantFrom("a", "Z", "0", ",", "=", "/", ".", ":", "-", " ", "é", "💥", "%", "\\", "\"", "'", "$", "`", ";"), maxLength: 30 });

/** Specs the daemon should take: every key valid, but its text as odd as it may be (commas, '=', Unicode...). */
function plausibleSpecArb(): fc.Arbitrary<unknown> {
  const guestDir = fc.stringMatching(/^[a-z0-9][a-z0-9 ,=é-]{0,20}$/).map((s) => `/mnt/${s}`);
  const volume = fc.tuple(fc.constantFrom(fx.dir, fx.commaDir), guestDir, fc.constantFrom("", ":ro", ":rw")).map(([host, guest, ro]) => `${host}:${guest}${ro}`);
  const user = fc.record({ network: fc.constantFrom("user", "user,restrict"), ports: fc.uniqueArray(fc.integer({ min: 20000, max: 60000 }), { maxLength: 2 }).chain((ps) => fc.tuple(...ps.map((p) => fc.constantFrom(`${p}:80`, `127.0.0.1:${p}:22/udp`, `0.0.0.0:${p}:8080/tcp`)))) });
  return fc
    .record(
      {
        name: validName.map((n) => `ok-${n}`),
        cpus: fc.integer({ min: 1, max: 64 }),
        memory: fc.oneof(fc.integer({ min: 64, max: 2048 }), fc.constantFrom("256M", "1G", "64MiB")),
        // Now and then a FIFO (open() on one would wait for a writer): the rest of the spec is valid.
        kernel: fc.constantFrom(fx.kernel, fx.commaKernel, fx.kernel, fx.commaKernel, fx.kernel, fx.fifo),
        initrd: fc.constantFrom(fx.initrd, fx.commaDisk, fx.initrd, fx.commaDisk, fx.initrd, fx.fifo),
        append: text,
        accel: fc.constantFrom("auto", "tcg"),
        binary: fc.constantFrom("auto", "full"),
        hostname: fc.stringMatching(/^[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?$/),
        machine: fc.record({ pit: fc.constantFrom("on", "off", "auto"), rtc: fc.constantFrom("on", "auto") }, { requiredKeys: [] }),
        disks: fc.array(fc.constantFrom(fx.disk, `${fx.disk}:ro`, fx.commaDisk, `${fx.commaDisk}:ro`, fx.qcow2), { maxLength: 3 }),
        volumes: fc.uniqueArray(volume, { maxLength: 2, selector: (v) => v.split(":")[1] }),
        command: fc.array(text, { minLength: 1, maxLength: 3 }),
        env: fc.dictionary(envName, text, { maxKeys: 4 }),
        workdir: text.map((s) => `/${s}`),
        user: fc.constantFrom("root", "0", "nobody", "1000:1000"),
        boot: fc.constantFrom("auto", "cold"),
      },
      { requiredKeys: [] },
    )
    .chain((s) => fc.option(user, { freq: 3 }).map((u) => (u ? { ...s, ...u } : s)));
}

/** Commands the fake guest runs at once (no sleep, no cat, no poweroff: nothing that waits or ends the VM). */
const argvArb = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.tuple(fc.constantFrom("true", "false", "echo", "nope", "sh"), fc.array(weird, { maxLength: 3 })).map(([c, rest]) =>
      c === "sh" ? ["sh", "-c", rest.join(" ").replace(/sleep|cat|poweroff/g, "x")] : [c, ...rest],
    ),
  },
  { weight: 1, arbitrary: wrong },
);

const execBodyArb = withExtra(
  fc.record(
    {
      argv: argvArb,
      env: or(fc.dictionary(fc.oneof(envName, weird), or(weird), { maxKeys: 3 })),
      cwd: or(weird),
      user: or(weird),
      timeoutMs: or(fc.integer({ min: 1, max: 10_000 })),
      input: or(fc.base64String({ maxLength: 64 })),
      background: or(fc.boolean()),
      stdin: or(fc.boolean()),
      tty: or(fc.record({ rows: or(fc.integer({ min: 1, max: 300 })), cols: or(fc.integer({ min: 1, max: 300 })) })),
    },
    { requiredKeys: ["argv"] },
  ),
);

/** Exec bodies the daemon should take: valid keys, odd text. */
const plausibleExecArb = fc.record(
  {
    argv: fc.tuple(fc.constantFrom("true", "false", "echo", "nope"), fc.array(fc.string({ maxLength: 12 }).map((s) => s.replaceAll("\0", "")), { maxLength: 3 })).map(([c, rest]) => [c, ...rest]),
    env: fc.dictionary(envName, fc.string({ maxLength: 12 }).map((s) => s.replaceAll("\0", "")), { maxKeys: 3 }),
    cwd: fc.constantFrom("/", "/tmp", "/a,b=c"),
    user: fc.constantFrom("root", "0"),
    timeoutMs: fc.integer({ min: 1000, max: 10_000 }),
    input: fc.base64String({ maxLength: 64 }),
    background: fc.boolean(),
    stdin: fc.boolean(),
  },
  { requiredKeys: ["argv"] },
);

const FILE_OPS = ["stat", "list", "mkdir", "rename", "remove", "chmod", "chown", "symlink"];
const guestPathArb = or(fc.oneof(fc.constantFrom("/", "/root", "/tmp/x", "/a,b=c", "/../../etc", "relative", "", "/x\0y", `/${"p".repeat(5000)}`), weird.map((s) => `/${s}`)));
const fileBodyArb = withExtra(
  fc.record(
    {
      path: guestPathArb,
      to: guestPathArb,
      target: guestPathArb,
      depth: or(fc.integer({ min: 0, max: 1000 })),
      mode: or(fc.oneof(fc.integer({ min: 0, max: 0o7777 }), fc.constantFrom("0644", "777", "8", "-1", "0o644"))),
      owner: or(fc.constantFrom("root", "1000:1000", "a:b:c", "", "x".repeat(200))),
      parents: or(fc.boolean()),
      recursive: or(fc.boolean()),
    },
    { requiredKeys: [] },
  ),
);

/** A VM reference that names none of the fixtures (names, ids or id prefixes): routes that act on it find nothing. */
const strangerRef = weird.filter((s) => s.length > 0 && s !== CREATED && s !== RUNNING && !/^[0-9a-f]{3,}$/.test(s) && s.length < 90);

interface Req {
  method: string;
  path: string;
  json?: unknown;
  raw?: string | Buffer;
  type?: string;
  /** Statuses that mean it was taken; anything else must be a refusal. */
  ok: number[];
  /** What to check (and clean up) when it was taken. */
  then?: (r: Answer) => Promise<void>;
}

function apiArb(): fc.Arbitrary<Req> {
  const run = `/v1/vms/${RUNNING}`;
  const exec = fc.oneof(execBodyArb, plausibleExecArb).map(
    (json): Req => ({
      method: "POST",
      path: `${run}/exec`,
      json,
      ok: [200, 201],
      then: async (r) => {
        if (r.status === 201) {
          const info = JSON.parse(r.text) as { id: string };
          const gone = await call("DELETE", `${run}/sessions/${seg(info.id)}`);
          assert.equal(gone.status, 204, `removing session ${info.id}: ${short(gone.text)}`);
          return;
        }
        const lines = ndjsonLines(r, "exec");
        assert.equal(lines[0]?.type, "session", short(r.text));
        assert.ok(["exit", "error"].includes(String(lines.at(-1)?.type)), `the exec stream did not end with exit or error: ${short(r.text)}`);
      },
    }),
  );
  const fileOp = fc.tuple(fc.oneof(fc.constantFrom(...FILE_OPS), weird), fileBodyArb).map(([op, json]): Req => ({ method: "POST", path: `${run}/files/${seg(op)}`, json, ok: [200] }));
  const fileQuery = fc.record({ path: guestPathArb, mode: or(fc.constantFrom("0644", "9")), owner: or(fc.constantFrom("root", "a b")), parents: or(fc.constantFrom("true", "false")), exclusive: or(fc.constantFrom("true", "false")) }, { requiredKeys: [] });
  const fileRead = fc.tuple(fileQuery, extraKeys).map(([q, x]): Req => ({ method: "GET", path: `${run}/files/content${query({ ...x, ...q })}`, ok: [200] }));
  const fileWrite = fc.tuple(fileQuery, fc.uint8Array({ maxLength: 2048 }), fc.constantFrom("application/octet-stream", "application/json", "application/x-tar")).map(
    ([q, bytes, type]): Req => ({ method: "PUT", path: `${run}/files/content${query(q)}`, raw: Buffer.from(bytes), type, ok: [200] }),
  );
  // The created VM cannot be snapshotted (not running): a valid body is a 409, any other a 400.
  const snapshot = or(withExtra(fc.record({ name: or(validName) }, { requiredKeys: [] }))).map((json): Req => ({ method: "POST", path: `/v1/vms/${CREATED}/snapshots`, json, ok: [] }));
  const snapshotPath = fc.tuple(fc.constantFrom("GET", "DELETE"), weird.filter((s) => s.length > 0)).map(([method, n]): Req => ({ method, path: `/v1/snapshots/${seg(n)}`, ok: [] }));
  const networkBody = withExtra(fc.record({ name: or(fc.oneof(validName.map((n) => `fz${n}`.slice(0, 15)), fc.constantFrom("none", "user", "lan"))), subnet: or(fc.constantFrom("10.77.0.0/24", "10.78.0.0/30", "10.0.0.0/8", "192.168.0.0/33", "1.2.3.4/24", "10.79.0.0/24,x")), nat: or(fc.boolean()) }, { requiredKeys: [] }));
  // Outside a network namespace of its own, a valid body would make a bridge on the host: such bodies are not sent.
  const network = networkBody
    .filter((b) => d.netns || !Value.Check(NetworkCreateBodySchema, b))
    .map(
      (json): Req => ({
        method: "POST",
        path: "/v1/networks",
        json,
        ok: [201],
        then: async (r) => {
          const n = JSON.parse(r.text) as { name: string };
          const gone = await call("DELETE", `/v1/networks/${seg(n.name)}`);
          assert.equal(gone.status, 204, `removing network ${n.name}: ${short(gone.text)}`);
        },
      }),
    );
  const importFile = or(fc.constantFrom(fx.text, fx.fifo, fx.dir, fx.qcow2, fx.disk, "/dev/zero", "/dev/null", "/nonexistent", "relative.img"));
  const imageImport = withExtra(fc.record({ file: importFile, name: or(validName.map((n) => `fz${n}`)) }, { requiredKeys: [] })).map(
    (json): Req => ({
      method: "POST",
      path: "/v1/images/import",
      json,
      ok: [200],
      then: async (r) => {
        // What only the tools can tell (a damaged qcow2) comes after the stream started: its last line says.
        const last = ndjsonLines(r, "image import").at(-1);
        assert.ok(last?.type === "error" || last?.type === "done", `the import did not end: ${short(r.text)}`);
        if (last.type === "done") await call("DELETE", `/v1/images/${seg((last.image as { name: string }).name)}`);
      },
    }),
  );
  // A body that would run debootstrap (valid, with valid package names) is not sent: only refusals are.
  const wouldBuild = (b: unknown) => Value.Check(ImageBuildBodySchema, b) && ((b as { packages?: string[] }).packages ?? []).every((p) => /^[a-z0-9][a-z0-9+.-]*$/.test(p));
  const imageBuild = withExtra(fc.record({ distro: or(fc.constantFrom("debian", "ubuntu")), suite: or(fc.constantFrom("bookworm", "Bookworm", "../x")), packages: or(fc.array(or(fc.constantFrom("curl", "a b", "-rf", "x;y")), { maxLength: 3 })), name: or(validName) }, { requiredKeys: [] }))
    .filter((b) => !wouldBuild(b))
    .map((json): Req => ({ method: "POST", path: "/v1/images/build", json, ok: [] }));
  const byName = fc.tuple(fc.constantFrom("DELETE /v1/images/", "DELETE /v1/networks/", "GET /v1/snapshots/"), weird.filter((s) => s.length > 0)).map(([mp, n]): Req => {
    const [method, path] = mp.split(" ") as [string, string];
    return { method, path: `${path}${seg(n)}`, ok: [] };
  });
  // Every VM route, on a VM that does not exist: never taken.
  const vmRoutes = [
    "GET ", "DELETE ", "POST /start", "POST /stop", "POST /kill", "POST /pause", "POST /resume", "POST /suspend", "POST /wait", "POST /attach", "POST /snapshots", "POST /exec",
    "GET /logs", "GET /sessions", "GET /sessions/1", "DELETE /sessions/1", "POST /sessions/1/wait", "POST /sessions/1/signal", "POST /sessions/1/stdin", "GET /sessions/1/attach",
    "POST /files/stat", "GET /files/content", "PUT /files/content",
  ];
  const stranger = fc.tuple(fc.constantFrom(...vmRoutes), strangerRef, fc.option(anyJson)).map(([mp, ref, json]): Req => {
    const [method, rest] = mp.split(" ") as [string, string];
    return { method, path: `/v1/vms/${seg(ref)}${rest}`, json: json ?? undefined, ok: [] };
  });
  // Sessions of the running VM that do not exist.
  const sessions = fc.tuple(fc.constantFrom("GET ", "DELETE ", "POST /wait", "POST /signal", "POST /stdin", "GET /attach"), weird.filter((s) => s.length > 0 && s !== "job"), fc.option(or(fc.record({ signal: or(fc.integer({ min: 1, max: 64 })) })))).map(
    ([mp, id, json]): Req => {
      const [method, rest] = mp.split(" ") as [string, string];
      return rest === "/stdin" ? { method, path: `${run}/sessions/${seg(id)}${rest}`, raw: Buffer.from("x"), type: "application/octet-stream", ok: [] } : { method, path: `${run}/sessions/${seg(id)}${rest}`, json: json ?? undefined, ok: [] };
    },
  );
  // Query strings on the fixtures, with anything that would stream for ever or remove them left out.
  const flag = or(fc.constantFrom("true", "false"));
  const queries = fc.oneof(
    fc.record({ console: flag, follow: flag.filter((f) => f !== "true" && f !== true), x: fc.option(weird) }, { requiredKeys: [] }).map((q): Req => ({ method: "GET", path: `${run}/logs${query(q)}`, ok: [200] })),
    fc.record({ attach: flag, x: fc.option(weird) }, { requiredKeys: [] }).map((q): Req => ({ method: "POST", path: `${run}/start${query(q)}`, ok: [] })),
    fc.record({ force: flag.filter((f) => f !== "true" && f !== true) }, { requiredKeys: [] }).map((q): Req => ({ method: "DELETE", path: `${run}${query(q)}`, ok: [] })),
    fc.record({ eof: flag }, { requiredKeys: [] }).map((q): Req => ({ method: "POST", path: `${run}/sessions/job/stdin${query(q)}`, raw: Buffer.from("x"), type: "application/octet-stream", ok: [] })),
    fc.dictionary(weird, weird, { maxKeys: 3 }).map((q): Req => ({ method: "GET", path: `/v1/vms${query(q)}`, ok: [200] })),
    fc.dictionary(weird, weird, { maxKeys: 3 }).map((q): Req => ({ method: "GET", path: `/v1/info${query(q)}`, ok: [200] })),
  );
  // Raw request targets: odd percent-encoding, dot segments, doubled slashes, long ones.
  const rawPath = fc
    .tuple(
      fc.constantFrom("GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"),
      fc.array(fc.constantFrom("/", "v1", "vms", "images", "files", "content", "exec", "sessions", "openapi.json", "%", "%00", "%zz", "%2F", "%2e%2e", "%C0%AF", "%FF", "..", ".", "//", "?", "&", "=", "#", "a", ";", "~", "+", "*", "x".repeat(150)), { minLength: 1, maxLength: 10 }),
    )
    .map(([method, parts]): Req => ({ method, path: `/${parts.join("")}`, ok: [200, 201, 204] }));
  return fc.oneof(
    { arbitrary: exec, weight: 5 },
    { arbitrary: fileOp, weight: 3 },
    { arbitrary: fileRead, weight: 1 },
    { arbitrary: fileWrite, weight: 1 },
    { arbitrary: snapshot, weight: 1 },
    { arbitrary: snapshotPath, weight: 1 },
    { arbitrary: network, weight: 2 },
    { arbitrary: imageImport, weight: 2 },
    { arbitrary: imageBuild, weight: 1 },
    { arbitrary: byName, weight: 1 },
    { arbitrary: stranger, weight: 4 },
    { arbitrary: sessions, weight: 2 },
    { arbitrary: queries, weight: 2 },
    { arbitrary: rawPath, weight: 2 },
  );
}

// ---------------------------------------------------------------------------------------------------------
// Raw connections: what a client that misbehaves on the wire sends

interface RawResult {
  /** What came back before the connection closed (or the deadline). */
  text: string;
  status?: number;
  body?: unknown;
  /** Bytes written when the first answer bytes arrived (how early a refusal came). */
  sentAtAnswer?: number;
  closed: boolean;
}

/**
 * Writes the pieces (strings or buffers; numbers are pauses in ms) to a fresh connection, then ends it
 * (`end`), destroys it (`destroy`) or leaves it open (`keep`), and collects the answer until the daemon
 * closes the connection or `readMs` passes.
 */
async function rawSend(pieces: Array<string | Buffer | number>, o: { after?: "end" | "destroy" | "keep"; readMs?: number; stopOnAnswer?: boolean } = {}): Promise<RawResult> {
  const s = connect(d.socket);
  let text = "";
  let sent = 0;
  let sentAtAnswer: number | undefined;
  let closed = false;
  s.on("data", (b: Buffer) => {
    sentAtAnswer ??= sent;
    text += b.toString();
  });
  const done = new Promise<void>((resolve) => {
    s.on("close", () => {
      closed = true;
      resolve();
    });
    s.on("error", () => undefined);
  });
  await new Promise<void>((resolve) => {
    s.once("connect", () => resolve());
    s.once("error", () => resolve());
  });
  for (const p of pieces) {
    if (closed || (o.stopOnAnswer && sentAtAnswer !== undefined)) break;
    if (typeof p === "number") {
      await new Promise((r) => setTimeout(r, p));
      continue;
    }
    sent += p.length;
    if (!s.write(p)) await Promise.race([new Promise((r) => s.once("drain", r)), done]);
    // A turn of the event loop between writes, so that an answer sent early is read before a write that
    // follows the daemon's close fails (EPIPE) and takes the socket, and the unread answer, with it.
    await new Promise((r) => setImmediate(r));
  }
  if (o.after === "destroy") s.destroy();
  else if (o.after !== "keep") s.end();
  await Promise.race([done, new Promise((r) => setTimeout(r, o.readMs ?? 5000))]);
  if (!closed) s.destroy();
  const r: RawResult = { text, sentAtAnswer, closed };
  const m = /^HTTP\/1\.1 (\d{3})/.exec(text);
  if (m) {
    r.status = Number(m[1]);
    // The first answer's body (its content-length says where it ends; more answers may follow it).
    const start = text.indexOf("\r\n\r\n") + 4;
    const length = /\r\ncontent-length: (\d+)\r\n/i.exec(text.slice(0, start));
    const bodyText = length ? Buffer.from(text.slice(start)).subarray(0, Number(length[1])).toString() : text.slice(start);
    try {
      r.body = bodyText ? JSON.parse(bodyText) : undefined;
    } catch {
      r.body = bodyText;
    }
  }
  return r;
}

const head = (method: string, path: string, extra: string[] = []) => `${method} ${path} HTTP/1.1\r\nhost: mvm\r\n${extra.map((x) => `${x}\r\n`).join("")}\r\n`;

/** Routes that take a JSON body, from the daemon's own OpenAPI document, with the limit each one has. */
async function jsonRoutes(): Promise<Array<{ method: string; path: string; limit: number }>> {
  const doc = JSON.parse((await call("GET", "/v1/openapi.json")).text) as { paths: Record<string, Record<string, { requestBody?: { content?: Record<string, unknown> } }>> };
  const out: Array<{ method: string; path: string; limit: number }> = [];
  for (const [p, ops] of Object.entries(doc.paths)) {
    for (const [m, op] of Object.entries(ops)) {
      // GET ones are upgrades, whose request is the first line of the stream, not a body.
      if (m === "get" || !op.requestBody?.content?.["application/json"]) continue;
      const path = p.replace("{ref}", RUNNING).replace("{id}", "1").replace("{op}", "stat").replace("{name}", "x");
      out.push({ method: m.toUpperCase(), path, limit: path.endsWith("/exec") ? EXEC_BODY_LIMIT : JSON_BODY_LIMIT });
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------
// The CLI

interface CliCase {
  args: string[];
  /** A spec file to write first (-f FILE names it). */
  specFile?: unknown;
}

const noNul = (s: string) => s.replaceAll("\0", "\\0");
const cliWord = weird.map(noNul).filter((s) => s !== "debian" && s.length < 10_000);

function cliArb(): fc.Arbitrary<CliCase> {
  const plausible = fc.constantFrom("256M", "1G", "-1", "0", "1e3", "A=1", "=x", "A", "A=b=c", "18090:80", "user", "user,restrict", "lan", fx.disk, `${fx.disk}:ro`, `${fx.dir}:/mnt`, `${fx.commaDir}:/mnt/c`, fx.fifo, fx.kernel, fx.commaDisk, "pit=off", "pit=off,x=y", "acpi", "cold", "tcg", "kvm", "full", "5M", "fz-created");
  const value = fc.oneof(cliWord, plausible);
  const vmFlag = fc.oneof(
    { weight: 5, arbitrary: fc.tuple(fc.constantFrom("--name", "--cpus", "--memory", "-e", "-p", "--disk", "-v", "--network", "--ip", "--kernel", "--initrd", "--append", "--cmdline", "--machine", "--boot", "--accel", "--binary", "--hostname", "--disk-size", "--image", "--snapshot", "-w", "-u", "--disk-bps", "--disk-iops", "--net-bps"), value) },
    { weight: 1, arbitrary: fc.constantFrom(["--json"], ["--bogus"], ["-x"], ["-"], ["--memory"], ["-e"], ["--help"]) },
  );
  const cmd = fc.array(fc.oneof(fc.constantFrom("true", "false", "echo", "nope"), cliWord.map((s) => s.replace(/sleep|cat|poweroff/g, "x"))), { minLength: 1, maxLength: 3 });
  const vmCmd = fc.tuple(fc.constantFrom(["create"], ["run", "-d"], ["run", "--rm"]), fc.array(vmFlag, { maxLength: 5 }), fc.option(cmd)).map(([c, flags, command]): CliCase => {
    const run = c[1] === "--rm" ? ["--", ...(command ?? ["true"])] : command ? ["--", ...command] : [];
    return { args: [...c, ...flags.flat(), ...run] };
  });
  const fromFile = fc.tuple(specArb(), fc.array(vmFlag, { maxLength: 2 })).map(([spec, flags]): CliCase => ({ args: ["create", "-f", "SPEC", ...flags.flat()], specFile: spec }));
  const ref = fc.oneof(strangerRef.map(noNul), fc.constant(CREATED));
  const lifecycle = fc.tuple(fc.constantFrom("start", "stop", "kill", "pause", "resume", "suspend", "rm", "inspect", "logs"), fc.array(fc.oneof(ref, fc.constantFrom("-f", "--json", "--console", "-a")), { maxLength: 3 })).map(
    ([c, rest]): CliCase => ({ args: [c, ...rest] }),
  );
  const exec = fc.tuple(fc.array(fc.oneof(fc.tuple(fc.constantFrom("-e", "-w", "-u", "--timeout"), value), fc.constantFrom(["-d"], ["-i"], ["--json"])), { maxLength: 3 }), cmd).map(([flags, command]): CliCase => ({ args: ["exec", ...flags.flat(), RUNNING, "--", ...command] }));
  const others = fc.oneof(
    fc.constantFrom<CliCase>({ args: ["ps"] }, { args: ["ps", "-a", "--json"] }, { args: ["ps", "--bogus"] }, { args: ["snapshot", "ls"] }, { args: ["network", "ls"] }, { args: ["image", "ls"] }, { args: ["prune"] }, { args: ["inspect", RUNNING] }, { args: ["logs", RUNNING] }, { args: ["logs", "--console", RUNNING] }, { args: ["session", "ls", RUNNING] }, { args: ["--version"] }, { args: [] }),
    fc.tuple(fc.constantFrom("snapshot inspect", "snapshot rm", "network rm", "image rm", "session ls", "snapshot create fz-created --name"), cliWord).map(([c, w]): CliCase => ({ args: [...c.split(" "), w] })),
    fc.tuple(fc.oneof(fc.constantFrom(fx.text, fx.fifo, fx.dir, "/dev/zero"), cliWord), cliWord).map(([f, n]): CliCase => ({ args: ["image", "import", f, "--name", n] })),
    fc.tuple(fc.oneof(fc.constantFrom(fx.text, fx.dir, fx.fifo), cliWord), cliWord).map(([src, dst]): CliCase => ({ args: ["cp", src, `${RUNNING}:/tmp/${dst}`] })),
    fc.tuple(cliWord, cliWord).map(([src, dst]): CliCase => ({ args: ["cp", `${RUNNING}:${src}`, `out-${dst.replace(/[/.\\]/g, "_")}`] })),
    cliWord.filter(() => d.netns).map((n): CliCase => ({ args: ["network", "create", n] })),
  );
  // Anything at all, except the commands that boot real guests, run benchmarks, start a daemon of their own or wait on a terminal.
  const unsafe = /^(bench|daemon|doctor|console|wait|session|image|network|run|create|exec|cp|attach|start|stop|kill|pause|resume|suspend|rm|prune|logs|snapshot)$/;
  const raw = fc.array(cliWord, { minLength: 1, maxLength: 4 }).filter((a) => !unsafe.test(a[0]!)).map((args): CliCase => ({ args }));
  return fc.oneof({ arbitrary: vmCmd, weight: 4 }, { arbitrary: fromFile, weight: 2 }, { arbitrary: lifecycle, weight: 3 }, { arbitrary: exec, weight: 3 }, { arbitrary: others, weight: 3 }, { arbitrary: raw, weight: 2 });
}

interface CliRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

function runCli(c: CliCase, n: number): Promise<CliRun> {
  let args = c.args;
  if (c.specFile !== undefined) {
    const file = join(scratch, `spec-${n}.json`);
    writeFileSync(file, JSON.stringify(c.specFile) ?? "null");
    args = args.map((a) => (a === "SPEC" ? file : a));
  }
  // The daemon of this home is the fuzz daemon (it holds the lock); these only matter if it were gone.
  // MVM_CACHE: `create` and `run` look for the guest artefacts themselves (seedGuestCache).
  const env = { ...process.env, MVM_HOME: h.home, MVM_QEMU: FAKE_QEMU, MVM_QEMU_MICROVM: "/nonexistent", MVM_TEMPLATES: "0", MVM_JAIL: "0", MVM_CACHE: join(scratch, "cache") };
  return new Promise((resolve) => {
    const child = execFile(process.execPath, [CLI, ...args], { env, cwd: scratch, timeout: 20_000, killSignal: "SIGKILL", maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      const e = err as (Error & { code?: number | string; signal?: NodeJS.Signals }) | null;
      resolve({ code: e ? (typeof e.code === "number" ? e.code : null) : 0, signal: e?.signal ?? null, stdout, stderr });
    });
    child.stdin?.end();
  });
}

/** A JavaScript stack trace: what an uncaught error prints, and what mvm's own errors never do. */
const STACK = /\n\s+at (?:\S+ \()?(?:file:\/\/|node:|\/)[^\n]*:\d+:\d+\)?/;

function assertCli(c: CliCase, r: CliRun): void {
  const what = `mvm ${c.args.map((a) => short(a)).join(" ")}${c.specFile !== undefined ? ` with spec ${short(c.specFile)}` : ""}`;
  assert.equal(r.signal, null, `${what}: killed by ${r.signal} (hung for 20 s?)\nstderr: ${short(r.stderr)}`);
  assert.equal(typeof r.code, "number", `${what}: no exit code`);
  assert.doesNotMatch(r.stderr, STACK, `${what}: printed a stack trace:\n${r.stderr.slice(0, 2000)}`);
  assert.doesNotMatch(r.stdout, STACK, `${what}: printed a stack trace on stdout:\n${r.stdout.slice(0, 2000)}`);
  assert.doesNotMatch(r.stderr + r.stdout, /"error":"INTERNAL"|mvm: error: .*(TypeError|RangeError|ReferenceError|SyntaxError)/, `${what}: a bug:\n${r.stderr.slice(0, 2000)}`);
  // An error, or the usage (commander shows it for a missing command).
  if (r.code === 125) assert.ok(/error/i.test(r.stderr) || /"error"/.test(r.stdout) || /^Usage:/m.test(r.stdout + r.stderr), `${what}: exit 125 without saying why:\n${r.stderr}`);
}

/**
 * `mvm create` and `mvm run` make sure of the guest kernel and initramfs before they ask the daemon
 * (guest/build.sh, whose fast path is a manifest keyed by the guest sources). The CLI runs here get a cache
 * of their own whose manifest names the fixtures, and whose build lock is a directory: should the key
 * change during the run (someone editing guest/), build.sh fails at once instead of building a kernel.
 */
function seedGuestCache(cache: string): void {
  const key = execFileSync("bash", ["-c", 'source "$0/guest/lib/common.sh" && find "$GUEST_DIR" -type f ! -name "*.o" -print0 | LC_ALL=C sort -z | xargs -0 cat | sha256sum | cut -c1-16', packageRoot], { env: { ...process.env, MVM_CACHE: cache } })
    .toString()
    .trim();
  mkdirSync(join(cache, "guest"), { recursive: true });
  mkdirSync(join(cache, ".guest-build.lock"));
  const manifest = {
    kernel: { dir: dirname(fx.kernel), vmlinux: fx.kernel, bzImage: fx.kernel, info: { release: "6.1.0-fake", sourceVersion: "fake", hz: 1000, key: "fake", buildSeconds: 0 } },
    initramfs: { dir: dirname(fx.initrd), path: fx.initrd, info: { busyboxVersion: "fake", key: "fake", bytes: 17, agentBytes: 0, initBytes: 0 } },
  };
  writeFileSync(join(cache, "guest", `${key}.json`), JSON.stringify(manifest));
}

// ---------------------------------------------------------------------------------------------------------

before(async () => {
  h = new FakeHome();
  scratch = mkdtempSync(join(h.home, "..", "mvm-fuzz-cwd-"));
  const dir = join(h.home, "fx");
  mkdirSync(join(dir, "share"), { recursive: true });
  mkdirSync(join(dir, "share,id=x=y"), { recursive: true });
  fx = {
    kernel: join(dir, "vmlinux"),
    commaKernel: join(dir, "vm,linux=x,id=y"),
    initrd: join(dir, "initrd"),
    disk: join(dir, "disk.raw"),
    qcow2: join(dir, "disk.qcow2"),
    commaDisk: join(dir, "a,file.driver=ssh=x.img"),
    dir: join(dir, "share"),
    commaDir: join(dir, "share,id=x=y"),
    fifo: join(dir, "fifo"),
    text: join(dir, "notes.txt"),
  };
  writeFileSync(fx.kernel, Buffer.concat([Buffer.from([0x7f, 0x45, 0x4c, 0x46]), Buffer.alloc(1020)]));
  writeFileSync(fx.commaKernel, Buffer.concat([Buffer.from([0x7f, 0x45, 0x4c, 0x46]), Buffer.alloc(1020)]));
  seedGuestCache(join(scratch, "cache"));
  writeFileSync(fx.initrd, "not an initramfs\n");
  writeFileSync(fx.disk, Buffer.alloc(65536));
  writeFileSync(fx.qcow2, Buffer.concat([Buffer.from("QFI\xfb", "latin1"), Buffer.alloc(508)]));
  writeFileSync(fx.commaDisk, Buffer.alloc(4096));
  writeFileSync(fx.text, "just text\n");
  execFileSync("mkfifo", [fx.fifo]);
  d = await startHttpDaemon(h, { knobs: { readyTimeoutMs: 5000 }, body: { bodyTimeoutMs: BODY_TIMEOUT_MS }, netns: true });
  baselineFds = d.fds().length;
  assert.equal((await call("POST", "/v1/vms", { json: { name: CREATED } })).status, 201);
  assert.equal((await call("POST", "/v1/vms", { json: { name: RUNNING } })).status, 201);
  const started = await call("POST", `/v1/vms/${RUNNING}/start`, { timeoutMs: 20_000 });
  assert.equal(started.status, 200, short(started.text));
});

after(async () => {
  // VMs outlive their daemon: when a test failed before the last one removed them, they go here.
  if (d?.running()) {
    for (const vm of (JSON.parse((await call("GET", "/v1/vms").catch(() => ({ text: "[]" }))).text) as Array<{ id: string }>)) await call("DELETE", `/v1/vms/${vm.id}?force=true`).catch(() => undefined);
  }
  await d?.stop();
  await h?.close();
  rmSync(scratch, { recursive: true, force: true });
});

test("VM specs: every create is a valid record that can be removed, every refusal a 4xx in mvm's shape", T, async (t) => {
  let accepted = 0;
  let started = 0;
  await check(t, "specs", specArb(), runs(500), async (spec) => {
    tried.specs++;
    const r = await call("POST", "/v1/vms", { json: spec });
    const what = `POST /v1/vms ${short(spec)}`;
    const refuse = mustRefuse(spec) ?? badEnvName(spec);
    if (!assertAnswer(r, `${what}${refuse ? ` (must be refused: ${refuse})` : ""}`, refuse ? [] : [201])) return;
    accepted++;
    const view = JSON.parse(r.text) as { id: string; name: string; state: string; spec: Record<string, unknown> };
    assert.ok(Value.Check(VmViewSchema, view), `${what}: the view does not match its schema: ${short([...Value.Errors(VmViewSchema, view)].slice(0, 3).map((e) => `${e.path} ${e.message}`))}`);
    assert.equal(view.state, "created");
    assert.ok(existsSync(join(h.home, "vms", view.id)), `${what}: no directory for ${view.id}`);
    assert.equal((await call("GET", `/v1/vms/${view.id}`)).status, 200);
    // Some of them boot (on the fake QEMU): the argv built from hostile values must be one QEMU takes.
    if (accepted % 10 === 0 && view.spec.ready === undefined) {
      started++;
      const s = await call("POST", `/v1/vms/${view.id}/start`, { timeoutMs: 20_000 });
      if (s.status === 200) assert.equal((JSON.parse(s.text) as { state: string }).state, "running");
      else assertErrorBody(JSON.parse(s.text), `${what}: start (${s.status})`);
    }
    const rm = await call("DELETE", `/v1/vms/${view.id}?force=true`);
    assert.equal(rm.status, 204, `${what}: remove answered ${rm.status} ${short(rm.text)}`);
    assert.ok(!existsSync(join(h.home, "vms", view.id)), `${what}: its directory outlived it`);
  });
  t.diagnostic(`specs: ${tried.specs} tried, ${accepted} accepted, ${started} started`);
  await assertAlive("the specs");
});

test("API bodies, paths and query strings of the other routes: taken, or refused with a 4xx in mvm's shape", T, async (t) => {
  const statuses: Record<number, number> = {};
  await check(t, "api", apiArb(), runs(450), async (req) => {
    tried.api++;
    const r = await call(req.method, req.path, { json: req.json, raw: req.raw, type: req.type, timeoutMs: 15_000 });
    statuses[r.status] = (statuses[r.status] ?? 0) + 1;
    const what = `${req.method} ${short(req.path)} ${req.json !== undefined ? short(req.json) : req.raw !== undefined ? `(${req.raw.length} raw bytes, ${req.type})` : ""}`;
    if (req.method === "OPTIONS" && r.status === 204) return;
    const refuse = req.json === undefined ? undefined : (mustRefuse(req.json) ?? (req.path.endsWith("/exec") ? badEnvName(req.json) : undefined));
    if (assertAnswer(r, `${what}${refuse ? ` (must be refused: ${refuse})` : ""}`, refuse ? [] : req.ok)) await req.then?.(r);
  });
  t.diagnostic(`api: answers by status ${JSON.stringify(statuses)}`);
  await assertAlive("the API inputs");
  const run = JSON.parse((await call("GET", `/v1/vms/${RUNNING}`)).text) as { state: string };
  assert.equal(run.state, "running", "the running fixture survived the API inputs");
});

test("lines of an upgraded exec stream: the daemon answers each stream in mvm's shape and serves on", T, async (t) => {
  const line = fc.oneof(
    { weight: 3, arbitrary: anyJson.map((v) => JSON.stringify(v)) },
    { weight: 2, arbitrary: fc.record({ type: fc.constantFrom("stdin", "eof", "signal", "resize", "bogus"), data: or(fc.base64String({ maxLength: 40 })), signal: or(fc.integer({ min: -5, max: 70 })), rows: or(fc.integer({ min: 0, max: 70000 })), cols: or(fc.integer({ min: 0, max: 70000 })) }, { requiredKeys: ["type"] }).map((v) => JSON.stringify(v)) },
    { weight: 1, arbitrary: weird.map((s) => s.replace(/\n/g, "")) },
  );
  // The first line: mostly `cat` (it waits for stdin, so the lines after it reach a running command), else anything.
  const first = fc.oneof({ weight: 3, arbitrary: fc.constant(JSON.stringify({ argv: ["cat"] })) }, { weight: 1, arbitrary: fc.constant(JSON.stringify({ argv: ["cat"], tty: { rows: 24, cols: 80 } })) }, { weight: 2, arbitrary: line });
  // together: the exec request in the same write as the HTTP request (the daemon gets both in one read).
  await check(t, "exec streams", fc.tuple(first, fc.array(line, { maxLength: 5 }), fc.boolean()), runs(50), async ([req, lines, together]) => {
    tried.execStreams++;
    const what = `exec stream ${short([req, ...lines])}${together ? " (sent with the upgrade)" : ""}`;
    const upgrade = head("GET", `/v1/vms/${RUNNING}/exec`, ["connection: Upgrade", "upgrade: mvm-exec"]);
    const opening = together ? [`${upgrade}${req}\n`] : [upgrade, `${req}\n`];
    const r = await rawSend([...opening, 20, ...lines.map((l) => `${l}\n`), 20, `${JSON.stringify({ type: "eof" })}\n`], { after: "keep", readMs: 5000 });
    assert.ok(r.closed, `${what}: the stream did not end within 5 s of eof: ${short(r.text)}`);
    assert.match(r.text, /^HTTP\/1\.1 101 /, `${what}: ${short(r.text)}`);
    const out = r.text.slice(r.text.indexOf("\r\n\r\n") + 4).split("\n").filter(Boolean);
    for (const l of out) {
      const v = JSON.parse(l) as Record<string, unknown>;
      if (v.type === "error") assertErrorBody(v, what);
    }
    assert.ok(out.length > 0 && ["exit", "error"].includes(String((JSON.parse(out.at(-1)!) as { type: string }).type)), `${what}: the stream did not end with exit or error: ${short(out)}`);
    assert.ok(d.running(), `${what}: the daemon died:\n${d.log().slice(-3000)}`);
  });
  await assertAlive("the exec streams");
});

test("CLI argument lists through the real CLI: no hang, no stack trace, an error said when it fails; the daemon serves on", T, async (t) => {
  let n = 0;
  // Two at a time: most of a CLI run is Node starting, which the two cores can do side by side.
  await check(t, "cli", fc.tuple(cliArb(), cliArb()), runs(50), async (pair) => {
    const results = await Promise.all(pair.map((c) => runCli(c, n++)));
    tried.cli += pair.length;
    pair.forEach((c, i) => assertCli(c, results[i]!));
    assert.ok(d.running(), `the daemon died after ${short(pair.map((c) => c.args))}:\n${d.log().slice(-3000)}`);
    // What the CLI made is removed again (keeping the fixtures), so that fake QEMUs do not pile up.
    for (const vm of JSON.parse((await call("GET", "/v1/vms")).text) as Array<{ id: string; name: string }>) {
      if (vm.name !== CREATED && vm.name !== RUNNING) assert.equal((await call("DELETE", `/v1/vms/${vm.id}?force=true`, { timeoutMs: 15_000 })).status, 204);
    }
  });
  await assertAlive("the CLI runs");
});

test("the wire: bodies over their limit refused early, half bodies and vanishing or slow clients, garbage; the daemon serves on", T, async (t) => {
  const routes = await jsonRoutes();
  assert.ok(routes.length >= 8, `routes with a JSON body: ${routes.map((r) => `${r.method} ${r.path}`).join(", ")}`);

  // A 30 MB body is refused on its content-length, long before it could have been sent, let alone parsed.
  tried.wire++;
  const huge = Buffer.alloc(30 * 1024 * 1024, 0x20);
  const chunks = Array.from({ length: huge.length / (256 * 1024) }, (_, i) => huge.subarray(i * 256 * 1024, (i + 1) * 256 * 1024));
  const big = await rawSend([head("POST", "/v1/vms", ["content-type: application/json", `content-length: ${huge.length}`]), ...chunks], { stopOnAnswer: true });
  assert.equal(big.status, 413, `a 30 MB body: ${short(big)}`);
  assert.equal(assertErrorBody(big.body, "30 MB body").error, "BODY_TOO_LARGE");
  assert.ok((big.sentAtAnswer ?? Infinity) <= 4 * 1024 * 1024, `answered only after ${big.sentAtAnswer} bytes`);

  await check(t, "oversize", fc.tuple(fc.constantFrom(...routes), fc.integer({ min: 1, max: 3 * 1024 * 1024 }), fc.boolean()), runs(16), async ([route, over, chunked]) => {
    tried.wire++;
    const size = route.limit + over;
    const body = Buffer.alloc(size, 0x20);
    body[0] = 0x7b; // "{": a body that would parse if it were read
    body[size - 1] = 0x7d;
    const pieces: Buffer[] = [];
    for (let i = 0; i < size; i += 256 * 1024) {
      const part = body.subarray(i, Math.min(size, i + 256 * 1024));
      pieces.push(chunked ? Buffer.concat([Buffer.from(`${part.length.toString(16)}\r\n`), part, Buffer.from("\r\n")]) : part);
    }
    if (chunked) pieces.push(Buffer.from("0\r\n\r\n"));
    const r = await rawSend([head(route.method, route.path, ["content-type: application/json", chunked ? "transfer-encoding: chunked" : `content-length: ${size}`]), ...pieces], { stopOnAnswer: true });
    const what = `${route.method} ${route.path} with ${size} bytes${chunked ? " chunked" : ""}`;
    assert.equal(r.status, 413, `${what}: ${short(r.text)}`);
    const b = assertErrorBody(r.body, what);
    assert.equal(b.error, "BODY_TOO_LARGE");
    assert.equal(b.details.limit, route.limit, `${what}: ${short(b)}`);
    // Refused on its content-length before it was read; a chunked one once it passed the limit.
    assert.ok((r.sentAtAnswer ?? Infinity) <= (chunked ? route.limit : 0) + 4 * 1024 * 1024, `${what}: answered after ${r.sentAtAnswer} bytes`);
  });

  // Half a body, and then the client ends its side, vanishes at once, or after a while.
  await check(t, "half bodies", fc.tuple(fc.constantFrom(...routes), fc.integer({ min: 2, max: 4096 }), fc.double({ min: 0, max: 0.99, noNaN: true }), fc.constantFrom<"end" | "destroy">("end", "destroy"), fc.integer({ min: 0, max: 50 })), runs(40), async ([route, length, part, how, wait]) => {
    tried.wire++;
    const body = JSON.stringify({ name: "x".repeat(length) }).slice(0, Math.floor(length * part));
    const r = await rawSend([head(route.method, route.path, ["content-type: application/json", `content-length: ${length + 11}`]), body, wait], { after: how, readMs: 3000 });
    if (r.status !== undefined) {
      assert.ok(r.status >= 400 && r.status < 500, `${route.path}: half a body answered ${short(r.text)}`);
      assertErrorBody(r.body, `${route.path} half a body`);
    }
    assert.ok(d.running(), `the daemon died after half a body to ${route.path}:\n${d.log().slice(-3000)}`);
  });

  // A body sent a few bytes at a time, in time, is taken; one that stalls is a 408 at the deadline.
  await check(t, "slow bodies", fc.tuple(validName, fc.integer({ min: 2, max: 12 }), fc.boolean()), runs(8), async ([name, pieces, stall]) => {
    tried.wire++;
    const body = JSON.stringify({ name: `slow-${name}`.slice(0, 60) });
    const step = Math.ceil(body.length / pieces);
    const parts: Array<string | number> = [head("POST", "/v1/vms", ["content-type: application/json", `content-length: ${body.length}`, "connection: close"])];
    for (let i = 0; i < body.length; i += step) parts.push(body.slice(i, i + step), Math.floor(BODY_TIMEOUT_MS / 3 / pieces));
    if (stall) parts.splice(-2, 2); // the last piece never comes
    const t0 = Date.now();
    const r = await rawSend(parts, { after: "keep", readMs: BODY_TIMEOUT_MS + 3000 });
    if (stall) {
      assert.equal(r.status, 408, `a stalled body: ${short(r.text)}`);
      assert.equal(assertErrorBody(r.body, "stalled body").error, "REQUEST_TIMEOUT");
      assert.ok(Date.now() - t0 >= BODY_TIMEOUT_MS - 100, `408 after ${Date.now() - t0} ms`);
    } else {
      assert.equal(r.status, 201, `a slow body: ${short(r.text)}`);
      const id = (r.body as { id: string }).id;
      assert.equal((await call("DELETE", `/v1/vms/${id}`)).status, 204);
    }
  });

  // Garbage where HTTP should be: refused (400, 414, 431...) or the connection closed, never a crash.
  const junk = fc.oneof(
    fc.uint8Array({ minLength: 1, maxLength: 600 }).map((b) => Buffer.from(b)),
    fc.tuple(fc.constantFrom("GET", "POST", "G\0T", "BREW", "", "PRI"), weird.map((s) => s.replace(/[\r\n]/g, "")), fc.constantFrom("HTTP/1.1", "HTTP/1.0", "HTTP/2.0", "HTTP/9", "", "http/1.1")).map(([m, p, v]) => Buffer.from(`${m} /${p} ${v}\r\nhost: mvm\r\n\r\n`)),
    fc.tuple(weird, weird).map(([k, v]) => Buffer.from(`GET /v1/info HTTP/1.1\r\nhost: mvm\r\n${k}: ${v}\r\ncontent-length: ${v}\r\n\r\n`)),
    fc.constantFrom(
      Buffer.from(`GET /v1/info HTTP/1.1\r\nhost: mvm\r\ncontent-length: 5\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n`),
      Buffer.from(`POST /v1/vms HTTP/1.1\r\nhost: mvm\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n`),
      Buffer.from(`GET /v1/info HTTP/1.1\r\nhost: mvm\r\n\r\nGET /v1/info HTTP/1.1\r\nhost: mvm\r\n\r\nGARBAGE\r\n\r\n`),
      Buffer.from(`GET /v1/${"x".repeat(100_000)} HTTP/1.1\r\nhost: mvm\r\n\r\n`),
      Buffer.from(`GET /v1/info HTTP/1.1\r\n${"x-h: y\r\n".repeat(3000)}\r\n`),
      Buffer.from(`GET /v1/vms/fz-run/exec HTTP/1.1\r\nhost: mvm\r\nconnection: Upgrade\r\nupgrade: mvm-exec\r\n\r\n${"x".repeat(100)}`),
      Buffer.from(`GET /v1/vms/%zz/console HTTP/1.1\r\nhost: mvm\r\nconnection: Upgrade\r\nupgrade: mvm-console\r\n\r\n`),
      Buffer.from(`GET /v1/vms/%E0%A4%A/exec HTTP/1.1\r\nhost: mvm\r\nconnection: Upgrade\r\nupgrade: mvm-exec\r\n\r\n`),
    ),
  );
  await check(t, "garbage", junk, runs(50), async (bytes) => {
    tried.wire++;
    const r = await rawSend([bytes], { after: "end", readMs: 3000 });
    // Every answer on the connection (pipelined requests get one each) is a success or a refusal in mvm's shape.
    for (const m of r.text.matchAll(/HTTP\/1\.1 (\d{3})[^\r]*\r\n((?:[^\r]+\r\n)*)\r\n/g)) {
      const status = Number(m[1]);
      if (status === 101 || status < 300) continue;
      assert.ok(status >= 400 && status < 500, `${short(bytes.toString("latin1"))}: answered ${short(r.text)}`);
    }
    assert.ok(d.running(), `the daemon died after ${short(bytes.toString("latin1"))}:\n${d.log().slice(-3000)}`);
  });

  // Many connections opened and dropped half-way: none of them is held afterwards.
  const before = d.fds().length;
  tried.wire += 100;
  await Promise.all(
    Array.from({ length: 100 }, (_, i) => rawSend([i % 2 ? "POST /v1/vms HTTP/1.1\r\nhost: mvm\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"na" : "GET /v1/vm", 10], { after: "destroy", readMs: 100 })),
  );
  await waitFor(() => d.fds().length <= before + 2, `the daemon to close the dropped connections (${d.fds().length} fds, ${before} before)`, 5000);
  await assertAlive("the wire");
});

test("nothing leaked: no fake QEMU, no daemon child, no VM directory without its record, no descriptor held", T, async (t) => {
  for (const vm of JSON.parse((await call("GET", "/v1/vms")).text) as Array<{ id: string }>) {
    assert.equal((await call("DELETE", `/v1/vms/${vm.id}?force=true`, { timeoutMs: 15_000 })).status, 204);
  }
  for (const n of JSON.parse((await call("GET", "/v1/networks")).text) as Array<{ name: string }>) assert.equal((await call("DELETE", `/v1/networks/${seg(n.name)}`)).status, 204);
  for (const i of JSON.parse((await call("GET", "/v1/images")).text) as Array<{ name: string }>) assert.equal((await call("DELETE", `/v1/images/${seg(i.name)}`)).status, 204);
  await waitFor(() => fakeQemuPids(h.home).length === 0, "every fake QEMU to end", 10_000);
  await waitFor(() => d.children().length === 0, `the daemon's children to end (${d.children().join(", ")})`, 10_000);
  assert.deepEqual(readdirSync(join(h.home, "vms")), [], "VM directories without a record");
  assert.deepEqual(readdirSync(join(h.home, "images")), [], "image files or half-made imports left");
  assert.deepEqual(existsSync(join(h.home, "snapshots")) ? readdirSync(join(h.home, "snapshots")) : [], []);
  await waitFor(() => d.fds().length <= baselineFds + 2, `the daemon's descriptors to be back to ${baselineFds} (now ${d.fds().length}: ${d.fds().join(" ")})`, 5000);
  await assertAlive("the whole run");
  const total = Object.values(tried).reduce((a, b) => a + b, 0);
  t.diagnostic(`inputs tried: ${JSON.stringify(tried)}, ${total} in all (seed ${SEED})`);
  assert.ok(total >= 1000 * Math.min(1, SCALE), `only ${total} inputs were tried`);
});
