// Requests the daemon's HTTP layer (Fastify, Node's parser) refuses before any route runs. They answer in
// the same body shape as every other error; each is a kind of bad request.

import { BadRequestError } from "./input.js";

/** No route has this method and path. */
export class RouteNotFoundError extends BadRequestError {
  static override readonly code: string = "UNKNOWN_ROUTE";
  static override readonly status: number = 404;
  static override readonly hint: string = "see docs/api.md for the routes; a daemon older than its client lacks newer ones (mvm --version, GET /v1/info)";
}

/** The client took too long to send its request. */
export class RequestTimeoutError extends BadRequestError {
  static override readonly code: string = "REQUEST_TIMEOUT";
  static override readonly status: number = 408;
  static override readonly hint: string = "send the whole request at once";
}

/** The request body is over its route's limit (src/api/routes.ts: 1 MiB for most JSON; file contents stream and have none). */
export class BodyTooLargeError extends BadRequestError {
  static override readonly code: string = "BODY_TOO_LARGE";
  static override readonly status: number = 413;
  static override readonly hint: string = "send file contents to PUT /v1/vms/:ref/files/content, which streams them";
}

/** A path parameter (a VM reference, a name) is longer than the router takes. */
export class UriTooLongError extends BadRequestError {
  static override readonly code: string = "URI_TOO_LONG";
  static override readonly status: number = 414;
  static override readonly hint: string = "VM references and names are short: a name, an id or an id prefix";
}

/** The body's content type is not one the route takes. */
export class UnsupportedMediaTypeError extends BadRequestError {
  static override readonly code: string = "UNSUPPORTED_MEDIA_TYPE";
  static override readonly status: number = 415;
  static override readonly hint: string = "send application/json, or application/octet-stream where a route streams bytes";
}

/** The request's headers are over Node's limit. */
export class HeadersTooLargeError extends BadRequestError {
  static override readonly code: string = "HEADERS_TOO_LARGE";
  static override readonly status: number = 431;
  static override readonly hint: string = "send fewer or shorter headers";
}
