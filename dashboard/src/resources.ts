// Images (list, import a file or build a Debian image, with the progress lines) and networks (list,
// create, remove).

import { api, ndjson } from "./api.js";
import { bytes, h, replace } from "./dom.js";
import { attempt, showError } from "./errors.js";

/** GET /v1/images' items (ImageViewSchema). */
interface Image {
  name: string;
  path: string;
  virtualBytes: number;
  source: string;
  createdAt: string;
}

export function imagesView(main: HTMLElement): () => void {
  const body = h("tbody");
  const log = h("pre", { class: "log short", "aria-live": "polite", id: "image-progress" });
  const load = async () => {
    const list = await attempt(() => api<Image[]>("GET", "/v1/images"));
    if (!list) return;
    replace(body, list.map((i) => h("tr", { "data-image": i.name }, h("td", {}, i.name), h("td", {}, i.source), h("td", { class: "num" }, bytes(i.virtualBytes)), h("td", {}, i.createdAt), h("td", {}, h("button", { onclick: async () => confirm(`Remove image ${i.name}?`) && (await attempt(() => api("DELETE", `/v1/images/${encodeURIComponent(i.name)}`)), await load()) }, "Remove")))));
  };
  const run = (path: string, b: unknown) => {
    log.textContent = "";
    // running, then done or failed: for the eye (and for tests) beside the progress lines.
    log.dataset.state = "running";
    ndjson("POST", path, b, (e) => {
      if (e.type === "progress") log.append(String(e.line) + "\n");
      else if (e.type === "done") {
        log.append("done\n");
        log.dataset.state = "done";
        void load();
      } else if (e.type === "error") {
        log.append(`${String(e.message)}\n`);
        log.dataset.state = "failed";
        showError(new Error(`${String(e.error)}: ${String(e.message)}`));
      }
      log.scrollTop = log.scrollHeight;
    }).catch((e: unknown) => ((log.dataset.state = "failed"), showError(e)));
  };
  const file = h("input", { id: "img-file", placeholder: "/path/on/the/daemon's/host.qcow2" });
  const name = h("input", { id: "img-name", placeholder: "name" });
  const suite = h("input", { id: "img-suite", placeholder: "bookworm" });
  const bname = h("input", { id: "img-bname", placeholder: "debian" });
  main.append(
    h("h2", {}, "Images"),
    h("div", { class: "table-wrap" }, h("table", { "aria-label": "Images" }, h("thead", {}, h("tr", {}, ["Name", "Made from", "Disk size", "Created", ""].map((c) => h("th", { scope: "col" }, c)))), body)),
    h("div", { class: "cols" },
      h("form", { class: "card", onsubmit: (e: Event) => (e.preventDefault(), run("/v1/images/import", { file: file.value, name: name.value })) }, h("h3", {}, "Import a file"), h("label", { for: "img-file" }, "File"), file, h("label", { for: "img-name" }, "Name"), name, h("button", { type: "submit" }, "Import")),
      h("form", { class: "card", onsubmit: (e: Event) => (e.preventDefault(), run("/v1/images/build", { distro: "debian", ...(suite.value ? { suite: suite.value } : {}), ...(bname.value ? { name: bname.value } : {}) })) }, h("h3", {}, "Build Debian"), h("label", { for: "img-suite" }, "Suite"), suite, h("label", { for: "img-bname" }, "Name"), bname, h("button", { type: "submit" }, "Build")),
    ),
    log,
  );
  void load();
  return () => undefined;
}

interface Network {
  name: string;
  subnet?: string;
  nat?: boolean;
  bridge?: string;
  vms?: unknown[];
}

export function networksView(main: HTMLElement): () => void {
  const body = h("tbody");
  const load = async () => {
    const list = await attempt(() => api<Network[]>("GET", "/v1/networks"));
    if (!list) return;
    replace(body, list.map((n) => h("tr", { "data-network": n.name }, h("td", {}, n.name), h("td", {}, n.subnet ?? ""), h("td", {}, n.nat ? "yes" : "no"), h("td", {}, (n.vms ?? []).map((v) => (typeof v === "string" ? v : (v as { name: string }).name)).join(", ")), h("td", {}, h("button", { onclick: async () => confirm(`Remove network ${n.name}?`) && (await attempt(() => api("DELETE", `/v1/networks/${encodeURIComponent(n.name)}`)), await load()) }, "Remove")))));
  };
  const name = h("input", { id: "net-name", required: true });
  const subnet = h("input", { id: "net-subnet", placeholder: "10.88.0.0/24 (optional)" });
  const nat = h("input", { id: "net-nat", type: "checkbox", checked: true });
  main.append(
    h("h2", {}, "Networks"),
    h("div", { class: "table-wrap" }, h("table", { "aria-label": "Networks" }, h("thead", {}, h("tr", {}, ["Name", "Subnet", "NAT", "VMs", ""].map((c) => h("th", { scope: "col" }, c)))), body)),
    h("form", { class: "card", onsubmit: async (e: Event) => (e.preventDefault(), await attempt(() => api("POST", "/v1/networks", { name: name.value, ...(subnet.value ? { subnet: subnet.value } : {}), nat: nat.checked })), await load()) }, h("h3", {}, "Create a network"), h("label", { for: "net-name" }, "Name"), name, h("label", { for: "net-subnet" }, "Subnet"), subnet, h("div", { class: "field check" }, nat, h("label", { for: "net-nat" }, "NAT to the outside")), h("button", { type: "submit" }, "Create")),
  );
  void load();
  return () => undefined;
}
