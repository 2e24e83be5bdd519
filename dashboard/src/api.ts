// The daemon's API as the page speaks it: JSON with the token in Authorization, errors in mvm's body shape
// ({error, message, hint, details}), the event stream read with fetch (EventSource cannot send a token),
// and WebSockets that carry the token as a subprotocol (a browser cannot set their headers).

export interface ApiError {
  error: string;
  message: string;
  hint?: string;
  details?: Record<string, unknown>;
  status?: number;
}

export class DaemonError extends Error {
  constructor(readonly body: ApiError) {
    super(body.message);
  }
}

const KEY = "mvm.token";
export const token = {
  get: (): string | null => sessionStorage.getItem(KEY),
  set: (t: string) => sessionStorage.setItem(KEY, t),
  clear: () => sessionStorage.removeItem(KEY),
};

const auth = (t = token.get()): Record<string, string> => (t ? { authorization: `Bearer ${t}` } : {});

async function errorOf(r: Response): Promise<DaemonError> {
  let body: ApiError;
  try {
    body = (await r.json()) as ApiError;
  } catch {
    body = { error: "HTTP_" + r.status, message: `the daemon answered ${r.status} ${r.statusText}` };
  }
  return new DaemonError({ ...body, status: r.status });
}

/** A JSON call; any answer but 2xx is thrown as a DaemonError carrying the API's body. */
export async function api<T = unknown>(method: string, path: string, body?: unknown, t?: string): Promise<T> {
  let r: Response;
  try {
    r = await fetch(path, { method, headers: { ...auth(t), ...(body === undefined ? {} : { "content-type": "application/json" }) }, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (e) {
    throw new DaemonError({ error: "DAEMON_UNREACHABLE", message: `cannot reach the daemon: ${(e as Error).message}`, hint: "is mvm daemon still running with its listener?" });
  }
  if (!r.ok) throw await errorOf(r);
  if (r.status === 204) return undefined as T;
  return (await r.json()) as T;
}

/** Reads NDJSON lines of a streaming answer (image import/build, logs) until it ends or `signal` aborts. */
export async function ndjson(method: string, path: string, body: unknown, onLine: (v: Record<string, unknown>) => void, signal?: AbortSignal): Promise<void> {
  const r = await fetch(path, { method, signal, headers: { ...auth(), ...(body === undefined ? {} : { "content-type": "application/json" }) }, body: body === undefined ? undefined : JSON.stringify(body) });
  if (!r.ok) throw await errorOf(r);
  await lines(r, (l) => l && onLine(JSON.parse(l) as Record<string, unknown>));
}

/** A streamed text answer (the console log), chunk by chunk. */
export async function text(path: string, onChunk: (s: string) => void, signal?: AbortSignal): Promise<void> {
  const r = await fetch(path, { signal, headers: auth() });
  if (!r.ok) throw await errorOf(r);
  const reader = r.body!.pipeThrough(new TextDecoderStream()).getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return;
    onChunk(value);
  }
}

async function lines(r: Response, onLine: (l: string) => void): Promise<void> {
  const reader = r.body!.pipeThrough(new TextDecoderStream()).getReader();
  let buf = "";
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    buf += value;
    let i;
    while ((i = buf.indexOf("\n")) >= 0) {
      onLine(buf.slice(0, i));
      buf = buf.slice(i + 1);
    }
  }
  if (buf) onLine(buf);
}

export interface MvmEvent {
  type: string;
  vm?: { id: string; name: string };
  [k: string]: unknown;
}

/**
 * Follows GET /v1/events for as long as `signal` lets it, reconnecting after a drop with the last id seen
 * (so nothing is missed or seen twice), one second between tries.
 */
export function followEvents(onEvent: (e: MvmEvent) => void, onState: (up: boolean, err?: DaemonError) => void, signal: AbortSignal): void {
  let last: string | undefined;
  const once = async () => {
    const r = await fetch("/v1/events", { signal, headers: { ...auth(), accept: "text/event-stream", ...(last ? { "last-event-id": last } : {}) } });
    if (!r.ok) throw await errorOf(r);
    onState(true);
    let id: string | undefined;
    let data = "";
    await lines(r, (l) => {
      if (l === "") {
        if (id) last = id;
        if (data) onEvent(JSON.parse(data) as MvmEvent);
        id = undefined;
        data = "";
      } else if (l.startsWith("id:")) id = l.slice(3).trim();
      else if (l.startsWith("data:")) data += l.slice(5).trim();
    });
  };
  const loop = async () => {
    while (!signal.aborted) {
      try {
        await once();
        onState(false);
      } catch (e) {
        if (signal.aborted) return;
        onState(false, e instanceof DaemonError ? e : undefined);
      }
      await new Promise((r) => setTimeout(r, 1000));
    }
  };
  void loop();
}

/** A WebSocket to one of the daemon's streams, the token as the subprotocol `mvm.token.TOKEN` beside `mvm`. */
export function socket(path: string): WebSocket {
  const url = new URL(path, location.href);
  url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
  const ws = new WebSocket(url, ["mvm", `mvm.token.${token.get() ?? ""}`]);
  ws.binaryType = "arraybuffer";
  return ws;
}

/** Uploads a file with XMLHttpRequest, the one browser API that reports an upload's progress. */
export function upload(path: string, file: Blob, onProgress: (sent: number, total: number) => void): Promise<{ size: number; crc32: number }> {
  return new Promise((resolve, reject) => {
    const x = new XMLHttpRequest();
    x.open("PUT", path);
    const t = token.get();
    if (t) x.setRequestHeader("authorization", `Bearer ${t}`);
    x.setRequestHeader("content-type", "application/octet-stream");
    x.upload.onprogress = (e) => onProgress(e.loaded, e.total);
    x.onload = () => {
      let body: unknown;
      try {
        body = JSON.parse(x.responseText);
      } catch {
        body = { error: "HTTP_" + x.status, message: x.statusText };
      }
      if (x.status >= 200 && x.status < 300) resolve(body as { size: number; crc32: number });
      else reject(new DaemonError({ ...(body as ApiError), status: x.status }));
    };
    x.onerror = () => reject(new DaemonError({ error: "DAEMON_UNREACHABLE", message: "the upload was cut off" }));
    x.send(file);
  });
}

/** Downloads a guest file through fetch (an <a href> could not carry the token), then saves it. */
export async function download(path: string, name: string): Promise<void> {
  const r = await fetch(path, { headers: auth() });
  if (!r.ok) throw await errorOf(r);
  const url = URL.createObjectURL(await r.blob());
  const a = document.createElement("a");
  a.href = url;
  a.download = name;
  a.click();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}
