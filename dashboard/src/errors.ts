// Errors as the API gives them: a banner with the message and the hint, never a blank page.

import { DaemonError } from "./api.js";
import { h, replace } from "./dom.js";

let banner: HTMLElement | undefined;

export function mountBanner(el: HTMLElement): void {
  banner = el;
}

export function showError(e: unknown): void {
  const body = e instanceof DaemonError ? e.body : { error: "ERROR", message: e instanceof Error ? e.message : String(e), hint: undefined };
  if (!banner) return;
  replace(banner, h("strong", {}, body.error), " ", h("span", { class: "msg" }, body.message), body.hint ? h("div", { class: "hint" }, "Hint: ", body.hint) : null, h("button", { class: "link", onclick: () => clearError(), "aria-label": "Dismiss the error" }, "×"));
  banner.hidden = false;
}

export function clearError(): void {
  if (banner) banner.hidden = true;
}

/** Runs an action, showing what it threw. */
export async function attempt<T>(f: () => Promise<T>): Promise<T | undefined> {
  try {
    const v = await f();
    clearError();
    return v;
  } catch (e) {
    showError(e);
    return undefined;
  }
}
