// The serial console and an interactive shell, in xterm.js. The screen-reader mode keeps the terminal's
// text in the page's DOM (an accessibility tree tests and assistive tools read), and the fit addon sizes
// the terminal to its box, again whenever the window changes.

import { Terminal } from "@xterm/xterm";
import { FitAddon } from "@xterm/addon-fit";
import { socket } from "./api.js";
import { h } from "./dom.js";

function makeTerminal(box: HTMLElement): { term: Terminal; fit: FitAddon; dispose: () => void } {
  const term = new Terminal({ screenReaderMode: true, convertEol: false, cursorBlink: true, fontSize: 14, scrollback: 5000 });
  const fit = new FitAddon();
  term.loadAddon(fit);
  term.open(box);
  const onResize = () => {
    try {
      fit.fit();
    } catch {
      /* not laid out yet */
    }
  };
  const ro = new ResizeObserver(onResize);
  ro.observe(box);
  onResize();
  term.focus();
  return { term, fit, dispose: () => (ro.disconnect(), term.dispose()) };
}

const status = (el: HTMLElement, text: string) => (el.textContent = text);

/** Closing codes 4000 + status carry an mvm error as `CODE: message`. */
const closedWhy = (e: CloseEvent): string => (e.code === 1000 ? "ended" : e.code >= 4000 ? `closed: ${e.reason}` : `closed (${e.code})`);

export function consoleView(main: HTMLElement, id: string): () => void {
  const st = h("p", { class: "muted", role: "status" }, "connecting…");
  const box = h("div", { class: "term", id: "console-term", "aria-label": "Serial console" });
  main.append(st, box);
  const { term, dispose } = makeTerminal(box);
  const ws = socket(`/v1/vms/${encodeURIComponent(id)}/console/ws`);
  const enc = new TextEncoder();
  ws.onopen = () => {
    status(st, "connected: the serial console (press Enter for a prompt)");
    ws.send(enc.encode("\n"));
  };
  ws.onmessage = (m) => {
    if (typeof m.data === "string") {
      const msg = JSON.parse(m.data) as { type: string; bytes?: number; message?: string; hint?: string };
      if (msg.type === "dropped") term.write(`\r\n[${msg.bytes} bytes of output skipped]\r\n`);
      else if (msg.type === "error") status(st, `${msg.message ?? ""}${msg.hint ? ` — ${msg.hint}` : ""}`);
      return;
    }
    term.write(new Uint8Array(m.data as ArrayBuffer));
  };
  ws.onclose = (e) => status(st, closedWhy(e));
  const input = term.onData((d) => ws.readyState === WebSocket.OPEN && ws.send(enc.encode(d)));
  return () => {
    input.dispose();
    ws.close();
    dispose();
  };
}

const b64 = (s: string): string => {
  const bin = Array.from(new TextEncoder().encode(s), (c) => String.fromCharCode(c)).join("");
  return btoa(bin);
};
const unb64 = (s: string): Uint8Array => Uint8Array.from(atob(s), (c) => c.charCodeAt(0));

export function terminalView(main: HTMLElement, id: string): () => void {
  const st = h("p", { class: "muted", role: "status" }, "connecting…");
  const box = h("div", { class: "term", id: "exec-term", "aria-label": "Terminal" });
  main.append(st, box);
  const { term, dispose } = makeTerminal(box);
  const ws = socket(`/v1/vms/${encodeURIComponent(id)}/exec/ws`);
  ws.onopen = () => {
    ws.send(JSON.stringify({ argv: ["/bin/sh", "-l"], tty: { rows: term.rows, cols: term.cols } }));
  };
  ws.onmessage = (m) => {
    const e = JSON.parse(String(m.data)) as { type: string; data?: string; exitCode?: number; message?: string; hint?: string };
    if (e.type === "started") status(st, "a shell in the guest, on a pseudo-terminal");
    else if (e.type === "stdout" || e.type === "stderr") term.write(unb64(e.data ?? ""));
    else if (e.type === "exit") status(st, `the shell ended (status ${e.exitCode ?? "?"})`);
    else if (e.type === "error") status(st, `${e.message ?? ""}${e.hint ? ` — ${e.hint}` : ""}`);
  };
  ws.onclose = (e) => e.code !== 1000 && status(st, closedWhy(e));
  const input = term.onData((d) => ws.readyState === WebSocket.OPEN && ws.send(JSON.stringify({ type: "stdin", data: b64(d) })));
  const resize = term.onResize(({ rows, cols }) => ws.readyState === WebSocket.OPEN && ws.send(JSON.stringify({ type: "resize", rows, cols })));
  return () => {
    input.dispose();
    resize.dispose();
    ws.close();
    dispose();
  };
}
