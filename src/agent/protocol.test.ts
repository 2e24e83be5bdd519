import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { ErrorCode, Field, FrameType, FsFlag, HEADER_SIZE, WatchKind, MAX_ENTROPY, MAX_PAYLOAD, MAX_SESSIONS, PROTO_VERSION, WINDOW } from "./protocol.js";

// The guest's C header and this module must never drift apart.
const header = readFileSync(fileURLToPath(new URL("../../../guest/agent/proto.h", import.meta.url)), "utf8");
const defines = new Map<string, number>();
for (const m of header.matchAll(/^#define (\w+) \(?(0x[0-9a-fA-F]+|[0-9]+)(?: \* ([0-9]+))?\)?/gm)) {
  defines.set(m[1]!, Number(m[2]) * (m[3] ? Number(m[3]) : 1));
}

test("limits match guest/agent/proto.h", () => {
  assert.equal(defines.get("MVM_PROTO_VERSION"), PROTO_VERSION);
  assert.equal(defines.get("MVM_HEADER_SIZE"), HEADER_SIZE);
  assert.equal(defines.get("MVM_MAX_PAYLOAD"), MAX_PAYLOAD);
  assert.equal(defines.get("MVM_WINDOW"), WINDOW);
  assert.equal(defines.get("MVM_MAX_SESSIONS"), MAX_SESSIONS);
  assert.equal(defines.get("MVM_MAX_ENTROPY"), MAX_ENTROPY);
});

test("frame types, field tags and error codes match guest/agent/proto.h", () => {
  const groups: Array<[string, Record<string, number>]> = [["T_", FrameType], ["F_", Field], ["E_", ErrorCode], ["FL_", FsFlag], ["WK_", WatchKind]];
  for (const [prefix, table] of groups) {
    const fromC = [...defines].filter(([k]) => k.startsWith(prefix));
    assert.ok(fromC.length > 0, `no ${prefix} defines found`);
    assert.equal(fromC.length, Object.keys(table).length, `${prefix} count differs`);
    for (const [name, value] of fromC) assert.equal(table[name.slice(prefix.length)], value, `${name}`);
  }
});
