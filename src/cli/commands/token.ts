// mvm token create|ls|rm: API tokens for the daemon's network listener (mvm daemon --listen), made and
// removed by the host's root through the daemon's Unix socket. A token is printed once, at create.

import type { Command } from "commander";
import { connect } from "../../client/client.js";
import type { TokenView } from "../../client/client.js";
import { InvalidArgumentError } from "../../errors.js";
import { formatTable } from "../table.js";
import { printJson, removeEach } from "../output.js";

export interface TokenCreateFlags {
  role: string;
  maxVms?: string;
  maxCpus?: string;
  maxMemory?: string;
  json?: boolean;
}

function count(v: string | undefined, flag: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!/^\d+$/.test(v) || !Number.isSafeInteger(n)) throw new InvalidArgumentError(`${flag} must be a whole number, not ${JSON.stringify(v)}`, { hint: `for example ${flag} 4` });
  return n;
}

const quotaText = (q: TokenView["quota"]): string =>
  [q.maxVms !== undefined ? `${q.maxVms} VMs` : "", q.maxCpus !== undefined ? `${q.maxCpus} vCPUs` : "", q.maxMemoryMiB !== undefined ? `${q.maxMemoryMiB} MiB` : ""].filter(Boolean).join(", ") || "-";

export async function tokenCreateCommand(name: string, flags: TokenCreateFlags): Promise<number> {
  const role = flags.role as "admin" | "user" | "read";
  const t = await (await connect()).createToken(name, { role, maxVms: count(flags.maxVms, "--max-vms"), maxCpus: count(flags.maxCpus, "--max-cpus"), maxMemory: flags.maxMemory });
  if (flags.json) printJson(t);
  else {
    process.stdout.write(`${t.token}\n`);
    process.stderr.write(`token ${t.name} (role ${t.role}, quota ${quotaText(t.quota)}): shown this once; send it as Authorization: Bearer TOKEN\n`);
  }
  return 0;
}

export async function tokenLsCommand(flags: { json?: boolean }): Promise<number> {
  const tokens = await (await connect()).tokens();
  if (flags.json) printJson(tokens);
  else process.stdout.write(formatTable([["NAME", "ROLE", "QUOTA", "CREATED", "LAST USED"], ...tokens.map((t) => [t.name, t.role, quotaText(t.quota), t.createdAt, t.lastUsedAt ?? "never"])]));
  return 0;
}

export async function tokenRmCommand(names: string[], flags: { json?: boolean }): Promise<number> {
  const client = await connect();
  return removeEach(names, (n) => client.removeToken(n), flags.json);
}

export function registerTokenCommands(program: Command, done: (p: Promise<number>) => Promise<void>): void {
  const token = program.command("token").description("API tokens for the network listener (mvm daemon --listen); the host's root only");
  token
    .command("create")
    .description("make a token and print it (once: only its hash is kept)")
    .argument("<name>")
    .option("--role <role>", "admin (everything), user (its own VMs, within its quotas) or read (sees, changes nothing)", "user")
    .option("--max-vms <n>", "at most this many VMs at once")
    .option("--max-cpus <n>", "at most this many vCPUs summed over its VMs")
    .option("--max-memory <size>", "at most this much guest memory summed over its VMs: 4G, 512M")
    .option("--json", "print JSON on stdout (the token included)")
    .action((name: string, flags: TokenCreateFlags) => done(tokenCreateCommand(name, flags)));
  token.command("ls").description("list tokens: role, quota, made, last used (never the token)").option("--json", "print JSON on stdout").action((flags: { json?: boolean }) => done(tokenLsCommand(flags)));
  token.command("rm").description("remove tokens: their requests are refused from now on and their open streams end").argument("<name...>").option("--json", "print JSON on stdout").action((names: string[], flags: { json?: boolean }) => done(tokenRmCommand(names, flags)));
}
