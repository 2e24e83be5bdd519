import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { parsePort } from "./ports.js";
import { InvalidPortError } from "../errors.js";

test("Docker's forms", () => {
  assert.deepEqual(parsePort("8080:80"), { hostIp: "127.0.0.1", hostPort: 8080, guestPort: 80, proto: "tcp" });
  assert.deepEqual(parsePort("0.0.0.0:53:5353/udp"), { hostIp: "0.0.0.0", hostPort: 53, guestPort: 5353, proto: "udp" });
});

test("anything else is refused with a hint", () => {
  for (const bad of ["80", "a:b", "0:80", "70000:80", "8080:80/sctp", "host:8080:80", "1.2.3:80:80", "8080:80,hostfwd=tcp::22-:22", "-1:80", "8080:80 "]) {
    assert.throws(() => parsePort(bad), (e: unknown) => e instanceof InvalidPortError && Boolean(e.hint), bad);
  }
});

test("property: whatever parses holds only digits, dots and known words", () => {
  fc.assert(
    fc.property(fc.string({ maxLength: 30 }), (text) => {
      try {
        const p = parsePort(text);
        assert.match(`${p.hostIp}:${p.hostPort}:${p.guestPort}/${p.proto}`, /^[\d.]+:\d+:\d+\/(tcp|udp)$/);
      } catch (e) {
        assert.ok(e instanceof InvalidPortError);
      }
    }),
  );
});
