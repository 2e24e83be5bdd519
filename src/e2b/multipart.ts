// multipart/form-data bodies as the E2B SDK sends them to POST /files: parts named "file" whose filename is
// the full target path (kept whole: a parser that keeps only the base name would write every file into one
// directory). The body is in memory, bounded by the caller (readBody's limit).

import { EnvelopeError } from "./envelope.js";

export interface Part {
  name?: string;
  filename?: string;
  data: Buffer;
}

/** The boundary of a multipart/form-data content type, or undefined for another type. */
export function boundaryOf(contentType: string | undefined): string | undefined {
  if (!contentType || !/^multipart\/form-data\b/i.test(contentType)) return undefined;
  const m = /;\s*boundary=(?:"([^"]{1,70})"|([^\s;]{1,70}))/i.exec(contentType);
  if (!m) throw new EnvelopeError("multipart/form-data without a boundary", "invalid_argument");
  return m[1] ?? m[2];
}

function disposition(headers: string): { name?: string; filename?: string } {
  const line = headers.split("\r\n").find((l) => /^content-disposition:/i.test(l));
  if (!line) return {};
  const param = (key: string) => {
    const m = new RegExp(`;\\s*${key}="((?:[^"\\\\]|\\\\.)*)"`, "i").exec(line) ?? new RegExp(`;\\s*${key}=([^;\\s]+)`, "i").exec(line);
    return m ? m[1]!.replace(/\\(.)/g, "$1") : undefined;
  };
  const star = /;\s*filename\*=UTF-8''([^;\s]+)/i.exec(line);
  return { name: param("name"), filename: star ? decodeURIComponent(star[1]!) : param("filename") };
}

export function parseMultipart(body: Buffer, boundary: string, maxParts = 1000): Part[] {
  const delimiter = Buffer.from(`--${boundary}`);
  const parts: Part[] = [];
  let at = body.indexOf(delimiter);
  if (at < 0) throw new EnvelopeError("the multipart body has no boundary line", "invalid_argument");
  for (;;) {
    at += delimiter.length;
    if (body.subarray(at, at + 2).toString() === "--") return parts; // the closing delimiter
    if (body.subarray(at, at + 2).toString() !== "\r\n") throw new EnvelopeError("a multipart boundary is not followed by CRLF", "invalid_argument");
    const headEnd = body.indexOf("\r\n\r\n", at + 2);
    if (headEnd < 0) throw new EnvelopeError("a multipart part has no end of headers", "invalid_argument");
    const next = body.indexOf(Buffer.concat([Buffer.from("\r\n"), delimiter]), headEnd + 4);
    if (next < 0) throw new EnvelopeError("the multipart body ends inside a part (no closing boundary)", "invalid_argument");
    if (parts.length >= maxParts) throw new EnvelopeError(`more than ${maxParts} parts`, "resource_exhausted");
    parts.push({ ...disposition(body.subarray(at + 2, headEnd).toString("utf8")), data: body.subarray(headEnd + 4, next) });
    at = next + 2;
  }
}
