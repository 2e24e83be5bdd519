// The daemon's kept settings (issue 13): $MVM_HOME/config.json, a small JSON object written by `mvm config
// set|unset` and read by every daemon at its start, the one the CLI starts on demand included. Unknown keys
// and malformed values are refused when set, and again when read (a hand-edited file that does not validate
// stops the daemon with the reason, rather than being half-applied). The environment (MVM_LISTEN,
// MVM_TLS_CERT, MVM_TLS_KEY, MVM_INSECURE_LISTEN; what `mvm daemon --listen ...` sets) wins over the file.

import { readFileSync, renameSync, writeFileSync } from "node:fs";
import { isAbsolute, join } from "node:path";
import { InvalidArgumentError } from "../errors.js";

export interface DaemonConfig {
  /** HOST:PORT of the network listener (none when absent). */
  listen?: string;
  tlsCert?: string;
  tlsKey?: string;
  /** Listen on a non-loopback address without TLS. */
  insecureListen?: boolean;
}

export const CONFIG_FILE = "config.json";
export const CONFIG_KEYS = ["listen", "tlsCert", "tlsKey", "insecureListen"] as const;
export type ConfigKey = (typeof CONFIG_KEYS)[number];

const HINT = `keys: ${CONFIG_KEYS.join(", ")} (mvm config set listen 127.0.0.1:7070)`;

export interface ListenAddress {
  host: string;
  port: number;
}

/** HOST:PORT, [IPv6]:PORT; the port 0-65535 (0: any free one). */
export function parseListen(text: string): ListenAddress {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]\s]+)):(\d{1,5})$/.exec(text.trim());
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) throw new InvalidArgumentError(`invalid listen address ${JSON.stringify(text)}`, { hint: "write HOST:PORT, e.g. 127.0.0.1:7070, or [::1]:7070" });
  return { host: (m[1] ?? m[2])!, port };
}

/** 127.0.0.0/8, ::1 and localhost: reachable from this host only. */
export function isLoopback(host: string): boolean {
  const h = host.toLowerCase();
  return h === "localhost" || h === "::1" || /^127(\.\d{1,3}){3}$/.test(h) || /^::ffff:127(\.\d{1,3}){3}$/.test(h);
}

/** One key's value, checked: what `mvm config set KEY VALUE` stores. */
export function checkConfigValue(key: string, value: unknown): DaemonConfig[ConfigKey] {
  switch (key) {
    case "listen":
      if (typeof value !== "string") break;
      parseListen(value);
      return value.trim();
    case "tlsCert":
    case "tlsKey":
      if (typeof value !== "string") break;
      if (!isAbsolute(value)) throw new InvalidArgumentError(`${key} must be an absolute path, not ${JSON.stringify(value)}`, { hint: "the daemon has another working directory: give the file's absolute path" });
      return value;
    case "insecureListen":
      if (value === true || value === "true") return true;
      if (value === false || value === "false") return false;
      break;
    default:
      throw new InvalidArgumentError(`unknown setting ${JSON.stringify(key)}`, { hint: HINT });
  }
  throw new InvalidArgumentError(`invalid value for ${key}: ${JSON.stringify(value)}`, { hint: key === "insecureListen" ? "true or false" : HINT });
}

/** A whole config object, checked (unknown keys refused). */
export function checkConfig(value: unknown): DaemonConfig {
  if (!value || typeof value !== "object" || Array.isArray(value)) throw new InvalidArgumentError("the daemon's config is not a JSON object", { hint: HINT });
  const out: DaemonConfig = {};
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) (out as Record<string, unknown>)[k] = checkConfigValue(k, v);
  return out;
}

export function readConfig(home: string): DaemonConfig {
  const path = join(home, CONFIG_FILE);
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch {
    return {};
  }
  try {
    return checkConfig(JSON.parse(text));
  } catch (e) {
    throw new InvalidArgumentError(`${path}: ${(e as Error).message}`, { hint: "fix it with mvm config set|unset, or remove the file" });
  }
}

/** Writes the whole config atomically (a temporary file renamed over it), mode 0600. */
export function writeConfig(home: string, config: DaemonConfig): void {
  const path = join(home, CONFIG_FILE);
  const checked = checkConfig(config);
  const tmp = `${path}.${process.pid}`;
  writeFileSync(tmp, `${JSON.stringify(checked, null, 2)}\n`, { mode: 0o600 });
  renameSync(tmp, path);
}

/** The listener settings in effect: the environment's over the file's. */
export function listenSettings(home: string, env: NodeJS.ProcessEnv = process.env): DaemonConfig {
  const file = readConfig(home);
  const fromEnv: DaemonConfig = {};
  if (env.MVM_LISTEN) fromEnv.listen = checkConfigValue("listen", env.MVM_LISTEN) as string;
  if (env.MVM_TLS_CERT) fromEnv.tlsCert = checkConfigValue("tlsCert", env.MVM_TLS_CERT) as string;
  if (env.MVM_TLS_KEY) fromEnv.tlsKey = checkConfigValue("tlsKey", env.MVM_TLS_KEY) as string;
  if (env.MVM_INSECURE_LISTEN) fromEnv.insecureListen = checkConfigValue("insecureListen", env.MVM_INSECURE_LISTEN) as boolean;
  return { ...file, ...fromEnv };
}
