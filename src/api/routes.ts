// How a route is described: one object per route gives Fastify its request schemas (validated on every
// call) and the OpenAPI generator (openapi.ts) everything else it needs. There is no second route table:
// the document is built from the routes the server actually registered.

import type { TSchema } from "@sinclair/typebox";

export type Answer = "json" | "ndjson" | "sse" | "octet" | "text" | "none" | "upgrade";

export interface RouteDoc {
  summary: string;
  answer: Answer;
  /** The success status, 200 unless given. */
  status?: number;
  /** A JSON request body. */
  body?: TSchema;
  /** The body may be left out (the route then acts as on an empty object). */
  bodyOptional?: boolean;
  /** The body is raw bytes (application/octet-stream), streamed through. */
  octetBody?: boolean;
  query?: TSchema;
  params?: TSchema;
  /** The JSON answer's schema. */
  response?: TSchema;
  /** For NDJSON (and upgraded) streams: the schema of one line. */
  events?: TSchema;
  /** Other answers the route gives, and when (a query or body switch): each documented beside the main one. */
  also?: Array<{ when: string; answer: Answer; status?: number; response?: TSchema; events?: TSchema }>;
  /**
   * false: the body schema is documented but checked by the handler instead (the VM spec, whose checker
   * gives INVALID_SPEC with the unknown keys named and resolves files).
   */
  validateBody?: boolean;
  /** The largest JSON body the route reads (BODY_TOO_LARGE beyond): JSON_BODY_LIMIT unless given. */
  bodyLimit?: number;
}

/** JSON bodies are small (a VM spec, a file operation, a network): refused beyond this, before parsing. */
export const JSON_BODY_LIMIT = 1024 * 1024;
/** A body a route does not take is read and dropped only up to this. */
export const NO_BODY_LIMIT = 16 * 1024;
/** The exec body carries the command's whole stdin (input, base64); more stdin streams through .../stdin. */
export const EXEC_BODY_LIMIT = 16 * 1024 * 1024;

/** The largest JSON body a route reads. Raw bodies (octetBody: file contents, stdin) stream and have no limit. */
export const bodyLimitOf = (d: RouteDoc): number => d.bodyLimit ?? (d.body ? JSON_BODY_LIMIT : NO_BODY_LIMIT);

declare module "fastify" {
  interface FastifyContextConfig {
    doc?: RouteDoc;
  }
}

/** Route options for Fastify: request schemas to validate, and the doc kept in the route's config. */
export function route(d: RouteDoc) {
  return {
    schema: {
      summary: d.summary,
      ...(d.body && d.validateBody !== false ? { body: d.body } : {}),
      ...(d.query ? { querystring: d.query } : {}),
      ...(d.params ? { params: d.params } : {}),
    },
    config: { doc: d },
    bodyLimit: bodyLimitOf(d),
  };
}

export interface RegisteredRoute {
  method: string;
  url: string;
  doc?: RouteDoc;
}
