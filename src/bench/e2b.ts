// `mvm bench e2b`: the official E2B SDK (the `e2b` package, loaded only here) against mvm's E2B backend,
// beside the same operations through mvm's own library, in the same run and over the same TCP listener
// with the same token, so the ratio is the backend's cost and not the machine's mood:
//   create: Sandbox.create() until it resolves          vs  client.create + client.start (template base,
//           the Debian image; both start the fastest way mvm has: a warm pool's QEMU or a template
//           clone), each after --gap ms for the pool to refill (0 measures creates back to back)
//   run:    commands.run("true") round trips            vs  client.exec of the command it sends
//           (/bin/bash -l -c true), and of `true` alone
//   files:  files.write then files.read of N MiB        vs  client.files(vm).write / read
// Where: a daemon of the bench's own (own-daemon.ts) unless --url and --token name a listener; its home
// gets the Debian image from this home's daemon (imported) or, without one, builds it. Everything the
// bench made is removed at the end, also when it fails or is interrupted.

import { randomBytes } from "node:crypto";
import type { Sandbox } from "e2b";
import { connect, type MvmClient } from "../client/client.js";
import { homeDir } from "../host/paths.js";
import { InvalidArgumentError } from "../errors.js";
import { ownDaemon, type OwnDaemon } from "./own-daemon.js";
import { round, summarize, type Summary } from "./stats.js";

export interface E2bBenchOptions {
  creates: number;
  /** Pause before each create, so the warm pool has refilled (about 1 s under TCG); 0: back to back. */
  gapMs: number;
  runs: number;
  fileMiB: number;
  fileRounds: number;
  url?: string;
  token?: string;
  onProgress?: (l: string) => void;
}

type Pair = { e2b: Summary; mvm: Summary; ratio: number };

export interface E2bBenchResult {
  transport: { url: string; daemon: "own" | "given" };
  /** The pause before each create (ms). */
  gapMs: number;
  image: string;
  /** How each measured start went (cold, clone, pool), for the SDK's sandboxes and the library's VMs. */
  create: Pair & { how: { e2b: Record<string, number>; mvm: Record<string, number> }; coldReasons: string[] };
  /**
   * The SDK's commands.run("true") sends `/bin/bash -l -c true`: `mvm` is exec of that same command (so the
   * ratio is the E2B layer's cost), `mvmTrue` exec of `true` alone (what a plain exec costs).
   */
  run: Pair & { mvmTrue: Summary; ratioToTrue: number };
  files: { mib: number; write: Pair & { e2bMiBps: number; mvmMiBps: number }; read: Pair & { e2bMiBps: number; mvmMiBps: number } };
  /** Issue 14: create p50 <= 150 ms (with instant start), commands.run p50 <= 15 ms and <= 1.5x mvm's exec. */
  targets: { createP50Ms: number; runP50Ms: number; runRatio: number; createMet: boolean; runMet: boolean; runRatioMet: boolean };
}

async function loadSdk(): Promise<{ Sandbox: typeof Sandbox }> {
  try {
    const { Sandbox } = await import("e2b");
    return { Sandbox };
  } catch (e) {
    throw new InvalidArgumentError(`mvm bench e2b needs the e2b package, which is not installed here: ${(e as Error).message}`, {
      hint: "install mvm with its development dependencies (npm ci), or npm install e2b@2.51.0 beside it",
    });
  }
}

const time = async <T>(f: () => Promise<T>): Promise<[number, T]> => {
  const t0 = performance.now();
  const v = await f();
  return [performance.now() - t0, v];
};

const pair = (e2b: number[], mvm: number[]): Pair => {
  const a = summarize(e2b);
  const b = summarize(mvm);
  return { e2b: a, mvm: b, ratio: round(a.p50Ms / Math.max(b.p50Ms, 0.01), 2) };
};

const mibps = (mib: number, ms: number) => round(mib / (ms / 1000));

