// The web dashboard (issue 15) in a real browser against a real guest under TCG: Debian's chromium driven
// by playwright-core (no browser download), the daemon the library starts on demand listening on loopback
// with tokens. One walk through the page: a wrong token refused, sign-in, a VM the CLI creates appearing in
// the list within 2 s, a create from the form with a bad value first (the API's problem beside the field),
// the serial console and a terminal typed into (their text read from the DOM, xterm's screen-reader
// mode), a file uploaded and read back with `mvm exec` and one the guest made downloaded byte for byte,
// charts with points (the daemon's history drawn the moment a page is reloaded), an image imported through
// the form with its progress, a network created and removed with the buttons (as root: the daemon, and so
// the browser, in a network namespace of their own, as bridge.test.ts does), stop and delete with the
// buttons, and no error in the page's console. On failure each view's screenshot is kept.
import assert from "node:assert/strict";
import { once } from "node:events";
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { chromium, type BrowserContext, type Page } from "playwright-core";
import { startTestDaemon } from "../support/daemon.js";

// What the functions run in the page see (the root tsconfig has no DOM library).
declare const document: { querySelector(s: string): { textContent: string | null; getAttribute(n: string): string | null } | null };

const CHROMIUM = process.env.MVM_CHROMIUM ?? "/usr/bin/chromium";
// Bridged networks need root; the daemon then lives in a network namespace (nothing touches the host's).
const root = process.getuid?.() === 0;
// Not under $TMPDIR: the test runner removes that when the run ends.
const ARTIFACTS = process.env.MVM_TEST_ARTIFACTS ?? "/tmp/mvm-test-artifacts";

async function freePort(): Promise<number> {
  const probe = createServer().listen(0, "127.0.0.1");
  await once(probe, "listening");
  const port = (probe.address() as { port: number }).port;
  probe.close();
  return port;
}

/** The text xterm keeps in the DOM for screen readers (its accessibility tree), of the terminal in `sel`. */
const termText = (page: Page, sel: string): Promise<string> => page.locator(sel).evaluate((el: { textContent: string | null }) => el.textContent ?? "");

async function waitText(page: Page, sel: string, needle: string, timeout: number): Promise<void> {
  await page.waitForFunction(([s, n]) => (document.querySelector(s!)?.textContent ?? "").includes(n!), [sel, needle], { timeout, polling: 200 });
}

