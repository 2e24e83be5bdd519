// A copy-on-write qcow2 overlay over a base image: instant to make, and the base is never written.

import { runTool } from "./tools.js";

export function createOverlay(backing: string, dest: string, sizeMiB?: number): Promise<string> {
  return runTool("qemu-img", ["create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", backing, dest, ...(sizeMiB ? [`${sizeMiB}M`] : [])]);
}
