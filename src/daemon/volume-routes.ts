// /v1/volumes: named volumes (src/daemon/volume-manager.ts). Listing is for every caller; registering and
// removing is for the host's root (or an admin token), 403 otherwise.

import type { FastifyInstance } from "fastify";
import { Type, type Static } from "@sinclair/typebox";
import { route } from "../api/routes.js";
import { VolumeCreateBodySchema, VolumeViewSchema } from "../api/resource-schemas.js";
import type { VmManager } from "./vm-manager.js";

export function registerVolumeRoutes(app: FastifyInstance, manager: VmManager): void {
  app.get("/v1/volumes", route({ summary: "named volumes (host folders the host's root registered) and the VMs sharing each", answer: "json", response: Type.Array(VolumeViewSchema) }), () => manager.volumes.list());

  const createDoc = route({ summary: "register a host folder as a named volume (the host's root only; 403 otherwise)", answer: "json", status: 201, body: VolumeCreateBodySchema, response: VolumeViewSchema });
  app.post<{ Body: Static<typeof VolumeCreateBodySchema> }>("/v1/volumes", createDoc, (req, reply) => {
    const b = req.body;
    const v = manager.volumes.create(b.name, b.path, { readOnly: b.readOnly }, req.caller);
    return reply.status(201).send({ ...v, vms: [] });
  });

  app.delete<{ Params: { name: string } }>("/v1/volumes/:name", route({ summary: "remove a named volume no VM uses (409 naming the VMs otherwise); its folder is left as it is", answer: "none", status: 204 }), (req, reply) => {
    manager.volumes.remove(req.params.name, req.caller);
    return reply.status(204).send();
  });
}
