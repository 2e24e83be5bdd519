#include "wire.h"
#include "proto.h"
#include <string.h>

static uint32_t crc_table[256];

uint32_t crc32_ieee(const uint8_t *p, size_t n) {
  if (!crc_table[1]) {
    for (uint32_t i = 0; i < 256; i++) {
      uint32_t c = i;
      for (int k = 0; k < 8; k++) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      crc_table[i] = c;
    }
  }
  uint32_t c = 0xFFFFFFFFu;
  while (n--) c = crc_table[(c ^ *p++) & 0xFF] ^ (c >> 8);
  return c ^ 0xFFFFFFFFu;
}

static void put32(uint8_t *p, uint32_t v) {
  p[0] = v; p[1] = v >> 8; p[2] = v >> 16; p[3] = v >> 24;
}
static uint32_t get32(const uint8_t *p) {
  return p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

void header_encode(uint8_t out[16], uint8_t type, uint32_t session, uint32_t length) {
  out[0] = MVM_MAGIC0; out[1] = MVM_MAGIC1; out[2] = MVM_PROTO_VERSION; out[3] = type;
  put32(out + 4, session);
  put32(out + 8, length);
  put32(out + 12, crc32_ieee(out, 12));
}

int header_decode(const uint8_t in[16], struct frame_header *h) {
  if (in[0] != MVM_MAGIC0 || in[1] != MVM_MAGIC1) return -1;
  if (crc32_ieee(in, 12) != get32(in + 12)) return -1;
  h->version = in[2];
  h->type = in[3];
  h->session = get32(in + 4);
  h->length = get32(in + 8);
  return 0;
}

void tlv_bytes(struct tlv_out *t, uint16_t tag, const void *p, uint32_t n) {
  if (t->overflow || t->len + 6 + n > sizeof t->buf) { t->overflow = 1; return; }
  uint8_t *o = t->buf + t->len;
  o[0] = tag; o[1] = tag >> 8;
  put32(o + 2, n);
  memcpy(o + 6, p, n);
  t->len += 6 + n;
}
void tlv_str(struct tlv_out *t, uint16_t tag, const char *s) { tlv_bytes(t, tag, s, strlen(s)); }
void tlv_u32(struct tlv_out *t, uint16_t tag, uint32_t v) {
  uint8_t b[4]; put32(b, v); tlv_bytes(t, tag, b, 4);
}
void tlv_u64(struct tlv_out *t, uint16_t tag, uint64_t v) {
  uint8_t b[8]; put32(b, (uint32_t)v); put32(b + 4, (uint32_t)(v >> 32)); tlv_bytes(t, tag, b, 8);
}

int tlv_next(struct tlv_iter *it, uint16_t *tag, const uint8_t **val, uint32_t *len) {
  if (it->left == 0) return 0;
  if (it->left < 6) return -1;
  *tag = it->p[0] | it->p[1] << 8;
  *len = get32(it->p + 2);
  if (*len > it->left - 6) return -1;
  *val = it->p + 6;
  it->p += 6 + *len;
  it->left -= 6 + *len;
  return 1;
}

int tlv_as_u32(const uint8_t *val, uint32_t len, uint32_t *out) {
  if (len != 4) return -1;
  *out = get32(val);
  return 0;
}
