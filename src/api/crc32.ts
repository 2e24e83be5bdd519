// CRC-32 (IEEE 802.3, zlib's): the checksum of frame headers and of every file transfer. zlib.crc32
// (native) exists from Node 20.15; older Node 20 releases use the table below.

import * as zlib from "node:zlib";

const TABLE = (() => {
  const t = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[i] = c >>> 0;
  }
  return t;
})();

function crc32js(data: Uint8Array, prev: number): number {
  let c = (prev ^ 0xffffffff) >>> 0;
  for (const byte of data) c = TABLE[(c ^ byte) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

const native = (zlib as { crc32?: (data: Uint8Array, value?: number) => number }).crc32;

/** The CRC-32 of data, continuing from prev (the CRC of what came before; 0 to start). */
export function crc32(data: Uint8Array, prev = 0): number {
  return native ? native(data, prev) >>> 0 : crc32js(data, prev);
}

export const crc32Hex = (crc: number): string => crc.toString(16).padStart(8, "0");
