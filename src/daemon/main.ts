#!/usr/bin/env node
// The mvm daemon: one per host (per user when not root). Owns every VM; serves the API on
// $MVM_HOME/mvm.sock (mode 0600). VMs outlive it: on start it re-adopts the QEMUs still running.
// Prints "ready" on stdout once it serves, which is how `connect()` knows, without polling; or, when it
// cannot start, "error " and the API's error body, which `connect()` rebuilds into the same class.

import Database from "better-sqlite3";
import { chmodSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, unlinkSync, writeFileSync } from "node:fs";
import { createConnection } from "node:net";
import { join } from "node:path";
import { DaemonAlreadyRunningError, MvmError } from "../errors.js";
import { ensureGuestArtifacts, type GuestArtifacts } from "../guest/artifacts.js";
import { cacheDir, homeDir } from "../host/paths.js";
import { closeInheritedFds } from "../host/inherited-fds.js";
import { ImageStore } from "../store/image-store.js";
import { NetworkStore } from "../store/network-store.js";
import { VolumeStore } from "../store/volume-store.js";
import { TokenStore } from "../store/token-store.js";
import { TokenAccess } from "./access.js";
import { listenSettings } from "./daemon-config.js";
import { listenNetwork, planListen } from "./listen.js";
import { VmStore } from "../store/vm-store.js";
import { errorResponse } from "./http-errors.js";
import { buildServer } from "./server.js";
import { RequestLog } from "./request-log.js";
import { VmManager } from "./vm-manager.js";
import { VERSION } from "../version.js";


function log(message: string): void {
  process.stderr.write(`${new Date().toISOString()} mvm-daemon: ${message}\n`);
}

/**
 * One daemon per home. The lock is an exclusive SQLite transaction on <home>/daemon.lock, begun at start and
 * never ended: SQLite takes it with a POSIX record lock (fcntl F_SETLK on the file), which the kernel
 * grants to one process at a time, atomically, and drops when that process ends, however it ends (SIGKILL
 * included). So there is no stale lock to judge and no gap between "is the holder alive?" and "take it"
 * that two starting daemons could both pass through. (The pid file taken with O_EXCL that this replaces had
 * one: two daemons finding a dead daemon's file both removed it and both ran. A socket bound as the lock
 * has it too, as its file outlives a killed daemon; an abstract socket would not, but it is per network
 * namespace, and daemons of one home may run in two.) daemon.pid beside it only says who holds the lock.
 * The returned handle must stay referenced for the daemon's life.
 */
function takeLock(home: string): Database.Database {
  const pidFile = join(home, "daemon.pid");
  const db = new Database(join(home, "daemon.lock"), { timeout: 0 });
  try {
    db.exec("BEGIN EXCLUSIVE");
  } catch (e) {
    db.close();
    if ((e as { code?: string }).code !== "SQLITE_BUSY") throw e;
    // The holder writes its pid right after it takes the lock: a moment may pass before it is there.
    const holder = readPid(pidFile);
    throw new DaemonAlreadyRunningError(`an mvm daemon is already running for this home (${home}${holder ? `, pid ${holder}` : ""})`, { hint: "use it, or stop it first", details: { pid: holder, home } });
  }
  const tmp = `${pidFile}.${process.pid}`;
  writeFileSync(tmp, `${process.pid}\n`, { mode: 0o600 });
  renameSync(tmp, pidFile);
  return db;
}

/** The pid in daemon.pid, if it names a live process (read again for up to a second while it does not). */
function readPid(path: string): number | undefined {
  for (let i = 0; i < 20; i++) {
    try {
      const pid = Number(readFileSync(path, "utf8"));
      if (Number.isInteger(pid) && pid > 0) {
        process.kill(pid, 0);
        return pid;
      }
    } catch {
      /* not written yet, or a dead daemon's */
    }
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 50);
  }
  return undefined;
}

/**
 * A daemon that serves this home without holding the lock (an older mvm, a test's stand-in): its socket
 * answers. It is not stolen from (the socket is replaced only when no one listens on it).
 */
async function socketAnswers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createConnection(path);
    s.once("connect", () => {
      s.destroy();
      resolve(true);
    });
    s.once("error", () => resolve(false));
  });
}

