// The dashboard's shell: sign-in with a token, the navigation, and a hash router over the views
// (#/vms, #/vm/NAME/TAB, #/create, #/images, #/networks, #/host).

import "@xterm/xterm/css/xterm.css";
import "uplot/dist/uPlot.min.css";
import "./style.css";
import { api, DaemonError, token } from "./api.js";
import { h, replace } from "./dom.js";
import { mountBanner, showError, clearError } from "./errors.js";
import * as store from "./store.js";
import { vmListView } from "./vm-list.js";
import { vmView } from "./vm-view.js";
import { createView } from "./create-form.js";
import { imagesView, networksView } from "./resources.js";
import { hostView } from "./host.js";

const root = document.getElementById("app")!;
let session: AbortController | undefined;
let teardown: (() => void) | undefined;

function signInView(message?: string): void {
  session?.abort();
  const input = h("input", { id: "token", name: "token", type: "password", autocomplete: "current-password", required: true, placeholder: "mvm_…", spellcheck: false });
  const err = h("p", { class: "field-error", role: "alert", id: "token-error" }, message ?? "");
  const form = h(
    "form",
    {
      class: "signin",
      onsubmit: async (e: Event) => {
        e.preventDefault();
        const t = input.value.trim();
        try {
          await api("GET", "/v1/info", undefined, t);
          token.set(t);
          signedIn();
        } catch (x) {
          const b = x instanceof DaemonError ? x.body : { message: String(x), hint: undefined };
          replace(err, b.message, b.hint ? h("span", { class: "hint" }, " — ", b.hint) : null);
          input.focus();
        }
      },
    },
    h("h1", {}, "mvm"),
    h("label", { for: "token" }, "Token"),
    input,
    err,
    h("button", { type: "submit" }, "Sign in"),
    h("p", { class: "muted" }, "A token from ", h("code", {}, "mvm token create NAME"), "; ", h("code", {}, "mvm dashboard"), " prints a sign-in link."),
  );
  replace(root, form);
  input.focus();
}

const NAV: [string, string][] = [
  ["#/vms", "VMs"],
  ["#/create", "Create"],
  ["#/images", "Images"],
  ["#/networks", "Networks"],
  ["#/host", "Host"],
];

let main: HTMLElement;
let navEl: HTMLElement;
let streamEl: HTMLElement;

function signedIn(): void {
  session = new AbortController();
  const banner = h("div", { class: "banner", role: "alert", hidden: true });
  mountBanner(banner);
  navEl = h("nav", { "aria-label": "Main" });
  streamEl = h("span", { class: "stream", "aria-live": "polite" }, "connecting…");
  main = h("main", { id: "main", tabindex: -1 });
  replace(
    root,
    h("header", {}, h("a", { class: "brand", href: "#/vms" }, "mvm"), navEl, streamEl, h("button", { class: "link", onclick: () => (token.clear(), signInView()) }, "Sign out")),
    banner,
    main,
  );
  store.start(session.signal, (up, err) => {
    streamEl.textContent = up ? "live" : "reconnecting…";
    streamEl.className = up ? "stream up" : "stream";
    if (err?.body.error === "UNAUTHORIZED") signInView(err.body.message);
    else if (err) showError(err);
  });
  store.refresh().catch(showError);
  route();
}

function route(): void {
  if (!token.get()) return signInView();
  if (!main) return;
  teardown?.();
  teardown = undefined;
  clearError();
  const hash = location.hash || "#/vms";
  replace(navEl, NAV.map(([href, label]) => h("a", { href, "aria-current": hash.startsWith(href) ? "page" : undefined }, label)));
  const [, view, ref, tab] = hash.split("/");
  replace(main);
  if (view === "vm" && ref) teardown = vmView(main, decodeURIComponent(ref), tab ?? "overview");
  else if (view === "create") teardown = createView(main);
  else if (view === "images") teardown = imagesView(main);
  else if (view === "networks") teardown = networksView(main);
  else if (view === "host") teardown = hostView(main);
  else teardown = vmListView(main);
}

window.addEventListener("hashchange", route);
window.addEventListener("unhandledrejection", (e) => showError(e.reason));

// A sign-in link (mvm dashboard) carries the token in the fragment, which never reaches a server: taken, then wiped from the address bar.
const fromLink = new URLSearchParams(location.hash.slice(1)).get("token");
if (fromLink) {
  token.set(fromLink);
  history.replaceState(null, "", location.pathname + "#/vms");
}
if (token.get()) {
  api("GET", "/v1/info").then(signedIn, (e: unknown) => signInView(e instanceof DaemonError ? e.body.message : String(e)));
} else signInView();
