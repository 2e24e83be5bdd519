// The wire contract for images, bridged networks and guest files.

import { Type, type Static } from "@sinclair/typebox";
import { NAME_PATTERN } from "../vmspec/vm-spec.js";

const Flag = Type.Union([Type.Literal("true"), Type.Literal("false")]);

export const ImageViewSchema = Type.Object({ name: Type.String(), path: Type.String(), virtualBytes: Type.Integer(), source: Type.String(), createdAt: Type.String() });
export type ImageView = Static<typeof ImageViewSchema>;

export const ImageImportBodySchema = Type.Object(
  { file: Type.String({ minLength: 1, description: "the image file's absolute path on the daemon's host (raw or qcow2)" }), name: Type.String({ pattern: NAME_PATTERN }) },
  { additionalProperties: false },
);
export const ImageBuildBodySchema = Type.Object(
  {
    distro: Type.Literal("debian"),
    suite: Type.Optional(Type.String({ pattern: "^[a-z]+$", description: "default bookworm" })),
    packages: Type.Optional(Type.Array(Type.String({ maxLength: 200 }), { maxItems: 500 })),
    name: Type.Optional(Type.String({ pattern: NAME_PATTERN, description: "default debian" })),
  },
  { additionalProperties: false },
);

/** The lines of an image build or import: progress..., then done or error. */
export const BuildEventSchema = Type.Union([
  Type.Object({ type: Type.Literal("progress"), line: Type.String() }),
  Type.Object({ type: Type.Literal("done"), image: ImageViewSchema }),
  Type.Object({ type: Type.Literal("error"), error: Type.String(), message: Type.String(), hint: Type.Optional(Type.String()), details: Type.Optional(Type.Unknown()) }),
]);

export const NetworkViewSchema = Type.Object({
  name: Type.String(),
  id: Type.String(),
  bridge: Type.String(),
  subnet: Type.String(),
  nat: Type.Boolean(),
  createdAt: Type.String(),
  vms: Type.Optional(Type.Array(Type.String())),
});
export type NetworkView = Static<typeof NetworkViewSchema>;

export const NetworkCreateBodySchema = Type.Object(
  { name: Type.String({ pattern: NAME_PATTERN }), subnet: Type.Optional(Type.String({ description: "an IPv4 CIDR, e.g. 10.88.0.0/24 (default: a free /24)" })), nat: Type.Optional(Type.Boolean()) },
  { additionalProperties: false },
);

export const VolumeViewSchema = Type.Object({
  name: Type.String(),
  path: Type.String({ description: "the folder on the daemon's host, resolved (realpath) when it was registered" }),
  readOnly: Type.Boolean({ description: "VMs may mount it read-only only" }),
  createdAt: Type.String(),
  vms: Type.Array(Type.String(), { description: "the VMs whose spec shares it" }),
});
export type VolumeView = Static<typeof VolumeViewSchema>;

export const VolumeCreateBodySchema = Type.Object(
  {
    name: Type.String({ pattern: NAME_PATTERN, description: "lower-case letters, digits and '-', at most 63" }),
    path: Type.String({ minLength: 1, description: "an existing folder's absolute path on the daemon's host" }),
    readOnly: Type.Optional(Type.Boolean({ description: "VMs may mount it read-only only (default false)" })),
  },
  { additionalProperties: false },
);

export const FileTypeSchema = Type.Union([Type.Literal("file"), Type.Literal("dir"), Type.Literal("symlink"), Type.Literal("other")]);
export const FileEntrySchema = Type.Object({
  name: Type.String({ description: "the path asked about, or the path relative to the listed directory" }),
  type: FileTypeSchema,
  mode: Type.Integer({ description: "permission bits (0o7777)" }),
  uid: Type.Integer(),
  gid: Type.Integer(),
  size: Type.Integer(),
  mtimeMs: Type.Number(),
  target: Type.Optional(Type.String({ description: "where a symlink points (never followed)" })),
});
export type FileEntry = Static<typeof FileEntrySchema>;
export type FileType = Static<typeof FileTypeSchema>;

const Mode = Type.Union([Type.Integer(), Type.String()], { description: "permission bits: a number, or octal digits in a string (\"0644\")" });

/** One body for every file operation; which keys an operation needs is checked by the route. */
export const FileOpBodySchema = Type.Object(
  {
    path: Type.String({ description: "an absolute guest path" }),
    to: Type.Optional(Type.String({ description: "rename: the new path" })),
    target: Type.Optional(Type.String({ description: "symlink: where it points" })),
    depth: Type.Optional(Type.Integer({ minimum: 0, maximum: 1000, description: "list: 1 the directory only, 0 everything" })),
    mode: Type.Optional(Mode),
    owner: Type.Optional(Type.String({ description: "USER[:GROUP], names or numbers" })),
    parents: Type.Optional(Type.Boolean()),
    recursive: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false },
);
export const FileOpAnswerSchema = Type.Object({ entries: Type.Array(FileEntrySchema) });
export const FileOpParams = Type.Object({ ref: Type.String(), op: Type.Union(["stat", "list", "mkdir", "rename", "remove", "chmod", "chown", "symlink"].map((o) => Type.Literal(o))) });

export const FileReadQuery = Type.Object({ path: Type.String() }, { additionalProperties: false });
export const FileWriteQuery = Type.Object(
  { path: Type.String(), mode: Type.Optional(Type.String()), owner: Type.Optional(Type.String()), parents: Type.Optional(Flag), exclusive: Type.Optional(Flag) },
  { additionalProperties: false },
);
export const TransferResultSchema = Type.Object({ size: Type.Integer(), crc32: Type.String({ description: "CRC-32 (zlib's) of the bytes, 8 hex digits" }) });
export type TransferResult = Static<typeof TransferResultSchema>;
