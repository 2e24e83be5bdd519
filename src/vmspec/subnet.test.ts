import assert from "node:assert/strict";
import { test } from "node:test";
import { allocate, contains, gatewayOf, overlaps, parseSubnet } from "./subnet.js";
import { InvalidSubnetError } from "../errors.js";

test("subnets are normalised and sized", () => {
  assert.deepEqual(parseSubnet("10.89.3.77/24").cidr, "10.89.3.0/24");
  assert.equal(gatewayOf(parseSubnet("192.168.50.0/29")), "192.168.50.1");
  assert.ok(contains(parseSubnet("10.0.0.0/8"), "10.200.1.1"));
  for (const bad of ["10.0.0.0", "10.0.0.0/31", "10.0.0.0/7", "300.0.0.0/24", "a.b.c.d/24", "10.0.0.0/24/1"]) {
    assert.throws(() => parseSubnet(bad), InvalidSubnetError, bad);
  }
});

test("overlap either way round", () => {
  assert.ok(overlaps(parseSubnet("10.79.0.0/24"), parseSubnet("10.79.0.128/25")));
  assert.ok(overlaps(parseSubnet("10.0.0.0/8"), parseSubnet("10.79.0.0/24")));
  assert.ok(!overlaps(parseSubnet("10.79.0.0/24"), parseSubnet("10.79.1.0/24")));
});

test("allocation: next free after the gateway, never network/gateway/broadcast, asked ones checked", () => {
  const s = parseSubnet("10.1.0.0/29"); // .0 net, .1 gateway, .2-.6 VMs, .7 broadcast
  assert.equal(allocate(s, new Set()), "10.1.0.2");
  assert.equal(allocate(s, new Set(["10.1.0.2", "10.1.0.3"])), "10.1.0.4");
  assert.equal(allocate(s, new Set(), "10.1.0.6"), "10.1.0.6");
  for (const bad of ["10.1.0.0", "10.1.0.1", "10.1.0.7", "10.1.1.2", "nope"]) assert.throws(() => allocate(s, new Set(), bad), InvalidSubnetError, bad);
  assert.throws(() => allocate(s, new Set(["10.1.0.4"]), "10.1.0.4"), /already taken/);
  assert.throws(() => allocate(s, new Set(["10.1.0.2", "10.1.0.3", "10.1.0.4", "10.1.0.5", "10.1.0.6"])), /no free address/);
});
