// Who may name host paths (src/auth/host-paths.ts) and named volumes, against a real daemon over the fake
// QEMU: `mvm volume create|ls|rm` through the real CLI, a VM sharing a named volume getting the volume's
// folder in its record and on its QEMU's argv, and the 403s a caller who is not the host's root gets. There
// are no tokens yet (issue 13), so the non-root callers are injected into the server (buildServer's
// callerOf) from a header only this test sends.

import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdirSync, realpathSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { test, type TestContext } from "node:test";
import type { Caller } from "../../src/auth/caller.js";
import { MvmClient } from "../../src/client/client.js";
import { buildServer } from "../../src/daemon/server.js";
import { FAKE_QEMU, FakeHome } from "./harness.js";
import { startHttpDaemon } from "./http-daemon.js";

const T = { timeout: 60_000 };
const CLI = fileURLToPath(new URL("../../src/cli/main.js", import.meta.url));

interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

function mvm(h: FakeHome, ...args: string[]): Promise<CliRun> {
  const env = { ...process.env, MVM_HOME: h.home, MVM_QEMU: FAKE_QEMU, MVM_QEMU_MICROVM: "/nonexistent", MVM_TEMPLATES: "0", MVM_JAIL: "0" };
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { env, cwd: h.home, timeout: 20_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === "number" ? (err as { code: number }).code : -1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

function home(t: TestContext): FakeHome {
  const h = new FakeHome();
  t.after(() => h.close());
  return h;
}

test("mvm volume create, ls, rm through the CLI; a VM sharing a volume gets its folder; rm refused while a VM uses it", T, async (t) => {
  const h = new FakeHome();
  const daemon = await startHttpDaemon(h);
  // The daemon goes before its home does (it reads its log there as it ends).
  t.after(async () => {
    await daemon.stop();
    await h.close();
  });
  const real = join(h.home, "data-real");
  mkdirSync(real);
  symlinkSync(real, join(h.home, "data-link"));
  mkdirSync(join(h.home, "docs"));

  // A relative path is the CLI's working directory's; a symlink is stored resolved.
  const made = await mvm(h, "volume", "create", "data", "data-link", "--json");
  assert.equal(made.code, 0, made.stderr);
  const v = JSON.parse(made.stdout) as { name: string; path: string; readOnly: boolean; vms: string[] };
  assert.deepEqual([v.name, v.path, v.readOnly, v.vms], ["data", realpathSync(real), false, []]);
  assert.equal((await mvm(h, "volume", "create", "docs", join(h.home, "docs"), "--read-only")).stdout, "docs\n");
  const dup = await mvm(h, "volume", "create", "data", real, "--json");
  assert.equal(dup.code, 125);
  assert.equal((JSON.parse(dup.stdout) as { error: string }).error, "NAME_TAKEN");
  const notDir = await mvm(h, "volume", "create", "file", join(h.home, "mvm.db"), "--json");
  assert.equal((JSON.parse(notDir.stdout) as { error: string }).error, "INVALID_STORAGE");

  const client = new MvmClient(daemon.socket);
  const vm = await client.create({ name: "uses", volumes: ["data:/data", "docs:/docs"] });
  assert.deepEqual(vm.spec.volumes, [
    { hostPath: realpathSync(real), guestPath: "/data", readOnly: false, volume: "data" },
    { hostPath: join(h.home, "docs"), guestPath: "/docs", readOnly: true, volume: "docs" },
  ]);
  // A read-only volume cannot be mounted read-write; an unknown one is NOT_FOUND. Neither leaves a record.
  await assert.rejects(client.create({ name: "rw", volumes: ["docs:/docs:rw"] }), (e: unknown) => (e as { code?: string }).code === "INVALID_STORAGE" && /read-only/.test((e as Error).message));
  await assert.rejects(client.create({ name: "nope", volumes: ["nope:/x"] }), (e: unknown) => (e as { code?: string }).code === "NOT_FOUND" && /volume/.test((e as Error).message));
  assert.deepEqual((await client.list()).map((r) => r.name), ["uses"]);

  // The plan shares the volume's folder: QEMU's -fsdev names it, read-only where the volume is.
  const running = await client.start("uses");
  const fsdevs = (running.argv ?? []).filter((a) => a.startsWith("local,"));
  assert.equal(fsdevs.length, 2, JSON.stringify(running.argv));
  assert.match(fsdevs[0]!, new RegExp(`path=${realpathSync(real)},`));
  assert.doesNotMatch(fsdevs[0]!, /readonly/);
  assert.match(fsdevs[1]!, new RegExp(`path=${join(h.home, "docs")},.*readonly=on`));
  assert.deepEqual((await client.get("uses")).spec.volumes.map((x) => x.volume), ["data", "docs"]);

  const ls = await mvm(h, "volume", "ls", "--json");
  assert.deepEqual((JSON.parse(ls.stdout) as Array<{ name: string; vms: string[] }>).map((x) => [x.name, x.vms]), [["data", ["uses"]], ["docs", ["uses"]]]);
  assert.match((await mvm(h, "volume", "ls")).stdout, /^NAME\s+PATH\s+MODE\s+VMS\ndata\s+\S+data-real\s+rw\s+uses\ndocs\s+\S+docs\s+ro\s+uses\n$/);
  const busy = await mvm(h, "volume", "rm", "data", "--json");
  assert.equal(busy.code, 125);
  const err = JSON.parse(busy.stdout) as { error: string; details: { vms: string[] } };
  assert.deepEqual([err.error, err.details.vms], ["WRONG_STATE", ["uses"]]);

  await client.remove("uses", { force: true });
  const gone = await mvm(h, "volume", "rm", "data", "docs", "--json");
  assert.equal(gone.code, 0, gone.stderr);
  assert.deepEqual(JSON.parse(gone.stdout), { removed: ["data", "docs"] });
  assert.deepEqual(JSON.parse((await mvm(h, "volume", "ls", "--json")).stdout), []);
  assert.equal((JSON.parse((await mvm(h, "volume", "rm", "data", "--json")).stdout) as { error: string }).error, "NOT_FOUND");
});

test("a caller who is not the host's root: 403 for host paths outside the allowed roots, named volumes and allowed roots pass", T, async (t) => {
  const h = home(t);
  const m = h.manager();
  const allowed = join(h.home, "allowed");
  const outside = join(h.home, "outside");
  for (const d of [allowed, outside, join(allowed, "share"), join(outside, "share")]) mkdirSync(d, { recursive: true });
  for (const d of [allowed, outside]) {
    writeFileSync(join(d, "disk.img"), Buffer.alloc(4096));
    writeFileSync(join(d, "vmlinux"), Buffer.concat([Buffer.from([0x7f, 0x45, 0x4c, 0x46]), Buffer.alloc(1020)]));
  }
  symlinkSync(join(outside, "disk.img"), join(allowed, "escape.img"));
  // The host's root allows a root in the home's setting (read at each check: no restart).
  writeFileSync(join(h.home, "allowed-roots"), `# for API users\n${allowed}\n`);
  m.volumes.create("shared", join(outside, "share"), {}, { kind: "host-root" });

  const callers: Record<string, Caller> = { user: { kind: "token", name: "ci", role: "user" }, read: { kind: "token", name: "dash", role: "read" }, admin: { kind: "token", name: "ops", role: "admin" } };
  const app = buildServer(m, { version: "test", home: h.home }, { callerOf: (req) => callers[String(req.headers["x-test-caller"])] ?? { kind: "host-root" } });
  t.after(() => app.close());
  const post = (as: string, url: string, payload: object) => app.inject({ method: "POST", url, payload, headers: { "x-test-caller": as } });

  const refused: Array<[string, object, string]> = [
    ["a disk outside", { disks: [join(outside, "disk.img")] }, join(outside, "disk.img")],
    ["/etc/passwd", { disks: ["/etc/passwd"] }, "/etc/passwd"],
    ["the host's / as a folder", { volumes: ["/:/mnt"] }, "/"],
    ["a kernel outside", { kernel: join(outside, "vmlinux") }, join(outside, "vmlinux")],
    ["an initrd outside", { initrd: join(outside, "vmlinux") }, join(outside, "vmlinux")],
    ["a symlink out of the root", { disks: [join(allowed, "escape.img")] }, join(allowed, "escape.img")],
    ["`..` out of the root", { disks: [`${allowed}/../outside/disk.img`] }, `${allowed}/../outside/disk.img`],
  ];
  for (const [what, spec, path] of refused) {
    const r = await post("user", "/v1/vms", { name: "x", ...spec });
    assert.equal(r.statusCode, 403, `${what}: ${r.body}`);
    const body = r.json<{ error: string; message: string; hint: string; details: { path: string } }>();
    assert.deepEqual(Object.keys(body).sort(), ["details", "error", "hint", "message"]);
    assert.equal(body.error, "HOST_PATH_FORBIDDEN", what);
    assert.ok(body.message.includes(JSON.stringify(path)), `${what}: the message names the path: ${body.message}`);
    assert.match(body.message, /Only the host's root and admin tokens name any host path/);
    assert.match(body.hint, /mvm volume|--image|allow a root/);
    assert.equal(body.details.path, path);
  }
  assert.deepEqual(m.list(), [], "nothing was created for a refused spec");

  // Inside the allowed root, resolved; a named volume wherever the host's root put it.
  const ok = await post("user", "/v1/vms", { name: "ok", disks: [`${allowed}/share/../disk.img:ro`], kernel: join(allowed, "vmlinux"), volumes: ["shared:/shared", `${join(allowed, "share")}:/mine`] });
  assert.equal(ok.statusCode, 201, ok.body);
  const spec = ok.json<{ spec: { disks: Array<{ path: string; readOnly: boolean }>; kernel: string; volumes: Array<{ hostPath: string; volume?: string }> } }>().spec;
  assert.deepEqual(spec.disks.map((d) => [d.path, d.readOnly]), [[join(allowed, "disk.img"), true]]);
  assert.equal(spec.kernel, join(allowed, "vmlinux"));
  assert.deepEqual(spec.volumes.map((v) => [v.hostPath, v.volume]), [[join(outside, "share"), "shared"], [join(allowed, "share"), undefined]]);

  // The host's root (the socket's caller) and an admin token name what they like.
  for (const as of ["root", "admin"]) {
    const r = await post(as, "/v1/vms", { name: `by-${as}`, disks: [join(outside, "disk.img")] });
    assert.equal(r.statusCode, 201, `${as}: ${r.body}`);
  }
  // A read token creates nothing; only the host's root or an admin registers or removes volumes.
  const read = await post("read", "/v1/vms", { name: "r" });
  assert.deepEqual([read.statusCode, read.json<{ error: string }>().error], [403, "FORBIDDEN"]);
  const vol = await post("user", "/v1/volumes", { name: "mine", path: outside });
  assert.deepEqual([vol.statusCode, vol.json<{ error: string }>().error], [403, "FORBIDDEN"]);
  const del = await app.inject({ method: "DELETE", url: "/v1/volumes/shared", headers: { "x-test-caller": "user" } });
  assert.deepEqual([del.statusCode, del.json<{ error: string }>().error], [403, "FORBIDDEN"]);
  const list = await app.inject({ method: "GET", url: "/v1/volumes", headers: { "x-test-caller": "read" } });
  assert.deepEqual(list.json<Array<{ name: string; vms: string[] }>>().map((x) => [x.name, x.vms]), [["shared", ["ok"]]]);
  assert.equal((await post("admin", "/v1/volumes", { name: "ops", path: allowed, readOnly: true })).statusCode, 201);

  // An image to import is a host path too: refused before anything is read or streamed.
  const imp = await post("user", "/v1/images/import", { file: "/etc/passwd", name: "stolen" });
  assert.deepEqual([imp.statusCode, imp.json<{ error: string }>().error], [403, "HOST_PATH_FORBIDDEN"]);
  const impRead = await post("read", "/v1/images/import", { file: join(allowed, "disk.img"), name: "img" });
  assert.deepEqual([impRead.statusCode, impRead.json<{ error: string }>().error], [403, "FORBIDDEN"]);
  assert.deepEqual(m.images.list(), []);
});
