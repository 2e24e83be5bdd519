/* Frame and field encoding of the agent protocol (see docs/agent-protocol.md). */
#ifndef MVM_WIRE_H
#define MVM_WIRE_H
#include <stddef.h>
#include <stdint.h>

struct frame_header {
  uint8_t version, type;
  uint32_t session, length;
};

uint32_t crc32_ieee(const uint8_t *p, size_t n);
/* Continues a CRC-32 (start with 0) over more bytes; the same value as zlib's crc32(). */
uint32_t crc32_update(uint32_t crc, const uint8_t *p, size_t n);
void header_encode(uint8_t out[16], uint8_t type, uint32_t session, uint32_t length);
/* Returns 0 when the 16 bytes are a valid header (magic, CRC), -1 otherwise. */
int header_decode(const uint8_t in[16], struct frame_header *h);

/* A fixed buffer of 8 KiB for building the payloads of control frames (HELLO, EXIT, ERROR, FS_DONE...;
 * never bulk data). It does not grow: a field that does not fit is not written and sets `overflow`, and
 * port_send_tlv() refuses to send such a payload (a frame missing fields would be worse than none). */
#define TLV_OUT_MAX 8192
struct tlv_out {
  uint8_t buf[TLV_OUT_MAX];
  size_t len;
  int overflow;
};
void tlv_bytes(struct tlv_out *t, uint16_t tag, const void *p, uint32_t n);
void tlv_str(struct tlv_out *t, uint16_t tag, const char *s);
void tlv_u32(struct tlv_out *t, uint16_t tag, uint32_t v);
void tlv_u64(struct tlv_out *t, uint16_t tag, uint64_t v);

/* Iterates over the fields of a payload: returns 1 with the next field, 0 at the end, -1 if malformed. */
struct tlv_iter {
  const uint8_t *p;
  size_t left;
};
int tlv_next(struct tlv_iter *it, uint16_t *tag, const uint8_t **val, uint32_t *len);
int tlv_as_u32(const uint8_t *val, uint32_t len, uint32_t *out);

#endif
