// Create a VM from a form made from the VM spec's schema (GET /v1/openapi.json, the body of POST /v1/vms):
// the fields a person sets most, each with the schema's description; the API's problems shown beside them.

import { api, DaemonError } from "./api.js";
import { h, replace } from "./dom.js";
import { attempt, showError } from "./errors.js";
import * as store from "./store.js";

interface Schema {
  type?: string | string[];
  description?: string;
  anyOf?: Schema[];
  enum?: unknown[];
  items?: Schema;
  properties?: Record<string, Schema>;
  minimum?: number;
  maximum?: number;
}

/** The fields shown, in order; list fields take one item per line, env NAME=value per line. */
const FIELDS = ["name", "image", "memory", "cpus", "network", "ports", "env", "command", "start"] as const;

const kindOf = (s: Schema): "number" | "list" | "map" | "text" => {
  const types = [s.type, ...(s.anyOf ?? []).map((a) => a.type)].flat().filter(Boolean);
  if (types.includes("array")) return "list";
  if (types.includes("object")) return "map";
  if (types.length && types.every((t) => t === "integer" || t === "number")) return "number";
  return "text";
};

export function createView(main: HTMLElement): () => void {
  const form = h("form", { class: "create", novalidate: true });
  main.append(h("h2", {}, "Create a VM"), form);
  api<{ paths: Record<string, { post?: { requestBody?: { content: Record<string, { schema: Schema }> } } }> }>("GET", "/v1/openapi.json").then((doc) => {
    const schema = doc.paths["/v1/vms"]?.post?.requestBody?.content["application/json"]?.schema;
    if (!schema?.properties) throw new Error("the daemon's OpenAPI document has no VM spec");
    build(form, schema.properties);
  }, showError);
  return () => undefined;
}

function build(form: HTMLFormElement, props: Record<string, Schema>): void {
  const inputs = new Map<string, HTMLInputElement | HTMLTextAreaElement>();
  const errors = new Map<string, HTMLElement>();
  const general = h("p", { class: "field-error", role: "alert" });
  const rows = FIELDS.filter((f) => f === "start" || props[f]).map((f) => {
    if (f === "start") {
      const cb = h("input", { type: "checkbox", id: "f-start", checked: true });
      inputs.set("start", cb);
      return h("div", { class: "field check" }, cb, h("label", { for: "f-start" }, "Start it once created"));
    }
    const s = props[f]!;
    const kind = kindOf(s);
    const id = `f-${f}`;
    const desc = s.description ?? s.anyOf?.find((a) => a.description)?.description ?? (kind === "list" ? "one per line" : kind === "map" ? "NAME=value, one per line" : "");
    const input = kind === "list" || kind === "map" ? h("textarea", { id, name: f, rows: 2, "aria-describedby": `${id}-help ${id}-error` }) : h("input", { id, name: f, type: kind === "number" ? "number" : "text", min: s.minimum, max: s.maximum, "aria-describedby": `${id}-help ${id}-error` });
    input.dataset.kind = kind;
    const err = h("span", { class: "field-error", id: `${id}-error`, role: "alert" });
    inputs.set(f, input);
    errors.set(f, err);
    return h("div", { class: "field", "data-field": f }, h("label", { for: id }, f[0]!.toUpperCase() + f.slice(1)), input, h("small", { id: `${id}-help` }, desc), err);
  });
  const submit = h("button", { type: "submit" }, "Create");
  replace(form, rows, general, submit);
  form.onsubmit = async (e) => {
    e.preventDefault();
    errors.forEach((el) => (el.textContent = ""));
    general.textContent = "";
    const spec: Record<string, unknown> = {};
    for (const [k, input] of inputs) {
      if (k === "start") continue;
      const raw = input.value.trim();
      if (!raw) continue;
      const kind = input.dataset.kind;
      if (kind === "number") spec[k] = Number(raw);
      else if (kind === "list") spec[k] = raw.split("\n").map((l) => l.trim()).filter(Boolean);
      else if (kind === "map") spec[k] = Object.fromEntries(raw.split("\n").filter(Boolean).map((l) => [l.slice(0, l.indexOf("=") < 0 ? l.length : l.indexOf("=")).trim(), l.includes("=") ? l.slice(l.indexOf("=") + 1) : ""]));
      else if (k === "memory" && /^\d+$/.test(raw)) spec[k] = Number(raw);
      else spec[k] = raw;
    }
    // The command field is the guest's argv: one word per line, or a shell line run with sh -c.
    if (Array.isArray(spec.command) && spec.command.length === 1 && /\s/.test(String(spec.command[0]))) spec.command = ["/bin/sh", "-c", spec.command[0]];
    submit.disabled = true;
    try {
      const v = await api<{ id: string; name: string }>("POST", "/v1/vms", spec);
      if ((inputs.get("start") as HTMLInputElement).checked) await attempt(() => api("POST", `/v1/vms/${encodeURIComponent(v.id)}/start`));
      await store.refresh().catch(() => undefined);
      location.hash = `#/vm/${encodeURIComponent(v.name)}/overview`;
    } catch (x) {
      if (!(x instanceof DaemonError)) return showError(x);
      placeErrors(x, errors, general);
    } finally {
      submit.disabled = false;
    }
  };
}

/** Each problem ("/cpus: Expected integer...", or a message naming a field) beside its field; the rest above the button. */
function placeErrors(x: DaemonError, errors: Map<string, HTMLElement>, general: HTMLElement): void {
  const problems = Array.isArray(x.body.details?.problems) ? (x.body.details.problems as unknown[]).map(String) : [x.body.message];
  let placed = false;
  for (const p of problems) {
    const field = /^\/?([A-Za-z]+)/.exec(p)?.[1];
    const named = field && errors.has(field) ? field : [...errors.keys()].find((k) => new RegExp(`\\b${k}\\b`).test(p));
    const el = named ? errors.get(named) : undefined;
    if (el) {
      el.textContent = p + (x.body.hint ? ` — ${x.body.hint}` : "");
      placed = true;
    } else general.append(p, " ");
  }
  if (!placed && x.body.hint) general.append(h("span", { class: "hint" }, `Hint: ${x.body.hint}`));
  if (general.textContent === "" && !placed) general.textContent = x.body.message;
  (form(errors)?.querySelector(".field-error:not(:empty)")?.previousElementSibling?.previousElementSibling as HTMLElement | null)?.focus();
}

const form = (errors: Map<string, HTMLElement>) => errors.values().next().value?.closest("form");
