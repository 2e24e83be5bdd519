// The guest's files: browse a folder (POST files/list), download (GET files/content), upload by picking or
// dropping files (PUT files/content, with progress).

import { api, download, upload } from "./api.js";
import { bytes, h, replace } from "./dom.js";
import { attempt } from "./errors.js";
import type { Vm } from "./store.js";

interface Entry {
  name: string;
  type: string;
  size: number;
  mode: number;
  mtimeMs: number;
}

const join = (dir: string, name: string) => (dir.endsWith("/") ? dir + name : `${dir}/${name}`);
const parent = (dir: string) => dir.replace(/\/[^/]+\/?$/, "") || "/";

export function filesView(body: HTMLElement, v: Vm): () => void {
  let dir = "/root";
  const ref = encodeURIComponent(v.id);
  const path = h("input", { id: "files-path", value: dir, "aria-label": "Folder" });
  const list = h("tbody");
  const progress = h("div", { class: "uploads", "aria-live": "polite" });
  const picker = h("input", { type: "file", id: "files-upload", multiple: true, onchange: () => void uploadAll([...(picker.files ?? [])]) });
  const drop = h(
    "div",
    {
      class: "drop",
      ondragover: (e: DragEvent) => (e.preventDefault(), drop.classList.add("over")),
      ondragleave: () => drop.classList.remove("over"),
      ondrop: (e: DragEvent) => {
        e.preventDefault();
        drop.classList.remove("over");
        void uploadAll([...(e.dataTransfer?.files ?? [])]);
      },
    },
    "Drop files here to upload them into the folder, or ",
    h("label", { for: "files-upload", class: "as-link" }, "pick files"),
    picker,
  );
  // The folder field is set when the folder changes (a click), never when a listing comes back: a slow
  // listing must not overwrite what is being typed there.
  const go = (to: string) => {
    dir = to;
    path.value = to;
    void load();
  };
  let asked = 0;
  const load = async () => {
    // Only the latest listing is drawn: an older one coming back late is dropped.
    const mine = ++asked;
    const r = await attempt(() => api<{ entries: Entry[] }>("POST", `/v1/vms/${ref}/files/list`, { path: dir, depth: 1 }));
    if (!r || mine !== asked) return;
    const rows = r.entries.sort((a, b) => (a.type === "dir" ? 0 : 1) - (b.type === "dir" ? 0 : 1) || a.name.localeCompare(b.name));
    replace(
      list,
      dir !== "/" ? h("tr", {}, h("td", {}, h("button", { class: "link", onclick: () => go(parent(dir)) }, "..")), h("td"), h("td"), h("td")) : null,
      rows.map((e) =>
        h(
          "tr",
          { "data-file": e.name },
          h("td", {}, e.type === "dir" ? h("button", { class: "link", onclick: () => go(join(dir, e.name)) }, e.name + "/") : e.name),
          h("td", {}, e.type),
          h("td", { class: "num" }, e.type === "file" ? bytes(e.size) : ""),
          h("td", {}, e.type === "file" ? h("button", { onclick: () => void attempt(() => download(`/v1/vms/${ref}/files/content?path=${encodeURIComponent(join(dir, e.name))}`, e.name)) }, "Download") : null),
        ),
      ),
    );
  };
  const uploadAll = async (files: File[]) => {
    for (const f of files) {
      const bar = h("progress", { max: f.size || 1, value: 0 });
      const line = h("div", { class: "upload" }, f.name, " ", bar, h("span", { class: "pct" }, "0%"));
      progress.append(line);
      const ok = await attempt(() =>
        upload(`/v1/vms/${ref}/files/content?path=${encodeURIComponent(join(dir, f.name))}`, f, (sent, total) => {
          bar.value = sent;
          line.querySelector(".pct")!.textContent = `${Math.round((sent / (total || 1)) * 100)}%`;
        }),
      );
      line.querySelector(".pct")!.textContent = ok ? `done (${bytes(ok.size)})` : "failed";
      line.dataset.done = ok ? "ok" : "failed";
    }
    await load();
  };
  body.append(
    h("form", { class: "filters", onsubmit: (e: Event) => (e.preventDefault(), go(path.value || "/")) }, h("label", { for: "files-path" }, "Folder"), path, h("button", { type: "submit" }, "Open")),
    drop,
    progress,
    h("div", { class: "table-wrap" }, h("table", { "aria-label": "Files" }, h("thead", {}, h("tr", {}, ["Name", "Type", "Size", ""].map((c) => h("th", { scope: "col" }, c)))), list)),
  );
  void load();
  return () => undefined;
}