test("the dashboard in chromium: sign-in, a live list, create, console, terminal, files, charts, images, networks, stop and delete", { skip: !existsSync(CHROMIUM) && `no ${CHROMIUM} (apt-get install chromium)`, timeout: 420_000 }, async (t) => {
  const port = await freePort();
  process.env.MVM_LISTEN = `127.0.0.1:${port}`;
  // The daemon's stats history sampled every second (5 s by default): guests here are up in a second or
  // two, and the walk reaches the charts a few seconds later.
  process.env.MVM_STATS_HISTORY_MS = "1000";
  let d;
  try {
    d = await startTestDaemon(t, { netns: root });
  } finally {
    delete process.env.MVM_LISTEN;
    delete process.env.MVM_STATS_HISTORY_MS;
  }
  const url = `http://127.0.0.1:${port}`;
  const { token } = await d.client.createToken("dash", { role: "admin" });

  // mvm dashboard: the link for this daemon's listener, with the token in the fragment.
  const link = await d.cli(["dashboard", "--json", "--no-open", "--token", token]);
  assert.equal(link.code, 0, link.stderr);
  const printed = JSON.parse(link.stdout) as { url: string; listener: string };
  assert.equal(printed.listener, url);
  assert.equal(printed.url, `${url}/dashboard/#token=${token}`);

  const profile = await mkdtemp(join(tmpdir(), "mvm-chromium-"));
  t.after(() => rm(profile, { recursive: true, force: true }));
  const scratch = await mkdtemp(join(tmpdir(), "mvm-dash-"));
  t.after(() => rm(scratch, { recursive: true, force: true }));
  // In the daemon's namespace the browser reaches its loopback listener: chromium started through
  // `ip netns exec` (playwright talks to it over inherited pipes, which the wrapper keeps).
  let executablePath = CHROMIUM;
  if (d.netns) {
    executablePath = join(scratch, "chromium-in-netns");
    await writeFile(executablePath, `#!/bin/sh\nexec ip netns exec ${d.netns} ${CHROMIUM} "$@"\n`);
    await chmod(executablePath, 0o755);
  }
  // A fresh profile each run (playwright passes it as --user-data-dir), removed afterwards.
  const browser: BrowserContext = await chromium.launchPersistentContext(profile, {
    executablePath,
    headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
    viewport: { width: 1280, height: 800 },
    timeout: 60_000,
  });
  t.after(() => browser.close());
  const page = browser.pages()[0] ?? (await browser.newPage());
  page.setDefaultTimeout(30_000);
  // Errors in the page: its own, and console errors but the 4xx answers this walk asks for on purpose.
  const errors: string[] = [];
  page.on("pageerror", (e) => errors.push(`pageerror: ${e.message}`));
  page.on("console", (m) => {
    if (m.type() === "error" && !/status of 40[013]/.test(m.text())) errors.push(`console: ${m.text()}`);
  });
  // Screenshots of each view reached, written out on failure (and always to $MVM_DASHBOARD_SCREENSHOTS,
  // which is how the two in docs/ are made).
  const shots = new Map<string, Buffer>();
  const shot = async (name: string) => {
    const png = await page.screenshot({ fullPage: true }).catch(() => undefined);
    if (png) shots.set(name, png);
  };
  const writeShots = async (dir: string) => {
    await mkdir(dir, { recursive: true });
    for (const [name, png] of shots) await writeFile(join(dir, `dashboard-${name}.png`), png);
    return [...shots.keys()].map((n) => join(dir, `dashboard-${n}.png`));
  };
  t.after(async () => {
    if (process.env.MVM_DASHBOARD_SCREENSHOTS) await writeShots(process.env.MVM_DASHBOARD_SCREENSHOTS);
  });
  let step = "start";
  try {
    step = "sign-in";
    const t0 = Date.now();
    await page.goto(`${url}/`);
    await page.getByLabel("Token").waitFor();
    const firstLoadMs = Date.now() - t0;
    t.diagnostic(`first load (page, bundle, sign-in form): ${firstLoadMs} ms`);
    await page.getByLabel("Token").fill("mvm_wrong");
    await page.getByRole("button", { name: "Sign in" }).click();
    await waitText(page, "#token-error", "not valid", 10_000);
    await page.getByLabel("Token").fill(token);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.locator("table.vms").waitFor();
    await page.locator(".stream.up").waitFor();

    step = "live-list";
    const made = await d.cli(["create", "--name", "from-cli"]);
    assert.equal(made.code, 0, made.stderr);
    const created = Date.now();
    await page.locator('tr[data-vm="from-cli"]').waitFor({ timeout: 2000 });
    t.diagnostic(`a VM created by the CLI appeared in the list after ${Date.now() - created} ms`);
    await shot("list");

    step = "create-form";
    await page.goto(`${url}/dashboard/#/create`);
    await page.getByLabel("Name").fill("from-form");
    await page.getByLabel("Cpus").fill("999");
    await page.getByRole("button", { name: "Create" }).click();
    await waitText(page, "#f-cpus-error", "64", 10_000);
    assert.equal(await page.locator('tr[data-vm="from-form"]').count(), 0);
    await page.getByLabel("Cpus").fill("1");
    await page.getByRole("button", { name: "Create" }).click();
    // Create, then start (the page waits for the start's answer: the guest ready), then its overview.
    await page.waitForURL(/#\/vm\/from-form\/overview/, { timeout: 180_000 });
    await page.locator("h2 .state.running").waitFor({ timeout: 30_000 });

    step = "console";
    const word = `dash-${Math.floor(Math.random() * 1e9)}`;
    await page.goto(`${url}/dashboard/#/vm/from-form/console`);
    await waitText(page, "main [role=status]", "connected", 15_000);
    await page.locator("#console-term").click();
    await page.keyboard.type(`echo ${word}-$((6*7))\n`, { delay: 20 });
    await waitText(page, "#console-term", `${word}-42`, 20_000);
    await shot("console");

    step = "logs";
    await page.goto(`${url}/dashboard/#/vm/from-form/logs`);
    await waitText(page, "#log", `${word}-42`, 15_000);

    step = "terminal";
    await page.goto(`${url}/dashboard/#/vm/from-form/terminal`);
    await waitText(page, "main [role=status]", "pseudo-terminal", 20_000);
    await page.locator("#exec-term").click();
    await page.keyboard.type("tty; echo term-$((5*5))\n", { delay: 20 });
    await waitText(page, "#exec-term", "term-25", 20_000);
    assert.match(await termText(page, "#exec-term"), /\/dev\/pts\/\d/);
    // The terminal follows the window: a narrower page gives the guest's pty fewer columns (stty size).
    const sttySize = async (tag: string): Promise<[number, number]> => {
      await page.keyboard.type(`echo ${tag}=$(stty size | tr ' ' x)=\n`, { delay: 10 });
      const re = new RegExp(`${tag}=(\\d+)x(\\d+)=`);
      let m: RegExpMatchArray | null = null;
      for (const end = Date.now() + 15_000; !m && Date.now() < end; await new Promise((r) => setTimeout(r, 200))) m = re.exec(await termText(page, "#exec-term"));
      assert.ok(m, `stty size (${tag}) in ${await termText(page, "#exec-term")}`);
      return [Number(m[1]), Number(m[2])];
    };
    const wide = await sttySize("size1");
    await page.setViewportSize({ width: 900, height: 800 });
    await new Promise((r) => setTimeout(r, 1000));
    const narrow = await sttySize("size2");
    assert.ok(narrow[1] < wide[1] && narrow[1] > 20, `columns ${wide[1]} -> ${narrow[1]}`);
    await page.setViewportSize({ width: 1280, height: 800 });
    await shot("terminal");

    step = "files";
    const content = `uploaded from the browser ${word}\n`;
    await page.goto(`${url}/dashboard/#/vm/from-form/files`);
    await page.getByLabel("Folder").fill("/tmp");
    await page.getByRole("button", { name: "Open" }).click();
    await page.locator("#files-upload").setInputFiles({ name: "up.txt", mimeType: "text/plain", buffer: Buffer.from(content) });
    await page.locator('.upload[data-done="ok"]').waitFor({ timeout: 30_000 });
    await page.locator('tr[data-file="up.txt"]').waitFor();
    const back = await d.cli(["exec", "from-form", "cat", "/tmp/up.txt"]);
    assert.equal(back.code, 0, `${back.stderr}; the page's folder: ${await page.getByLabel("Folder").inputValue()}; the guest: ${(await d.cli(["exec", "from-form", "ls", "-la", "/tmp", "/root"])).stdout}`);
    assert.equal(back.stdout, content);
    // Bytes the guest made (not text), downloaded through the page: the same bytes.
    const made2 = await d.cli(["exec", "from-form", "--", "sh", "-c", "head -c 70000 /dev/urandom > /tmp/blob.bin && sha256sum /tmp/blob.bin"]);
    assert.equal(made2.code, 0, made2.stderr);
    await page.getByRole("button", { name: "Open" }).click();
    const [dl] = await Promise.all([page.waitForEvent("download"), page.locator('tr[data-file="blob.bin"] button', { hasText: "Download" }).click()]);
    assert.equal(dl.suggestedFilename(), "blob.bin");
    const got = await readFile(await dl.path());
    assert.equal(got.length, 70000);
    assert.equal(createHash("sha256").update(got).digest("hex"), made2.stdout.split(" ")[0]);
    await shot("files");

    step = "charts";
    await page.goto(`${url}/dashboard/#/vm/from-form/overview`);
    // Reloaded, the page has sampled nothing yet: the points come from the daemon's history (their first
    // one older than the reload), not from the page's own 2 s polls.
    const historyDrawn = (sel: string, before: number) =>
      page.waitForFunction(([s, t0]) => Number(document.querySelector(s as string)?.getAttribute("data-from") || Infinity) * 1000 < (t0 as number), [sel, before], { timeout: 10_000, polling: 100 });
    for (let i = 0; i < 50 && !(await d.client.statsHistory("from-form")).samples.some((x) => x.cpuPercent !== undefined); i++) await new Promise((r) => setTimeout(r, 200));
    const reloaded = Date.now();
    await page.reload();
    await historyDrawn('[data-chart="CPU %"]', reloaded);
    t.diagnostic(`after a reload, the history drawn in ${Date.now() - reloaded} ms`);
    // Stats are sampled every 2 s; a CPU figure needs two of them.
    await page.waitForFunction(() => Number(document.querySelector('[data-chart="CPU %"]')?.getAttribute("data-points") ?? 0) >= 2, undefined, { timeout: 30_000 });
    assert.ok(Number(await page.locator('[data-chart="Memory (RSS)"]').getAttribute("data-points")) >= 2);
    await page.locator(".timeline li").first().waitFor();
    await shot("overview");
    const hostOpened = Date.now();
    await page.goto(`${url}/dashboard/#/host`);
    await page.waitForFunction(() => Number(document.querySelector("[data-chart^='Host: CPU']")?.getAttribute("data-points") ?? 0) >= 1, undefined, { timeout: 20_000 });
    await historyDrawn("[data-chart^='Host: CPU']", hostOpened);
    await waitText(page, "#host-machine", "used of", 10_000);
    assert.ok(Number(await page.locator("[data-chart^='Ready times']").getAttribute("data-points")) >= 1);
    await shot("host");

    step = "images";
    // A small raw ext4 file on the daemon's host, imported through the form: its progress, then listed.
    const tree = join(scratch, "tree");
    await mkdir(join(tree, "etc"), { recursive: true });
    await writeFile(join(tree, "etc", "marker"), "dashboard image\n");
    const ext4 = join(scratch, "small.ext4");
    execFileSync("mkfs.ext4", ["-q", "-F", "-d", tree, ext4, "16M"]);
    await page.goto(`${url}/dashboard/#/images`);
    await page.locator("#img-file").fill(ext4);
    await page.locator("#img-name").fill("dash-img");
    await page.getByRole("button", { name: "Import" }).click();
    await page.locator('#image-progress[data-state="done"]').waitFor({ timeout: 30_000 });
    assert.match((await page.locator("#image-progress").textContent()) ?? "", /converting the ext4 filesystem to qcow2\n(.*\n)*done\n$/);
    await page.locator('tr[data-image="dash-img"]', { hasText: "16.0 MiB" }).waitFor({ timeout: 10_000 });
    assert.deepEqual((await d.client.images()).map((i) => i.name), ["dash-img"]);
    await shot("images");
    page.once("dialog", (dlg) => void dlg.accept());
    await page.locator('tr[data-image="dash-img"] button', { hasText: "Remove" }).click();
    await page.locator('tr[data-image="dash-img"]').waitFor({ state: "detached", timeout: 10_000 });

    if (d.netns) {
      step = "networks";
      await page.goto(`${url}/dashboard/#/networks`);
      await page.getByLabel("Name").fill("dashnet");
      await page.getByLabel("Subnet").fill("10.79.0.0/24");
      await page.getByLabel("NAT to the outside").uncheck();
      await page.getByRole("button", { name: "Create" }).click();
      await page.locator('tr[data-network="dashnet"]', { hasText: "10.79.0.0/24" }).waitFor({ timeout: 10_000 });
      const net = (await d.client.networks()).find((n) => n.name === "dashnet");
      assert.ok(net, "the network is the daemon's");
      assert.match(d.inNetns(["ip", "-4", "addr", "show", "dev", net.bridge]), /10\.79\.0\.1\/24/);
      await shot("networks");
      page.once("dialog", (dlg) => void dlg.accept());
      await page.locator('tr[data-network="dashnet"] button', { hasText: "Remove" }).click();
      await page.locator('tr[data-network="dashnet"]').waitFor({ state: "detached", timeout: 10_000 });
      assert.deepEqual(await d.client.networks(), []);
      assert.doesNotMatch(d.inNetns(["ip", "link", "show"]), new RegExp(net.bridge));
    } else t.diagnostic("networks: skipped, creating a bridge needs root");

    step = "filters";
    await page.goto(`${url}/dashboard/#/vms`);
    await page.locator('tr[data-vm="from-form"][data-state="running"]').waitFor();
    await page.locator('tr[data-vm="from-form"] td:nth-child(9)', { hasText: "%" }).waitFor();
    await shot("list");
    await page.getByLabel("State").selectOption("running");
    await page.locator('tr[data-vm="from-cli"]').waitFor({ state: "detached" });
    await page.getByLabel("State").selectOption("");
    await page.getByLabel("Name").fill("cli");
    await page.locator('tr[data-vm="from-form"]').waitFor({ state: "detached" });
    await page.locator('tr[data-vm="from-cli"]').waitFor();
    await page.getByLabel("Name").fill("");

    step = "stop-delete";
    await page.goto(`${url}/dashboard/#/vm/from-form/overview`);
    await page.locator('button[data-action="stop"]').click();
    await page.locator("h2 .state.stopped").waitFor({ timeout: 60_000 });
    page.once("dialog", (dlg) => void dlg.accept());
    await page.locator('button[data-action="delete"]').click();
    await page.waitForURL(/#\/vms$/);
    await page.locator('tr[data-vm="from-form"]').waitFor({ state: "detached", timeout: 10_000 });
    assert.equal((await d.client.list()).some((v) => v.name === "from-form"), false);

    step = "roles";
    // A read token sees every VM and drives none: the API's FORBIDDEN, message and hint, in the banner.
    const read = (await d.client.createToken("dash-read", { role: "read" })).token;
    const user = (await d.client.createToken("dash-user", { role: "user" })).token;
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.getByLabel("Token").fill(read);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.locator('tr[data-vm="from-cli"] button[data-action="start"]').click();
    await waitText(page, ".banner", "FORBIDDEN", 10_000);
    assert.match((await page.locator(".banner").textContent()) ?? "", /Hint:/);
    // A user token sees its own VMs only: not the host's root's from-cli.
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.getByLabel("Token").fill(user);
    await page.getByRole("button", { name: "Sign in" }).click();
    await waitText(page, "main", "No VMs yet", 10_000);
    assert.equal(await page.locator('tr[data-vm="from-cli"]').count(), 0);

    assert.deepEqual(errors, [], "errors in the page's console");
  } catch (e) {
    await shot(`failed-${step}`);
    const files = await writeShots(ARTIFACTS).catch(() => []);
    t.diagnostic(`failed at ${step}; screenshots: ${files.join(", ")}; page errors: ${errors.join(" | ")}`);
    throw e;
  }
});
