// Files in a running VM through the daemon: the library's vm.files and `mvm cp`, on real TCG guests.
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { createReadStream } from "node:fs";
import { lstat, mkdir, readFile, readlink, readdir, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { Readable } from "node:stream";
import { test } from "node:test";
import type { MvmError } from "../../src/errors.js";
import { startTestDaemon, type TestDaemon } from "../support/daemon.js";

async function runningVm(d: TestDaemon, name: string, memory = "256M") {
  await d.client.start((await d.client.create({ name, memory })).id);
  return d.client.files(name);
}

const code = (e: unknown) => (e as MvmError).code;

async function sha256File(path: string): Promise<string> {
  const h = createHash("sha256");
  for await (const c of createReadStream(path)) h.update(c as Buffer);
  return h.digest("hex");
}

test("files: write, read, stat, list, mkdir -p, rename, remove, chmod, chown, symlink; binary-safe; odd names", { timeout: 180_000 }, async (t) => {
  const d = await startTestDaemon(t);
  const files = await runningVm(d, "fs");
  const binary = randomBytes(300_000); // every byte value, several frames
  const odd = "/root/dir with spaces,commas=and\nnewline/ünï cødé 'q' \"d\" $x;.bin";
  await files.mkdir("/root/dir with spaces,commas=and\nnewline", { mode: 0o750 });
  const w = await files.write(odd, binary, { mode: 0o600 });
  assert.equal(w.size, binary.length);
  assert.deepEqual(await files.read(odd), binary);
  const st = await files.stat(odd);
  assert.deepEqual([st.type, st.size, st.mode], ["file", binary.length, 0o600]);
  // The guest agrees about the bytes: its own sha256sum of the file.
  let guestSum = "";
  const sum = await d.client.exec("fs", ["sha256sum", odd], { onStdout: (b) => (guestSum += b.toString()) });
  assert.equal(sum.status, 0);
  assert.equal(guestSum.split(" ")[0], createHash("sha256").update(binary).digest("hex"));

  await files.mkdir("/root/a/b/c", { parents: true });
  await files.write("/root/a/b/c/x.txt", "x");
  await files.write("/root/a/top.txt", "top", { owner: "1234:2345" });
  await files.symlink("/root/a/link", "/etc/hosts");
  const all = await files.list("/root/a", { depth: 0 });
  assert.deepEqual(all.map((e) => `${e.type}:${e.name}`).sort(), ["dir:b", "dir:b/c", "file:b/c/x.txt", "file:top.txt", "symlink:link"]);
  assert.equal(all.find((e) => e.name === "link")?.target, "/etc/hosts");
  const top = all.find((e) => e.name === "top.txt")!;
  assert.deepEqual([top.uid, top.gid], [1234, 2345]);
  assert.deepEqual((await files.list("/root/a")).map((e) => e.name).sort(), ["b", "link", "top.txt"]); // depth 1 by default
  await files.chmod("/root/a/top.txt", 0o640);
  await files.chown("/root/a/top.txt", "0:0");
  assert.deepEqual(((s) => [s.mode, s.uid])(await files.stat("/root/a/top.txt")), [0o640, 0]);
  // Replacing a file keeps its mode unless told otherwise.
  await files.write("/root/a/top.txt", "new");
  assert.equal((await files.stat("/root/a/top.txt")).mode, 0o640);
  await assert.rejects(files.write("/root/a/top.txt", "no", { exclusive: true }), (e) => code(e) === "FILE_EXISTS");
  await files.rename("/root/a/top.txt", "/root/moved/deeper/top.txt", { parents: true });
  assert.equal(await files.readText("/root/moved/deeper/top.txt"), "new");
  assert.equal(await files.exists("/root/a/top.txt"), false);
  await assert.rejects(files.remove("/root/a"), (e) => code(e) === "FILE_ERROR" && /not empty/i.test((e as Error).message));
  await files.remove("/root/a", { recursive: true });
  assert.equal(await files.exists("/root/a"), false);
  assert.equal(await files.exists("/etc/hosts"), true, "removing a tree never follows its symlinks");
  // A stream as the source, and an empty file.
  await files.write("/root/streamed", Readable.from([Buffer.from("one "), Buffer.from("two")]));
  assert.equal(await files.readText("/root/streamed"), "one two");
  await files.write("/root/empty", Buffer.alloc(0));
  assert.equal((await files.read("/root/empty")).length, 0);
});

test("files: bad input gets a clear error and changes nothing", { timeout: 180_000 }, async (t) => {
  const d = await startTestDaemon(t);
  const files = await runningVm(d, "bad");
  await assert.rejects(files.read("/no/such/file"), (e) => code(e) === "FILE_NOT_FOUND" && /no\/such\/file/.test((e as Error).message));
  await assert.rejects(files.read("/root"), (e) => code(e) === "FILE_ERROR" && (e as MvmError).details.errnoName === "EISDIR");
  // A FIFO or a device has no end: refused at once, and the agent is not left hanging on it.
  await d.client.exec("bad", ["mkfifo", "/root/fifo"]);
  await assert.rejects(files.read("/root/fifo"), (e) => code(e) === "FILE_ERROR" && /not a regular file/.test((e as Error).message));
  await assert.rejects(files.read("/dev/zero"), (e) => code(e) === "FILE_ERROR");
  await assert.rejects(files.write("/root", "x"), (e) => (e as MvmError).details.errnoName === "EISDIR");
  await assert.rejects(files.read("relative/path"), (e) => code(e) === "BAD_REQUEST");
  await assert.rejects(files.stat("/root/nul\0byte"), (e) => code(e) === "BAD_REQUEST");
  await assert.rejects(files.list("/etc/hosts"), (e) => (e as MvmError).details.errnoName === "ENOTDIR");
  await assert.rejects(files.remove("/"), (e) => code(e) === "FILE_ERROR");
  await assert.rejects(files.chmod("/root/x", 0o70000), (e) => code(e) === "BAD_REQUEST");
  await assert.rejects(files.write("/root/f", "x", { owner: "no-such-user" }), (e) => code(e) === "FILE_ERROR");
  assert.equal(await files.exists("/root/f"), false);
  await assert.rejects(d.client.files("no-such-vm").stat("/"), (e) => code(e) === "NOT_FOUND");
  await assert.rejects(files.list("/", { depth: -1 }), (e) => code(e) === "BAD_REQUEST" && /depth/.test((e as Error).message));
  await assert.rejects(files.mkdir("/root/m", { mode: 0o7777 + 1 }), (e) => code(e) === "BAD_REQUEST");
  await assert.rejects(files.chown("/root", "a,b=c"), (e) => code(e) === "BAD_REQUEST" && /owner/.test((e as Error).message));
  await assert.rejects(d.client.exec("bad", ["true"], { timeoutMs: -5 }), (e) => code(e) === "BAD_REQUEST");
  await assert.rejects(d.client.exec("bad", ["true"], { env: { A: 1 as unknown as string } }), (e) => code(e) === "BAD_REQUEST");

  // A full disk during a write: the error says so, no partial file is left, the VM carries on.
  await d.client.exec("bad", ["sh", "-c", "mkdir -p /mnt/small && mount -t tmpfs -o size=1m tmpfs /mnt/small"]);
  await files.write("/mnt/small/old", "kept");
  await assert.rejects(files.write("/mnt/small/old", randomBytes(4 * 1024 * 1024)), (e) => code(e) === "GUEST_DISK_FULL" && /No space left/.test((e as Error).message));
  assert.deepEqual((await files.list("/mnt/small")).map((e) => e.name), ["old"]);
  assert.equal(await files.readText("/mnt/small/old"), "kept", "a failed write leaves the old file as it was");

  // Paused and stopped VMs: a state error, not a hang.
  await d.client.pause("bad");
  await assert.rejects(files.stat("/"), (e) => code(e) === "WRONG_STATE" && /resume/.test((e as MvmError).hint ?? ""));
  await d.client.resume("bad");
  await d.client.stop("bad");
  await assert.rejects(files.read("/etc/hosts"), (e) => code(e) === "WRONG_STATE");
});

test("mvm cp: 100 MB both ways with matching sha256, docker cp rules for files and directories", { timeout: 600_000 }, async (t) => {
  const d = await startTestDaemon(t);
  await runningVm(d, "cp", "512M");
  const big = join(d.home, "big.bin");
  await writeFile(big, randomBytes(100 * 1024 * 1024));
  const want = await sha256File(big);
  const up = await d.cli(["cp", big, "cp:/root/big.bin"]);
  assert.equal(up.code, 0, up.stderr);
  assert.match(up.stderr, /copied 1 files, .*100\.0 MiB/);
  let guestSum = "";
  await d.client.exec("cp", ["sha256sum", "/root/big.bin"], { onStdout: (b) => (guestSum += b.toString()) });
  assert.equal(guestSum.split(" ")[0], want);
  const back = join(d.home, "back.bin");
  const down = await d.cli(["cp", "--json", "cp:/root/big.bin", back]);
  assert.equal(down.code, 0, down.stderr);
  assert.equal((JSON.parse(down.stdout) as { bytes: number }).bytes, 100 * 1024 * 1024);
  assert.equal(await sha256File(back), want);
  await d.client.files("cp").remove("/root/big.bin");

  // A directory in: it lands as DEST/basename when DEST exists, symlinks stay symlinks.
  const src = join(d.home, "proj");
  await mkdir(join(src, "sub"), { recursive: true });
  await writeFile(join(src, "a.txt"), "A");
  await writeFile(join(src, "sub", "b.bin"), Buffer.from([0, 1, 2, 255]));
  await symlink("../a.txt", join(src, "sub", "rel-link"));
  assert.equal((await d.cli(["cp", src, "cp:/root"])).code, 0);
  assert.equal(await d.client.files("cp").readText("/root/proj/a.txt"), "A");
  assert.equal((await d.client.files("cp").stat("/root/proj/sub/rel-link")).target, "../a.txt");
  // DEST missing: it becomes the directory. "SRC/." copies the contents into an existing DEST.
  assert.equal((await d.cli(["cp", src, "cp:/root/copy2"])).code, 0);
  assert.equal(await d.client.files("cp").readText("/root/copy2/a.txt"), "A");
  await d.client.files("cp").mkdir("/root/into");
  assert.equal((await d.cli(["cp", `${src}/.`, "cp:/root/into"])).code, 0);
  assert.equal(await d.client.files("cp").readText("/root/into/sub/b.bin"), "\u0000\u0001\u0002\ufffd");

  // And out again, with a guest symlink pointing outside: copied as a link, never followed or written through.
  await d.client.files("cp").symlink("/root/proj/escape", "/etc");
  const out = join(d.home, "out");
  await mkdir(out);
  assert.equal((await d.cli(["cp", "cp:/root/proj", out])).code, 0);
  assert.deepEqual((await readdir(join(out, "proj"))).sort(), ["a.txt", "escape", "sub"]);
  assert.equal(await readlink(join(out, "proj", "escape")), "/etc");
  assert.ok((await lstat(join(out, "proj", "escape"))).isSymbolicLink());
  assert.deepEqual(await readFile(join(out, "proj", "sub", "b.bin")), Buffer.from([0, 1, 2, 255]));
  // A file onto an existing host file replaces it; into a directory, it keeps its name.
  assert.equal((await d.cli(["cp", "cp:/root/proj/a.txt", join(out, "proj", "sub", "b.bin")])).code, 0);
  assert.equal(await readFile(join(out, "proj", "sub", "b.bin"), "utf8"), "A");
  assert.equal((await d.cli(["cp", "cp:/etc/hosts", out])).code, 0);
  assert.equal(await readFile(join(out, "hosts"), "utf8"), await d.client.files("cp").readText("/etc/hosts"));

  const both = await d.cli(["cp", "cp:/a", "cp:/b"]);
  assert.equal(both.code, 125);
  assert.match(both.stderr, /exactly one side must be VM:PATH/);
  const missing = await d.cli(["cp", "cp:/no/such", out]);
  assert.equal(missing.code, 125);
  assert.match(missing.stderr, /no\/such/);
  const ontoFile = await d.cli(["cp", "cp:/root/proj", join(out, "hosts")]);
  assert.equal(ontoFile.code, 125);
  assert.match(ontoFile.stderr, /onto file/);
});

test("10 concurrent execs and copies on one VM; a client that vanishes mid-copy leaves nothing behind", { timeout: 300_000 }, async (t) => {
  const d = await startTestDaemon(t);
  const files = await runningVm(d, "busy", "384M");
  const blobs = Array.from({ length: 10 }, (_, i) => randomBytes(512 * 1024 + i));
  const results = await Promise.all([
    ...blobs.map(async (b, i) => {
      await files.write(`/root/c${i}`, b);
      return (await files.read(`/root/c${i}`)).equals(b);
    }),
    ...blobs.map(async (_, i) => {
      let out = "";
      const r = await d.client.exec("busy", ["sh", "-c", `echo exec-${i}; sleep 0.2; echo done-${i}`], { onStdout: (c) => (out += c.toString()) });
      return r.status === 0 && out === `exec-${i}\ndone-${i}\n`;
    }),
  ]);
  assert.deepEqual(results, Array(20).fill(true));

  // An upload cut off half way: the destination never appears, no temporary file stays.
  const ac = new AbortController();
  async function* slow() {
    for (let i = 0; i < 200; i++) {
      yield randomBytes(64 * 1024);
      if (i === 20) ac.abort();
      await new Promise((r) => setTimeout(r, 5));
    }
  }
  await assert.rejects(files.write("/root/cut", slow(), { signal: ac.signal }));
  for (let i = 0; i < 50 && (await files.list("/root")).some((e) => e.name.includes("mvm-write")); i++) await new Promise((r) => setTimeout(r, 100));
  assert.deepEqual((await files.list("/root")).map((e) => e.name).filter((n) => n.includes("cut") || n.includes("mvm-write")), []);
  // A download cut off: the VM and the daemon carry on.
  await files.write("/root/big", randomBytes(20 * 1024 * 1024));
  const ac2 = new AbortController();
  await assert.rejects(files.readTo("/root/big", () => ac2.abort(), ac2.signal));
  assert.equal((await files.stat("/root/big")).size, 20 * 1024 * 1024);
  assert.equal((await d.client.exec("busy", ["true"])).status, 0);
});

test("remove -r never crosses into a shared folder: the host's files stay, and nothing is removed", { timeout: 180_000 }, async (t) => {
  const d = await startTestDaemon(t);
  const host = join(d.home, "shared");
  await mkdir(join(host, "sub"), { recursive: true });
  await writeFile(join(host, "keep.txt"), "host file\n");
  await writeFile(join(host, "sub", "deep.txt"), "deep\n");
  await d.client.start((await d.client.create({ name: "rmx", volumes: [`${host}:/root/tree/share`] })).id);
  const files = d.client.files("rmx");
  await files.write("/root/tree/own.txt", "guest file");
  const hostFiles = async () => (await readdir(host, { recursive: true })).sort();
  // A directory holding the mount: refused before anything goes, guest files included.
  await assert.rejects(files.remove("/root/tree", { recursive: true }), (e: MvmError) => /\/root\/tree\/share is a mount point.*nothing was removed/.test(e.message));
  assert.equal(await files.readText("/root/tree/own.txt"), "guest file");
  // The mount point itself: refused too (removing it would empty the host's folder, then fail).
  await assert.rejects(files.remove("/root/tree/share", { recursive: true }), (e: MvmError) => /is a mount point/.test(e.message));
  assert.deepEqual(await hostFiles(), ["keep.txt", "sub", join("sub", "deep.txt")]);
  // Inside the shared folder it is the user's own choice: that works.
  await files.remove("/root/tree/share/sub", { recursive: true });
  assert.deepEqual(await hostFiles(), ["keep.txt"]);
  assert.equal(await readFile(join(host, "keep.txt"), "utf8"), "host file\n");
});
