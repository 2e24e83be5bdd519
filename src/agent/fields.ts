// Payload fields: tag (u16), length (u32), value — repeated. Repeated tags form lists (argv, env);
// unknown tags are skipped so either side can grow without breaking the other.

export class FieldWriter {
  private parts: Buffer[] = [];

  bytes(tag: number, value: Uint8Array): this {
    const h = Buffer.alloc(6);
    h.writeUInt16LE(tag, 0);
    h.writeUInt32LE(value.length, 2);
    this.parts.push(h, Buffer.from(value.buffer, value.byteOffset, value.length));
    return this;
  }

  str(tag: number, value: string): this {
    return this.bytes(tag, Buffer.from(value, "utf8"));
  }

  u8(tag: number, value: number): this {
    return this.bytes(tag, Buffer.from([value & 0xff]));
  }

  u32(tag: number, value: number): this {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(value >>> 0);
    return this.bytes(tag, b);
  }

  u64(tag: number, value: bigint): this {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(value);
    return this.bytes(tag, b);
  }

  build(): Buffer {
    return Buffer.concat(this.parts);
  }
}

export class MalformedFieldsError extends Error {}

/** Fields of a payload by tag; throws MalformedFieldsError when a length runs past the end. */
export class Fields {
  private readonly byTag = new Map<number, Buffer[]>();

  constructor(payload: Buffer) {
    let at = 0;
    while (at < payload.length) {
      if (payload.length - at < 6) throw new MalformedFieldsError(`truncated field header at byte ${at}`);
      const tag = payload.readUInt16LE(at);
      const len = payload.readUInt32LE(at + 2);
      if (len > payload.length - at - 6) throw new MalformedFieldsError(`field ${tag} runs past the end of the payload`);
      const list = this.byTag.get(tag) ?? [];
      list.push(payload.subarray(at + 6, at + 6 + len));
      this.byTag.set(tag, list);
      at += 6 + len;
    }
  }

  all(tag: number): Buffer[] {
    return this.byTag.get(tag) ?? [];
  }

  str(tag: number): string | undefined {
    return this.byTag.get(tag)?.[0]?.toString("utf8");
  }

  strs(tag: number): string[] {
    return this.all(tag).map((b) => b.toString("utf8"));
  }

  u32(tag: number): number | undefined {
    const b = this.byTag.get(tag)?.[0];
    return b?.length === 4 ? b.readUInt32LE(0) : undefined;
  }

  i32(tag: number): number | undefined {
    const b = this.byTag.get(tag)?.[0];
    return b?.length === 4 ? b.readInt32LE(0) : undefined;
  }

  u64(tag: number): number | undefined {
    const b = this.byTag.get(tag)?.[0];
    return b?.length === 8 ? Number(b.readBigUInt64LE(0)) : undefined;
  }
}
