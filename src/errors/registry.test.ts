import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import * as pkg from "../index.js";
import { BadRequestError, FileExistsError, FileNotFoundError, GuestDiskFullError, GuestFileError, MvmError, WrongStateError, guestFileError } from "../errors.js";
import { errorClasses, errorClassFor, errorFromBody } from "./registry.js";

test("every code has one class, a status, a hint, and a row in docs/api.md's error table", () => {
  const api = readFileSync(new URL("../../../docs/api.md", import.meta.url), "utf8");
  const rows = new Map([...api.matchAll(/^\| `([A-Z][A-Z0-9_]+)` \| (\d{3}) \| (\w+) \|/gm)].map((m) => [m[1]!, { status: Number(m[2]), cls: m[3]! }]));
  const classes = errorClasses();
  assert.ok(classes.length > 40, `only ${classes.length} classes registered`);
  for (const cls of classes) {
    assert.match(cls.code, /^[A-Z][A-Z0-9_]+$/);
    assert.equal(errorClassFor(cls.code), cls);
    assert.ok(Number.isInteger(cls.status) && cls.status >= 400 && cls.status <= 599, `${cls.code}: status ${cls.status}`);
    assert.ok(cls.hint.length > 10, `${cls.code} has no default hint`);
    assert.deepEqual(rows.get(cls.code), { status: cls.status, cls: cls.name }, `docs/api.md: the row for ${cls.code} should say ${cls.status} ${cls.name}`);
  }
  assert.deepEqual([...rows.keys()].sort(), classes.map((c) => c.code).sort(), "docs/api.md lists codes no class has");
});

test("user mistakes are never 500: only the base class and INTERNAL are", () => {
  for (const cls of errorClasses()) {
    if (cls.prototype instanceof BadRequestError || cls === BadRequestError) assert.ok(cls.status < 500, cls.code);
    if (cls.status === 500) assert.ok(cls === MvmError || cls.code === "INTERNAL", `${cls.code} is 500`);
  }
});

test("every class is exported from the package", () => {
  const exported = pkg as unknown as Record<string, unknown>;
  for (const cls of errorClasses()) assert.equal(exported[cls.name], cls, `${cls.name} is not exported from src/index.ts`);
  assert.equal(exported.errorFromBody, errorFromBody);
});

test("errorFromBody rebuilds every class from its body: message, hint, details, and instanceof up the tree", () => {
  for (const cls of errorClasses()) {
    const sent = new cls("it went wrong", { hint: "do this", details: { vm: "web", n: 1 } });
    const back = errorFromBody(cls.status, JSON.parse(JSON.stringify(sent)) as Record<string, unknown>);
    assert.ok(back instanceof cls && back instanceof MvmError, cls.name);
    assert.equal(back.constructor, cls);
    assert.deepEqual([back.code, back.message, back.hint, back.name], [cls.code, "it went wrong", "do this", cls.name]);
    assert.deepEqual(back.details, { vm: "web", n: 1, status: cls.status });
  }
  const state = errorFromBody(undefined, { error: "WRONG_STATE", message: "m" });
  assert.ok(state instanceof WrongStateError);
  assert.equal(state.hint, WrongStateError.hint, "a body without a hint gets the class's");
  assert.deepEqual(state.details, {});
});

test("a code this version does not know stays a plain MvmError with that code", () => {
  const e = errorFromBody(418, { error: "FROM_THE_FUTURE", message: "new", hint: "h", details: { a: 1 } });
  assert.equal(e.constructor, MvmError);
  assert.deepEqual([e.code, e.message, e.hint, e.details], ["FROM_THE_FUTURE", "new", "h", { a: 1, status: 418 }]);
  assert.deepEqual(e.toJSON(), { error: "FROM_THE_FUTURE", message: "new", hint: "h", details: { a: 1, status: 418 } });
  const bare = errorFromBody(502, {});
  assert.deepEqual([bare.code, bare.message], ["DAEMON_ERROR", "daemon answered 502"]);
});

test("guestFileError picks the class from the errno and keeps it in details", () => {
  const cases: Array<[number | undefined, typeof GuestFileError, string]> = [
    [2, FileNotFoundError, "ENOENT"],
    [17, FileExistsError, "EEXIST"],
    [28, GuestDiskFullError, "ENOSPC"],
    [122, GuestDiskFullError, "EDQUOT"],
    [21, GuestFileError, "EISDIR"],
    [999, GuestFileError, "errno 999"],
  ];
  for (const [errno, cls, name] of cases) {
    const e = guestFileError("m", errno, { details: { path: "/x" } });
    assert.equal(e.constructor, cls, String(errno));
    assert.ok(e instanceof GuestFileError);
    assert.deepEqual(e.details, { errno, errnoName: name, path: "/x" });
    assert.equal(e.hint, cls.hint);
  }
  assert.equal(guestFileError("m", undefined).code, "FILE_ERROR");
});
