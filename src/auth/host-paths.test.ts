import assert from "node:assert/strict";
import { mkdirSync, realpathSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { ForbiddenError, HostPathForbiddenError } from "../errors.js";
import type { VmSpecInput } from "../vmspec/vm-spec.js";
import { HOST_ROOT, type Caller } from "./caller.js";
import { checkHostPath, checkHostPaths, readAllowedRoots, type HostPathUse } from "./host-paths.js";
import { tempDir } from "../../test/support/temp-dirs.js";

// A host: an allowed root holding a disk, a kernel, an initrd and a folder, with symlinks that lead out of
// it; a place outside it with the same files; the root itself reached through a symlink too.
const base = realpathSync(tempDir("mvm-hostpaths-"));
const root = join(base, "allowed");
const outside = join(base, "outside");
for (const d of [root, outside, join(root, "share"), join(outside, "share"), join(root, "sub")]) mkdirSync(d, { recursive: true });
for (const d of [root, outside]) for (const f of ["disk.img", "vmlinux", "initrd"]) writeFileSync(join(d, f), "x");
symlinkSync(join(outside, "disk.img"), join(root, "escape.img"));
symlinkSync(outside, join(root, "out-dir"));
symlinkSync(join(root, "disk.img"), join(root, "inner.img"));
symlinkSync(root, join(base, "root-link"));
symlinkSync(join(root, "loop"), join(root, "loop"));

const admin: Caller = { kind: "token", name: "ops", role: "admin" };
const user: Caller = { kind: "token", name: "ci", role: "user" };
const reader: Caller = { kind: "token", name: "dash", role: "read" };
const policy = { allowedRoots: [root] };
const none = { allowedRoots: [] };

const forbidden = (path: string) => (e: unknown) => {
  assert.ok(e instanceof HostPathForbiddenError, `not HOST_PATH_FORBIDDEN: ${String(e)}`);
  assert.equal(e.code, "HOST_PATH_FORBIDDEN");
  assert.equal(HostPathForbiddenError.status, 403);
  assert.ok(e.message.includes(JSON.stringify(path)), `the message names the path: ${e.message}`);
  assert.match(e.message, /Only the host's root and admin tokens name any host path/, "the message states the rule");
  assert.match(e.hint ?? "", /allow a root/);
  assert.equal(e.details.path, path);
  return true;
};

const files: Record<HostPathUse, string> = { disk: "disk.img", kernel: "vmlinux", initrd: "initrd", "shared folder": "share", "image file": "disk.img" };

test("the host's root and admin tokens name any path, as written, with or without allowed roots", () => {
  for (const caller of [HOST_ROOT, admin]) {
    for (const [use, f] of Object.entries(files) as Array<[HostPathUse, string]>) {
      for (const p of [join(outside, f), join(root, f), join(root, "out-dir", f), "relative/path", "/etc/shadow"]) assert.equal(checkHostPath(p, use, caller, none), p, `${caller.kind} ${use} ${p}`);
    }
  }
});

test("a user token: every use inside an allowed root passes (resolved), outside is 403", () => {
  for (const [use, f] of Object.entries(files) as Array<[HostPathUse, string]>) {
    assert.equal(checkHostPath(join(root, f), use, user, policy), join(root, f), use);
    assert.throws(() => checkHostPath(join(outside, f), use, user, policy), forbidden(join(outside, f)), use);
    assert.throws(() => checkHostPath(join(root, f), use, user, none), forbidden(join(root, f)), `${use} with no roots set`);
  }
  assert.throws(() => checkHostPath(join(root, "disk.img"), "disk", user, none), (e: unknown) => e instanceof HostPathForbiddenError && /no allowed roots are set/.test(e.message));
  // The root itself, a root that is "/" and a root given with a trailing slash.
  assert.equal(checkHostPath(root, "shared folder", user, policy), root);
  assert.equal(checkHostPath(join(outside, "disk.img"), "disk", user, { allowedRoots: ["/"] }), join(outside, "disk.img"));
  assert.equal(checkHostPath(join(root, "disk.img"), "disk", user, { allowedRoots: [`${root}/`] }), join(root, "disk.img"));
  // A sibling whose name starts like the root's is not inside it.
  mkdirSync(`${root}-2`, { recursive: true });
  assert.throws(() => checkHostPath(`${root}-2`, "shared folder", user, policy), forbidden(`${root}-2`));
});

test("`..` cannot climb out of an allowed root, nor a symlink lead out of it", () => {
  for (const p of [join(root, "..", "outside", "disk.img"), `${root}/sub/../../outside/disk.img`, `${root}/../../../../etc/passwd`]) {
    assert.throws(() => checkHostPath(p, "disk", user, policy), forbidden(p), p);
  }
  const escape = join(root, "escape.img");
  assert.throws(() => checkHostPath(escape, "disk", user, policy), (e: unknown) => forbidden(escape)(e) && /symlink/.test((e as Error).message) && (e as HostPathForbiddenError).details.resolved === join(outside, "disk.img"));
  // Through a symlinked folder, to a file that exists and to one that does not (yet).
  for (const p of [join(root, "out-dir", "disk.img"), join(root, "out-dir", "new.img"), join(root, "out-dir", "share")]) {
    assert.throws(() => checkHostPath(p, "disk", user, policy), forbidden(p), p);
  }
  assert.throws(() => checkHostPath(join(root, "loop"), "disk", user, policy), (e: unknown) => forbidden(join(root, "loop"))(e) && /cannot be resolved/.test((e as Error).message));
  // `..` that stays inside, and a symlink that stays inside: allowed, and replaced by where they lead.
  assert.equal(checkHostPath(`${root}/sub/../disk.img`, "disk", user, policy), join(root, "disk.img"));
  assert.equal(checkHostPath(join(root, "inner.img"), "disk", user, policy), join(root, "disk.img"));
  // A symlink then `..`: folded as written (root/out-dir/.. is root), so what is opened stays inside.
  assert.equal(checkHostPath(`${root}/out-dir/../disk.img`, "disk", user, policy), join(root, "disk.img"));
  // A root configured through a symlink holds what its real folder holds, written either way.
  const linked = { allowedRoots: [join(base, "root-link")] };
  assert.equal(checkHostPath(join(base, "root-link", "disk.img"), "disk", user, linked), join(root, "disk.img"));
  assert.equal(checkHostPath(join(root, "disk.img"), "disk", user, linked), join(root, "disk.img"));
  assert.throws(() => checkHostPath(join(base, "root-link", "escape.img"), "disk", user, linked), HostPathForbiddenError);
  // Relative paths mean the daemon's working directory: never for a caller held to the roots.
  assert.throws(() => checkHostPath("disk.img", "disk", user, { allowedRoots: ["/"] }), forbidden("disk.img"));
});

test("a path outside the roots is refused as written, without a look at what it resolves to", () => {
  const p = join(outside, "does-not-exist");
  assert.throws(() => checkHostPath(p, "disk", user, policy), (e: unknown) => forbidden(p)(e) && (e as HostPathForbiddenError).details.resolved === undefined);
});

const spec = (o: Partial<VmSpecInput>): VmSpecInput => ({ name: "vm", ...o });

test("checkHostPaths: each path of a spec, by role; named volumes and images pass for every creator", () => {
  const bad: Array<[string, VmSpecInput, string]> = [
    ["disk", spec({ disks: [`${join(root, "disk.img")}:ro`, join(outside, "disk.img")] }), join(outside, "disk.img")],
    ["volume", spec({ volumes: [`${join(outside, "share")}:/data:ro`] }), join(outside, "share")],
    ["kernel", spec({ kernel: join(outside, "vmlinux") }), join(outside, "vmlinux")],
    ["initrd", spec({ initrd: join(outside, "initrd") }), join(outside, "initrd")],
    ["disk /etc/passwd", spec({ disks: ["/etc/passwd"] }), "/etc/passwd"],
    ["volume /", spec({ volumes: ["/:/mnt"] }), "/"],
  ];
  for (const [what, s, path] of bad) {
    assert.throws(() => checkHostPaths(s, user, policy), forbidden(path), what);
    assert.deepEqual(checkHostPaths(s, HOST_ROOT, policy), s, `host root: ${what}`);
    assert.deepEqual(checkHostPaths(s, admin, none), s, `admin: ${what}`);
    assert.throws(() => checkHostPaths(s, reader, policy), (e: unknown) => e instanceof ForbiddenError && !(e instanceof HostPathForbiddenError) && /read/.test((e as Error).message), `read: ${what}`);
  }
  const good = spec({
    image: "debian",
    kernel: join(root, "vmlinux"),
    initrd: `${root}/sub/../initrd`,
    disks: [join(root, "inner.img"), `${join(root, "disk.img")}:ro`],
    volumes: ["data:/data", "logs:/logs:ro", `${root}/share:/share:ro`],
  });
  assert.deepEqual(checkHostPaths(good, user, policy), {
    ...good,
    initrd: join(root, "initrd"),
    disks: [`${join(root, "disk.img")}:rw`, `${join(root, "disk.img")}:ro`],
    volumes: ["data:/data", "logs:/logs:ro", `${join(root, "share")}:/share:ro`],
  });
  // With no roots at all, a user still gets images and named volumes.
  const named = spec({ image: "debian", volumes: ["data:/data"] });
  assert.deepEqual(checkHostPaths(named, user, none), named);
  // A read token creates nothing, even a spec without host paths; other roles create what names none.
  assert.throws(() => checkHostPaths(spec({}), reader, policy), ForbiddenError);
  assert.equal(ForbiddenError.status, 403);
  assert.deepEqual(checkHostPaths(spec({ cpus: 2 }), user, none), spec({ cpus: 2 }));
  // A malformed shared folder is the spec's error, not a pass.
  assert.throws(() => checkHostPaths(spec({ volumes: [join(outside, "share")] }), user, policy), (e: unknown) => (e as { code?: string }).code === "INVALID_STORAGE");
});

test("the allowed roots come from MVM_ALLOWED_ROOTS and $MVM_HOME/allowed-roots; relative entries are ignored", () => {
  const home = tempDir("mvm-home-");
  assert.deepEqual(readAllowedRoots(home, {}), []);
  assert.deepEqual(readAllowedRoots(home, { MVM_ALLOWED_ROOTS: "/srv/a:relative::/srv/b/" }), ["/srv/a", "/srv/b"]);
  writeFileSync(join(home, "allowed-roots"), "# roots for the API's users\n/srv/c   \n\nnot/absolute\n/srv/a # again\n");
  assert.deepEqual(readAllowedRoots(home, { MVM_ALLOWED_ROOTS: "/srv/a" }), ["/srv/a", "/srv/c"]);
});
