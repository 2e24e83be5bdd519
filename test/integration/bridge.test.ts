// Bridged networks, inside a network namespace each test makes: no traffic leaves it.
import assert from "node:assert/strict";
import { test } from "node:test";
import { killDaemon, startTestDaemon, waitGone } from "../support/daemon.js";

const root = process.getuid?.() === 0;

test("two VMs on one network reach each other and the bridge; rm removes taps; a network in use stays", { skip: !root && "needs root", timeout: 180_000 }, async (t) => {
  const d = await startTestDaemon(t, { netns: true });
  const c = d.client;
  const net = await c.createNetwork("lan", { subnet: "10.77.0.0/24" });
  assert.match(d.inNetns(["ip", "-4", "addr", "show", "dev", net.bridge]), /10\.77\.0\.1\/24/);
  const a = await c.start((await c.create({ name: "a", network: "lan" })).id);
  const b = await c.start((await c.create({ name: "b", network: "lan", ip: "10.77.0.50" })).id);
  assert.equal(a.bridged?.ip, "10.77.0.2");
  assert.equal(b.bridged?.ip, "10.77.0.50");
  assert.equal((await c.exec("a", ["ping", "-c", "1", "-W", "5", "10.77.0.50"])).status, 0, "a reaches b");
  assert.equal((await c.exec("b", ["ping", "-c", "1", "-W", "5", "10.77.0.1"])).status, 0, "b reaches the bridge");
  assert.match(d.inNetns(["ip", "link", "show", "master", net.bridge]), new RegExp(a.bridged.tap));

  const inUse = await d.cli(["network", "rm", "lan"]);
  assert.equal(inUse.code, 125);
  assert.match(inUse.stderr, /in use by a, b/);

  await c.remove("a", { force: true });
  assert.doesNotMatch(d.inNetns(["ip", "link", "show"]), new RegExp(a.bridged.tap), "rm removed a's tap");
  const c2 = await c.create({ name: "c", network: "lan" });
  assert.equal(c2.bridged?.ip, "10.77.0.2", "a's address is free again");
  await c.remove("b", { force: true });
  await c.remove("c");
  assert.equal((await d.cli(["network", "rm", "lan"])).code, 0);
  assert.doesNotMatch(d.inNetns(["ip", "link", "show"]), new RegExp(net.bridge));
});

test("QEMU and the daemon killed: the next daemon leaves no tap behind", { skip: !root && "needs root", timeout: 180_000 }, async (t) => {
  const d = await startTestDaemon(t, { netns: true });
  const net = await d.client.createNetwork("lan", { subnet: "10.78.0.0/24" });
  const vm = await d.client.start((await d.client.create({ name: "v", network: "lan" })).id);
  await killDaemon(d);
  process.kill(vm.pid!, "SIGKILL");
  assert.deepEqual(await waitGone([vm.pid!]), [], "QEMU died of SIGKILL");
  assert.match(d.inNetns(["ip", "link", "show"]), new RegExp(vm.bridged!.tap), "the tap outlived both");
  // As after a host reboot, the bridge is gone too: the next daemon makes it again.
  d.inNetns(["ip", "link", "del", net.bridge]);
  const c2 = await d.restart();
  assert.match(d.inNetns(["ip", "-4", "addr", "show", "dev", net.bridge]), /10\.78\.0\.1\/24/, "the bridge is back with its address");
  assert.equal((await c2.get("v")).state, "crashed");
  assert.doesNotMatch(d.inNetns(["ip", "link", "show"]), new RegExp(vm.bridged!.tap));
  // Started again, it gets its tap and address back.
  const again = await c2.start("v");
  assert.equal(again.bridged?.ip, vm.bridged?.ip);
  assert.equal((await c2.exec("v", ["ping", "-c", "1", "-W", "5", "10.78.0.1"])).status, 0);
});

test("bad networks and addresses: clear errors, nothing half-made", { skip: !root && "needs root", timeout: 180_000 }, async (t) => {
  const d = await startTestDaemon(t, { netns: true });
  const nat = await d.client.createNetwork("out", { subnet: "10.82.0.0/24", nat: true });
  assert.match(d.inNetns(["nft", "list", "table", "ip", `mvm_${nat.id}`]), /ip saddr 10\.82\.0\.0\/24 ip daddr != 10\.82\.0\.0\/24 masquerade/);
  await d.client.removeNetwork("out");
  assert.throws(() => d.inNetns(["nft", "list", "table", "ip", `mvm_${nat.id}`]), "network rm removed its NAT table");
  await d.client.createNetwork("lan", { subnet: "10.79.0.0/24" });
  const before = d.inNetns(["ip", "-br", "link", "show"]);
  const cases: Array<[string[], RegExp]> = [
    [["network", "create", "other", "--subnet", "10.79.0.128/25"], /overlaps lan/],
    [["network", "create", "tiny", "--subnet", "10.80.0.0/31"], /too small/],
    [["network", "create", "lan", "--subnet", "10.81.0.0/24"], /already exists/],
    [["network", "create", "user"], /invalid network name/],
    [["network", "create", "bad", "--subnet", "10.80.0.0"], /invalid subnet/],
    [["create", "--network", "nosuch"], /no network named nosuch/],
    [["create", "--network", "lan", "--ip", "10.99.0.5"], /outside 10\.79\.0\.0\/24/],
    [["create", "--network", "lan", "--ip", "10.79.0.1"], /gateway/],
  ];
  for (const [args, why] of cases) {
    const r = await d.cli(args);
    assert.equal(r.code, 125, args.join(" "));
    assert.match(r.stderr, why);
  }
  await d.client.create({ name: "holder", network: "lan", ip: "10.79.0.9" });
  const taken = await d.cli(["create", "--network", "lan", "--ip", "10.79.0.9"]);
  assert.match(taken.stderr, /already taken/);
  assert.deepEqual((await d.client.networks()).map((n) => [n.name, n.vms]), [["lan", ["holder"]]]);
  assert.equal(d.inNetns(["ip", "-br", "link", "show"]), before, "no interface was left behind");
  assert.deepEqual((await d.client.list()).map((v) => v.name), ["holder"]);
});
