// mvm dashboard: the sign-in link of the web dashboard (src/daemon/dashboard.ts) on the running daemon's
// network listener, opened in a browser when there is a desktop. The link is the listener's URL (from
// $MVM_HOME/listener.json, which the daemon writes once it listens, with its pid) or $MVM_URL; a token
// ($MVM_TOKEN, or --token) goes in the fragment (#token=...), which a browser never sends to a server.

import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { Command } from "commander";
import { connect } from "../../client/client.js";
import { InvalidArgumentError } from "../../errors.js";
import { printJson } from "../output.js";

export interface DashboardFlags {
  token?: string;
  open?: boolean;
  json?: boolean;
}

/** The link: the listener's URL + /dashboard/, the token (if any) in the fragment. */
export function dashboardLink(listenerUrl: string, token?: string): string {
  const base = listenerUrl.replace(/\/+$/, "") + "/dashboard/";
  return token ? `${base}#token=${encodeURIComponent(token)}` : base;
}

/** The URL the daemon of `home` with pid `pid` listens on, or undefined (no listener, or a stale file). */
export function listenerUrlOf(home: string, pid: number): string | undefined {
  try {
    const l = JSON.parse(readFileSync(join(home, "listener.json"), "utf8")) as { url?: unknown; pid?: unknown };
    return l.pid === pid && typeof l.url === "string" ? l.url : undefined;
  } catch {
    return undefined;
  }
}

const hasDesktop = (): boolean => !!(process.env.DISPLAY || process.env.WAYLAND_DISPLAY) || process.platform === "darwin";

export async function dashboardCommand(flags: DashboardFlags): Promise<number> {
  const token = flags.token ?? (process.env.MVM_TOKEN || undefined);
  let url = process.env.MVM_URL || undefined;
  if (!url) {
    const info = await (await connect()).info();
    url = listenerUrlOf(info.home, info.pid);
    if (!url) {
      throw new InvalidArgumentError("the daemon serves no network listener: the dashboard is served there, on TCP, for tokens", {
        hint: "mvm config set listen 127.0.0.1:7070, then restart the daemon (or run mvm daemon --listen 127.0.0.1:7070); make a token with mvm token create NAME",
        details: { home: info.home },
      });
    }
  }
  const link = dashboardLink(url, token);
  const open = flags.open !== false && hasDesktop();
  if (open) {
    // Detached and unwaited: the browser outlives this command; a missing opener only means no window.
    const child = spawn(process.platform === "darwin" ? "open" : "xdg-open", [link], { detached: true, stdio: "ignore" });
    child.on("error", () => undefined);
    child.unref();
  }
  if (flags.json) printJson({ url: link, listener: url, token: !!token, opened: open });
  else {
    process.stdout.write(`${link}\n`);
    if (!token) process.stderr.write("sign in with a token (mvm token create NAME), or set MVM_TOKEN for a link that signs in\n");
  }
  return 0;
}

export function registerDashboardCommand(program: Command, done: (p: Promise<number>) => Promise<void>): void {
  program
    .command("dashboard")
    .description("the web dashboard's sign-in link on the daemon's network listener (opened in a browser on a desktop)")
    .option("--token <token>", "put this token in the link (default: $MVM_TOKEN), so that it signs in")
    .option("--no-open", "print the link only, never open a browser")
    .option("--json", "print JSON on stdout")
    .action((flags: DashboardFlags) => done(dashboardCommand(flags)));
}