/** The Debian image (template base) in the bench's daemon: imported from this home's daemon, else built. */
async function ensureDebian(client: MvmClient, progress: (l: string) => void): Promise<void> {
  if ((await client.images()).some((i) => i.name === "debian")) return;
  const mine = await connect({ home: homeDir() }).catch(() => undefined);
  const here = mine && (await mine.images().catch(() => [])).find((i) => i.name === "debian");
  if (here) {
    progress(`importing the debian image from ${homeDir()} (${here.path})`);
    await client.importImage(here.path, "debian", (l) => progress(`image: ${l}`));
    return;
  }
  progress("no debian image in this home: building one for the bench (minutes; mvm image build debian keeps one for next time)");
  await client.buildImage({}, (l) => progress(`image: ${l}`));
}

export async function benchE2b(o: E2bBenchOptions): Promise<E2bBenchResult> {
  const progress = o.onProgress ?? (() => {});
  const sdkModule = await loadSdk();
  if (!o.url !== !o.token) throw new InvalidArgumentError("--url and --token go together", { hint: "name both, or neither for a daemon of the bench's own" });
  const own: OwnDaemon | undefined = o.url ? undefined : await ownDaemon("bench-e2b", progress);
  const url = (own?.url ?? o.url ?? "").replace(/\/$/, "");
  const token = own?.token ?? o.token ?? "";
  const sdk = { apiUrl: url, sandboxUrl: url, apiKey: token, requestTimeoutMs: 120_000 };
  const sandboxes: Sandbox[] = [];
  const vms: string[] = [];
  let client: MvmClient | undefined;
  const cleanup = async () => {
    const s = sandboxes.splice(0);
    const v = vms.splice(0);
    if (s.length + v.length) progress(`removing the ${s.length} sandboxes and ${v.length} VMs the bench made`);
    await Promise.all([...s.map((x) => x.kill().catch(() => undefined)), ...v.map((id) => client?.remove(id, { force: true }).catch(() => undefined))]);
  };
  const interrupted = () => void cleanup().then(() => own?.stop()).finally(() => process.exit(130));
  process.once("SIGINT", interrupted);
  process.once("SIGTERM", interrupted);
  try {
    const c = await connect({ url, token });
    client = c;
    await ensureDebian(c, progress);
    const tag = randomBytes(3).toString("hex");

    // Create, alternating the two (and which goes first) so that neither gets the warmer machine; the first
    // of each is a warm-up (it makes the memory template the others clone).
    const createE2b: number[] = [];
    const createMvm: number[] = [];
    const how = { e2b: {} as Record<string, number>, mvm: {} as Record<string, number> };
    const coldReasons = new Set<string>();
    const count = (m: Record<string, number>, boot: { how: string; reason?: string } | undefined) => {
      const k = boot?.how ?? "unknown";
      m[k] = (m[k] ?? 0) + 1;
      if (k === "cold" && boot?.reason) coldReasons.add(boot.reason);
    };
    for (let i = 0; i <= o.creates; i++) {
      progress(`create ${i}/${o.creates}${i === 0 ? " (warm-up)" : ""}`);
      const settle = () => new Promise((r) => setTimeout(r, o.gapMs));
      const viaSdk = async () => {
        await settle();
        const r = await time(() => sdkModule.Sandbox.create("base", sdk));
        sandboxes.push(r[1]);
        return r;
      };
      const viaLibrary = async () => {
        await settle();
        return time(async () => {
          const made = await c.create({ name: `bench-e2b-${tag}-${i}`, image: "debian", memory: 512, network: "user" });
          vms.push(made.id);
          return c.start(made.id);
        });
      };
      // Which goes first alternates: the second finds the pool refilling behind the first.
      const sdkFirst = i % 2 === 0;
      const first = sdkFirst ? await viaSdk() : await viaLibrary();
      const second = sdkFirst ? await viaLibrary() : await viaSdk();
      const [te, made] = (sdkFirst ? first : second) as Awaited<ReturnType<typeof viaSdk>>;
      const [tm, vm] = (sdkFirst ? second : first) as Awaited<ReturnType<typeof viaLibrary>>;
      if (i === 0) continue;
      createE2b.push(te);
      createMvm.push(tm);
      count(how.e2b, (await c.get(made.sandboxId)).boot);
      count(how.mvm, vm.boot);
    }
    const [sbx] = sandboxes;
    const [vm] = vms;
    if (!sbx || !vm) throw new Error("the bench made no sandbox");

    progress(`commands.run("true"), exec of bash -l -c true and of true, ${o.runs} each, interleaved`);
    const runE2b: number[] = [];
    const runMvm: number[] = [];
    const runTrue: number[] = [];
    for (let i = -3; i < o.runs; i++) {
      const [te] = await time(() => sbx.commands.run("true"));
      const [tm, r] = await time(() => c.exec(vm, ["/bin/bash", "-l", "-c", "true"]));
      const [tt, r2] = await time(() => c.exec(vm, ["true"]));
      if (r.status !== 0 || r2.status !== 0) throw new Error(`exec in the bench's VM exited ${r.status}, ${r2.status}`);
      if (i < 0) continue; // warm-up
      runE2b.push(te);
      runMvm.push(tm);
      runTrue.push(tt);
    }

    progress(`files: ${o.fileMiB} MiB written and read back, ${o.fileRounds} rounds each way`);
    const data = randomBytes(o.fileMiB << 20);
    const files = c.files(vm);
    const wE: number[] = [];
    const wM: number[] = [];
    const rE: number[] = [];
    const rM: number[] = [];
    for (let i = 0; i < o.fileRounds; i++) {
      wE.push((await time(() => sbx.files.write("/tmp/bench.bin", data.buffer.slice(data.byteOffset, data.byteOffset + data.length))))[0]);
      wM.push((await time(() => files.write("/tmp/bench.bin", data)))[0]);
      const [tr, back] = await time(() => sbx.files.read("/tmp/bench.bin", { format: "bytes" }));
      rE.push(tr);
      const [tm, mine] = await time(() => files.read("/tmp/bench.bin"));
      rM.push(tm);
      if (back.length !== data.length || mine.length !== data.length) throw new Error(`read back ${back.length} and ${mine.length} bytes of ${data.length}`);
    }
    const write = pair(wE, wM);
    const read = pair(rE, rM);

    const create = { ...pair(createE2b, createMvm), how, coldReasons: [...coldReasons].slice(0, 5) };
    const mvmTrue = summarize(runTrue);
    const run = { ...pair(runE2b, runMvm), mvmTrue, ratioToTrue: round(summarize(runE2b).p50Ms / Math.max(mvmTrue.p50Ms, 0.01), 2) };
    return {
      transport: { url, daemon: own ? "own" : "given" },
      gapMs: o.gapMs,
      image: "debian",
      create,
      run,
      files: {
        mib: o.fileMiB,
        write: { ...write, e2bMiBps: mibps(o.fileMiB, write.e2b.p50Ms), mvmMiBps: mibps(o.fileMiB, write.mvm.p50Ms) },
        read: { ...read, e2bMiBps: mibps(o.fileMiB, read.e2b.p50Ms), mvmMiBps: mibps(o.fileMiB, read.mvm.p50Ms) },
      },
      targets: {
        createP50Ms: 150,
        runP50Ms: 15,
        runRatio: 1.5,
        createMet: create.e2b.p50Ms <= 150,
        runMet: run.e2b.p50Ms <= 15,
        runRatioMet: run.ratio <= 1.5,
      },
    };
  } finally {
    process.off("SIGINT", interrupted);
    process.off("SIGTERM", interrupted);
    await cleanup();
    await own?.stop();
  }
}
