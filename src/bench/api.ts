// `mvm bench api`: the daemon's API under load (autocannon, loaded only here so the CLI's start-up does
// not pay for it), with N real VMs present (booted under TCG here):
//   list: GET /v1/vms with many connections at once: requests per second, p50, p99;
//   exec: POST /v1/vms/:ref/exec {argv:["true"]} round trips on one connection (request to the exit line
//   of its NDJSON answer), each checked to have exited 0.
// Where: by default a daemon of the bench's own (a fresh $MVM_HOME) started with `mvm daemon --listen
// 127.0.0.1:PORT` and an admin token from `mvm token create`, the load sent over TCP with the token, as a
// remote client's would be; --url and --token name a listener already running instead; --unix measures this
// home's daemon on its Unix socket. The output says which. Every VM the bench made is removed at the end
// (and its own daemon stopped, its home deleted), also when it fails or is interrupted.

import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { availableParallelism } from "node:os";
import type { Options, Result } from "autocannon";
import { join } from "node:path";
import { connect } from "../client/client.js";
import { homeDir } from "../host/paths.js";
import { round } from "./stats.js";
import { parseProcStat } from "../daemon/stats.js";
import { ownDaemon } from "./own-daemon.js";

/**
 * Where the machine's CPU went during a measurement, in cores (CPU seconds per second): the daemon, this
 * process (the load generator), the VMs' QEMUs. Under TCG idle guests cost CPU too, and on 2 cores that
 * is what the figures are bounded by, not the daemon: so the bench says it.
 */
export interface CpuShare {
  daemonCores: number;
  loadGeneratorCores: number;
  qemuCores: number;
  machineCores: number;
}

export interface LoadFigures {
  cpu?: CpuShare;
  connections: number;
  durationS: number;
  requests: number;
  requestsPerSec: number;
  p50Ms: number;
  p99Ms: number;
  /** Answers that were not 2xx, plus connection errors and timeouts. */
  failed: number;
}

export interface ApiBenchResult {
  transport: { kind: "unix"; socket: string; note: string } | { kind: "tcp"; url: string; token: "bearer"; daemon: "own" | "given" };
  vms: { count: number; bootSeconds: number };
  list: LoadFigures;
  exec: LoadFigures & { exitedZero: number };
  /** Targets on this 2-core machine (issue 13): GET /v1/vms >= 5,000 req/s with p99 <= 20 ms; exec p50 <= 10 ms. */
  targets: { listRequestsPerSec: number; listP99Ms: number; execP50Ms: number; listRequestsPerSecMet: boolean; listP99Met: boolean; execP50Met: boolean; allMet: boolean };
}

export interface ApiBenchOptions {
  vms: number;
  durationS: number;
  connections: number;
  memory: string;
  /** A listener already running (with token), instead of a daemon of the bench's own. */
  url?: string;
  token?: string;
  /** This home's daemon over its Unix socket. */
  unix?: boolean;
  onProgress?: (l: string) => void;
}

/** CPU seconds so far of the daemon, this process and the QEMUs (a process gone meanwhile counts 0). */
function cpuNow(pids: { daemon: number; qemus: number[] }): { daemon: number; self: number; qemus: number; at: number } {
  const of = (pid: number) => {
    try {
      const t = parseProcStat(readFileSync(`/proc/${pid}/stat`, "utf8"));
      return t ? t.userSeconds + t.systemSeconds : 0;
    } catch {
      return 0;
    }
  };
  const u = process.cpuUsage();
  return { daemon: of(pids.daemon), self: (u.user + u.system) / 1e6, qemus: pids.qemus.reduce((a, p) => a + of(p), 0), at: performance.now() };
}

function cpuShare(a: ReturnType<typeof cpuNow>, b: ReturnType<typeof cpuNow>): CpuShare {
  const s = (b.at - a.at) / 1000;
  return { daemonCores: round((b.daemon - a.daemon) / s, 2), loadGeneratorCores: round((b.self - a.self) / s, 2), qemuCores: round((b.qemus - a.qemus) / s, 2), machineCores: availableParallelism() };
}

const figures = (r: Result, connections: number, durationS: number): LoadFigures => ({
  connections,
  durationS,
  requests: r.requests.total,
  requestsPerSec: round(r.requests.average),
  p50Ms: round(r.latency.p50, 2),
  p99Ms: round(r.latency.p99, 2),
  failed: r.non2xx + r.errors + r.timeouts,
});

