import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { optList, optValue } from "./escape.js";
import { QemuOptionValueError } from "../errors.js";

/** Splits a QEMU option list the way QEMU does: ",," is a literal comma, "," separates options. */
function qemuSplit(list: string): string[] {
  const parts: string[] = [];
  let cur = "";
  for (let i = 0; i < list.length; i++) {
    if (list[i] === ",") {
      if (list[i + 1] === ",") {
        cur += ",";
        i++;
      } else {
        parts.push(cur);
        cur = "";
      }
    } else cur += list[i];
  }
  parts.push(cur);
  return parts;
}

test("commas are doubled", () => {
  assert.equal(optValue("/tmp/a,b,,c"), "/tmp/a,,b,,,,c");
});

test("control characters and empty values are refused", () => {
  for (const bad of ["", "a\nb", "x\0y", "tab\there", "\x7f"]) assert.throws(() => optValue(bad), QemuOptionValueError);
});

test("property: no value can add or change an option", () => {
  const value = fc.string({ unit: fc.constantFrom("a", "/", ",", "=", " ", "é", ".", "-", "id", "file") , minLength: 1 });
  fc.assert(
    fc.property(value, value, (path, id) => {
      const list = optList([["id", id], ["path", path], ["reconnect", 1]]);
      assert.deepEqual(qemuSplit(list), [`id=${id}`, `path=${path}`, "reconnect=1"]);
    }),
  );
});

test("booleans become on/off", () => {
  assert.equal(optList([["a", true], ["b", false], ["c", 3]]), "a=on,b=off,c=3");
});