async function main(): Promise<void> {
  // Before anything is spawned: QEMUs must not hold descriptors of whoever started the daemon.
  const inherited = closeInheritedFds();
  if (inherited.length) log(`closed descriptors inherited without close-on-exec: ${inherited.join(", ")}`);
  const home = homeDir();
  const cache = cacheDir();
  mkdirSync(join(home, "vms"), { recursive: true, mode: 0o700 });
  mkdirSync(join(home, "images"), { recursive: true, mode: 0o700 });
  const lock = takeLock(home);
  const socket = join(home, "mvm.sock");
  if (await socketAnswers(socket)) {
    const pid = readPid(join(home, "daemon.pid"));
    throw new DaemonAlreadyRunningError(`another mvm daemon serves ${socket}${pid ? ` (pid ${pid})` : ""} without holding the home's lock`, { hint: "stop it first (an older mvm daemon?)", details: { pid, socket } });
  }
  const store = new VmStore(join(home, "mvm.db"));
  const images = new ImageStore(join(home, "mvm.db"));
  const networks = new NetworkStore(join(home, "mvm.db"));
  const volumes = new VolumeStore(join(home, "mvm.db"));
  let artifacts: Promise<GuestArtifacts> | undefined;
  const manager = new VmManager({
    // Parked QEMUs per template in use (the warm pool); MVM_POOL_SIZE=0 turns it off.
    templates: process.env.MVM_TEMPLATES !== "0",
    poolSize: process.env.MVM_POOL_SIZE === undefined ? undefined : Math.max(0, Math.min(16, Number(process.env.MVM_POOL_SIZE) || 0)),
    store,
    images,
    networks,
    volumes,
    home,
    cacheDir: cache,
    artifacts: () => (artifacts ??= ensureGuestArtifacts({ onProgress: log }).catch((e: unknown) => {
      artifacts = undefined;
      throw e;
    })),
    log,
    binaries: {
      full: process.env.MVM_QEMU ?? "/usr/bin/qemu-system-x86_64",
      microvm: process.env.MVM_QEMU_MICROVM ?? "/usr/bin/qemu-system-x86_64-microvm",
    },
  });
  await manager.reconcile();
  await manager.networks.restore(log);
  // An image build cut short (the daemon killed mid-way) left only its temporary folder: remove it.
  for (const entry of readdirSync(join(home, "images"), { withFileTypes: true }).filter((e) => e.name.startsWith(".") && e.name.includes(".tmp-"))) {
    rmSync(join(home, "images", entry.name), { recursive: true, force: true });
  }
  // The network listener (listen.ts), when asked for: checked before anything is served.
  const listenPlan = planListen(listenSettings(home));
  const tokens = new TokenAccess(new TokenStore(join(home, "mvm.db")));
  // One line per request of either listener (request-log.ts), kept apart from this log of events.
  const requestLog = new RequestLog(join(home, "requests.log"));
  const app = buildServer(manager, { version: VERSION, home }, { tokens, requestLog });
  try {
    unlinkSync(socket);
  } catch {
    /* none left */
  }
  // Only the daemon's user may talk to it: the socket is created private (umask) and chmod'ed to be sure.
  const oldMask = process.umask(0o177);
  await app.listen({ path: socket });
  process.umask(oldMask);
  chmodSync(socket, 0o600);
  log(`serving on ${socket} (pid ${process.pid})`);
  const network = listenPlan ? await listenNetwork(manager, tokens, listenPlan, { version: VERSION, home }, { e2b: process.env.MVM_E2B !== "0", requestLog }) : undefined;
  if (network) log(`serving on ${network.url} for tokens${listenPlan?.insecure ? " (without TLS on a non-loopback address: --insecure-listen)" : ""}`);
  // Where this daemon listens, for `mvm dashboard` (src/cli/commands/dashboard.ts): the port as bound (port 0
  // picks one), with the pid, so that a file a killed daemon left behind is told from this one's.
  const listenerFile = join(home, "listener.json");
  rmSync(listenerFile, { force: true });
  if (network) writeFileSync(listenerFile, JSON.stringify({ url: network.url, pid: process.pid }) + "\n", { mode: 0o600 });
  process.stdout.write("ready\n");

  const shutdown = (signal: string) => {
    log(`${signal}: shutting down; VMs keep running and will be re-adopted`);
    // Requests under way (streams: exec, logs -f, events) get a few seconds, then their connections are cut.
    const socketClosed = Promise.race([app.close(), new Promise((r) => setTimeout(r, 5000).unref())]).then(() => app.server.closeAllConnections());
    void Promise.all([socketClosed, network?.close(), manager.close()]).then(() => requestLog.close()).finally(() => {
      store.close();
      rmSync(listenerFile, { force: true });
      try {
        unlinkSync(join(home, "daemon.pid"));
      } catch {
        /* already gone */
      }
      lock.close(); // the kernel would drop it at exit anyway
      process.exit(0);
    });
  };
  process.on("SIGTERM", () => shutdown("SIGTERM"));
  process.on("SIGINT", () => shutdown("SIGINT"));
}

main().catch((e: unknown) => {
  log(`cannot start: ${(e as Error).message}`);
  if (e instanceof MvmError && e.hint) log(`hint: ${e.hint}`);
  process.stdout.write(`error ${JSON.stringify(errorResponse(e).body)}\n`);
  process.exit(1);
});
