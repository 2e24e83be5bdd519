// Where mvm keeps things. Same rules as guest/lib/common.sh.
import { homedir } from "node:os";
import { join } from "node:path";

const isRoot = () => process.getuid?.() === 0;

/** Kernels, initramfs images, Debian packages: $MVM_CACHE, else /var/cache/mvm as root, else $XDG_CACHE_HOME/mvm. */
export function cacheDir(env = process.env): string {
  if (env.MVM_CACHE) return env.MVM_CACHE;
  if (isRoot()) return "/var/cache/mvm";
  return join(env.XDG_CACHE_HOME || join(homedir(), ".cache"), "mvm");
}

/** VM records and per-VM directories: $MVM_HOME, else /var/lib/mvm as root, else $XDG_STATE_HOME/mvm. */
export function homeDir(env = process.env): string {
  if (env.MVM_HOME) return env.MVM_HOME;
  if (isRoot()) return "/var/lib/mvm";
  return join(env.XDG_STATE_HOME || join(homedir(), ".local", "state"), "mvm");
}

/** The repository (or installed package) root, where guest/ and scripts/ live. */
export const packageRoot = new URL("../../../", import.meta.url).pathname;
