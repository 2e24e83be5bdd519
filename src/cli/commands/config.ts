// mvm config set|get|unset: the daemon's kept settings ($MVM_HOME/config.json, src/daemon/daemon-config.ts),
// read by every daemon at its start (the one the CLI starts on demand included): a running daemon keeps
// what it started with until it restarts.

import type { Command } from "commander";
import { mkdirSync } from "node:fs";
import { resolve } from "node:path";
import { checkConfigValue, CONFIG_KEYS, readConfig, writeConfig, type DaemonConfig } from "../../daemon/daemon-config.js";
import { InvalidArgumentError } from "../../errors.js";
import { homeDir } from "../../host/paths.js";
import { printJson } from "../output.js";

const checkKey = (key: string) => {
  if (!(CONFIG_KEYS as readonly string[]).includes(key)) throw new InvalidArgumentError(`unknown setting ${JSON.stringify(key)}`, { hint: `one of ${CONFIG_KEYS.join(", ")}` });
  return key as keyof DaemonConfig;
};

export function configSetCommand(key: string, value: string, flags: { json?: boolean }): Promise<number> {
  const k = checkKey(key);
  // Paths are the CLI's working directory's; the daemon has another.
  const v = checkConfigValue(k, k === "tlsCert" || k === "tlsKey" ? resolve(value) : value);
  const home = homeDir();
  mkdirSync(home, { recursive: true, mode: 0o700 });
  const config = { ...readConfig(home), [k]: v };
  writeConfig(home, config);
  if (flags.json) printJson(config);
  else process.stderr.write(`${k} = ${JSON.stringify(v)}: for the daemon's next start\n`);
  return Promise.resolve(0);
}

export function configGetCommand(key: string | undefined, flags: { json?: boolean }): Promise<number> {
  const config = readConfig(homeDir());
  if (key !== undefined) {
    const v = config[checkKey(key)];
    if (flags.json) printJson(v ?? null);
    else if (v !== undefined) process.stdout.write(`${String(v)}\n`);
    return Promise.resolve(v === undefined ? 1 : 0);
  }
  if (flags.json) printJson(config);
  else for (const [k, v] of Object.entries(config)) process.stdout.write(`${k}=${String(v)}\n`);
  return Promise.resolve(0);
}

export function configUnsetCommand(key: string, flags: { json?: boolean }): Promise<number> {
  const k = checkKey(key);
  const home = homeDir();
  const config: DaemonConfig = { ...readConfig(home) };
  delete config[k];
  writeConfig(home, config);
  if (flags.json) printJson(config);
  return Promise.resolve(0);
}

export function registerConfigCommands(program: Command, done: (p: Promise<number>) => Promise<void>): void {
  const config = program.command("config").description(`the daemon's kept settings (${CONFIG_KEYS.join(", ")}), for its next start`);
  config.command("set").description("keep a setting: listen HOST:PORT, tlsCert PATH, tlsKey PATH, insecureListen true|false").argument("<key>").argument("<value>").option("--json", "print the settings as JSON").action((key: string, value: string, flags: { json?: boolean }) => done(configSetCommand(key, value, flags)));
  config.command("get").description("print one setting (status 1 if unset), or all").argument("[key]").option("--json", "print JSON on stdout").action((key: string | undefined, flags: { json?: boolean }) => done(configGetCommand(key, flags)));
  config.command("unset").description("forget a setting").argument("<key>").option("--json", "print the settings as JSON").action((key: string, flags: { json?: boolean }) => done(configUnsetCommand(key, flags)));
}