export async function benchApi(o: ApiBenchOptions): Promise<ApiBenchResult> {
  const progress = o.onProgress ?? (() => {});
  const { default: autocannon } = await import("autocannon");
  const own = o.unix || o.url ? undefined : await ownDaemon("bench-api", progress);
  const url = own?.url ?? o.url;
  const token = own?.token ?? o.token;
  // VMs are made over the Unix socket of the daemon's home; the load goes where asked.
  const home = own?.home ?? homeDir();
  const client = await connect({ home, autoStart: !own });
  const socket = join(home, "mvm.sock");
  const made: string[] = [];
  const cleanup = async () => {
    const left = made.splice(0);
    if (left.length) progress(`removing the ${left.length} VMs the bench made`);
    await Promise.all(left.map((id) => client.remove(id, { force: true }).catch(() => undefined)));
  };
  const interrupted = () => void cleanup().then(() => own?.stop()).finally(() => process.exit(130));
  process.once("SIGINT", interrupted);
  process.once("SIGTERM", interrupted);
  try {
    const tag = randomBytes(3).toString("hex");
    const t0 = performance.now();
    progress(`booting ${o.vms} VMs (${o.memory} each), 4 at a time`);
    for (let i = 0; i < o.vms; i += 4) {
      await Promise.all(
        Array.from({ length: Math.min(4, o.vms - i) }, async (_, k) => {
          const vm = await client.create({ name: `bench-api-${tag}-${i + k}`, memory: o.memory });
          made.push(vm.id);
          await client.start(vm.id);
        }),
      );
      progress(`${Math.min(i + 4, o.vms)}/${o.vms} VMs running`);
    }
    const bootSeconds = round((performance.now() - t0) / 1000);
    const target: Pick<Options, "url" | "socketPath" | "headers"> = url
      ? { url: url.replace(/\/$/, ""), headers: token ? { authorization: `Bearer ${token}` } : {} }
      : { url: "http://localhost", socketPath: socket, headers: {} };
    const run = (opts: Partial<Options>) => autocannon({ ...target, ...opts, url: `${target.url}${opts.url ?? ""}`, headers: { ...target.headers, ...opts.headers } });

    progress(`GET /v1/vms with ${o.vms} VMs: ${o.connections} connections for ${o.durationS} s`);
    await run({ url: "/v1/vms", connections: 2, duration: 1 }); // warm-up (JIT, the router's caches)
    const pids = { daemon: (await client.info()).pid, qemus: (await client.list()).filter((v) => made.includes(v.id)).flatMap((v) => (v.pid ? [v.pid] : [])) };
    const c0 = cpuNow(pids);
    const list = figures(await run({ url: "/v1/vms", connections: o.connections, duration: o.durationS }), o.connections, o.durationS);
    list.cpu = cpuShare(c0, cpuNow(pids));

    let exitedZero = 0;
    const first = made[0];
    const exec: Partial<Options> = {
      connections: 1,
      duration: o.durationS,
      requests: [
        {
          method: "POST",
          path: `/v1/vms/${first}/exec`,
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ argv: ["true"] }),
          onResponse: (status: number, body: string) => {
            if (status === 200 && /"type":"exit"[^\n]*"status":0\b/.test(body)) exitedZero++;
          },
        },
      ],
    };
    progress(`exec true round trips on one connection for ${o.durationS} s`);
    await run({ ...exec, duration: 1 });
    exitedZero = 0;
    const c1 = cpuNow(pids);
    const e = await run(exec);
    const execCpu = cpuShare(c1, cpuNow(pids));
    // A round trip that did not end in exit status 0 (refused, cut short, failed) counts as failed.
    const execFigures = { ...figures(e, 1, o.durationS), cpu: execCpu, exitedZero };
    execFigures.failed = Math.max(execFigures.failed, e.requests.total - exitedZero);

    const targets = {
      listRequestsPerSec: 5000,
      listP99Ms: 20,
      execP50Ms: 10,
      listRequestsPerSecMet: list.requestsPerSec >= 5000,
      listP99Met: list.p99Ms <= 20,
      execP50Met: execFigures.p50Ms <= 10,
      allMet: false,
    };
    targets.allMet = targets.listRequestsPerSecMet && targets.listP99Met && targets.execP50Met;
    return {
      transport: url
        ? { kind: "tcp", url, token: "bearer", daemon: own ? "own" : "given" }
        : { kind: "unix", socket, note: "over the Unix socket (--unix): without it the bench runs a daemon of its own with a TCP listener and a token" },
      vms: { count: o.vms, bootSeconds },
      list,
      exec: execFigures,
      targets,
    };
  } finally {
    process.off("SIGINT", interrupted);
    process.off("SIGTERM", interrupted);
    await cleanup();
    await own?.stop();
  }
}
