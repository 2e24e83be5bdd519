// Forwarded guest ports and directory watches (docs/api.md): the stream routes' parameters and the watch
// stream's events.

import { Type } from "@sinclair/typebox";

const Flag = Type.Union([Type.Literal("true"), Type.Literal("false")]);

/** The port stays a string here: the handler gives a bad one (0, 65536, "http") a 400 that names it. */
export const PortParams = Type.Object({ ref: Type.String(), port: Type.String({ description: "the guest's TCP port, 1-65535" }) });
export const PortQuery = Type.Object(
  { address: Type.Optional(Type.String({ description: "an IPv4 or IPv6 literal inside the guest; 127.0.0.1 by default" })) },
  { additionalProperties: false },
);

export const WatchQuery = Type.Object(
  { path: Type.String({ description: "an absolute directory in the guest" }), recursive: Type.Optional(Flag) },
  { additionalProperties: false },
);

export const WatchEventSchema = Type.Union([
  Type.Object({ type: Type.Literal("started"), path: Type.String() }),
  Type.Object({
    type: Type.Union(["create", "write", "remove", "rename", "chmod"].map((t) => Type.Literal(t))),
    name: Type.String({ description: "relative to the watched path" }),
  }),
  Type.Object({ type: Type.Literal("overflow") }, { description: "events were lost: the guest's queue overflowed while this client read slowly" }),
  Type.Object({ type: Type.Literal("limit"), name: Type.String() }, { description: "the cap of 1024 watched directories was reached; changes below name are not seen" }),
  Type.Object({ type: Type.Literal("error"), error: Type.String(), message: Type.String(), hint: Type.Optional(Type.String()), details: Type.Optional(Type.Unknown()) }),
]);
