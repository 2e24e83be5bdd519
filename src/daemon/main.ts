#!/usr/bin/env node
// The mvm daemon: one per host (per user when not root). Owns every VM; serves the API on
// $MVM_HOME/mvm.sock (mode 0600). VMs outlive it: on start it re-adopts the QEMUs still running.
// Prints "ready" on stdout once it serves, which is how `connect()` knows, without polling; or, when it
// cannot start, "error " and the API's error body, which `connect()` rebuilds into the same class.

import { chmodSync, closeSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, unlinkSync, writeSync } from "node:fs";
import { join } from "node:path";
import { DaemonAlreadyRunningError, DaemonStartError, MvmError } from "../errors.js";
import { ensureGuestArtifacts, type GuestArtifacts } from "../guest/artifacts.js";
import { cacheDir, homeDir } from "../host/paths.js";
import { ImageStore } from "../store/image-store.js";
import { NetworkStore } from "../store/network-store.js";
import { VmStore } from "../store/vm-store.js";
import { errorResponse } from "./http-errors.js";
import { buildServer } from "./server.js";
import { VmManager } from "./vm-manager.js";
import { VERSION } from "../version.js";


function log(message: string): void {
  process.stderr.write(`${new Date().toISOString()} mvm-daemon: ${message}\n`);
}

/** One daemon per home: a pid file taken with O_EXCL, replaced only when its owner is dead. */
function takeLock(path: string): void {
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(path, "wx", 0o600);
      writeSync(fd, String(process.pid));
      closeSync(fd);
      return;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
      const pid = Number(readFileSync(path, "utf8"));
      let alive = false;
      try {
        process.kill(pid, 0);
        alive = pid !== process.pid;
      } catch {
        /* stale */
      }
      if (alive) throw new DaemonAlreadyRunningError(`an mvm daemon is already running for this home (pid ${pid})`, { hint: "use it, or stop it first", details: { pid } });
      unlinkSync(path);
    }
  }
  throw new DaemonStartError(`cannot take the daemon lock ${path}`, { hint: "another daemon may be starting at the same moment; try again" });
}

async function main(): Promise<void> {
  const home = homeDir();
  const cache = cacheDir();
  mkdirSync(join(home, "vms"), { recursive: true, mode: 0o700 });
  mkdirSync(join(home, "images"), { recursive: true, mode: 0o700 });
  const lock = join(home, "daemon.pid");
  takeLock(lock);
  const store = new VmStore(join(home, "mvm.db"));
  const images = new ImageStore(join(home, "mvm.db"));
  const networks = new NetworkStore(join(home, "mvm.db"));
  let artifacts: Promise<GuestArtifacts> | undefined;
  const manager = new VmManager({
    // Parked QEMUs per template in use (the warm pool); MVM_POOL_SIZE=0 turns it off.
    templates: process.env.MVM_TEMPLATES !== "0",
    poolSize: process.env.MVM_POOL_SIZE === undefined ? undefined : Math.max(0, Math.min(16, Number(process.env.MVM_POOL_SIZE) || 0)),
    store,
    images,
    networks,
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
  const app = buildServer(manager, { version: VERSION, home });
  const socket = join(home, "mvm.sock");
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
  process.stdout.write("ready\n");

  const shutdown = (signal: string) => {
    log(`${signal}: shutting down; VMs keep running and will be re-adopted`);
    void Promise.all([app.close(), manager.close()]).finally(() => {
      store.close();
      try {
        unlinkSync(lock);
      } catch {
        /* already gone */
      }
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
