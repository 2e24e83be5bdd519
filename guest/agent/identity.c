/* IDENTITY: makes a VM restored from a memory template (or resumed) a machine of its own. The template
 * froze its clock, and its hostname and kernel RNG state are shared by every VM made from it.
 * Every field is checked before anything changes, so a malformed request changes nothing. After that
 * each step is tried on its own, and what failed is named in the HELLO that answers (which echoes
 * REALTIME_NS: a HELLO_REQ's answer or a reconnect's HELLO may cross it on the way to the host). */
#include "agent.h"
#include "../init/net.h"
#include "proto.h"
#include "wire.h"
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* From <linux/random.h>, which musl does not ship. */
#ifndef RNDADDENTROPY
#define RNDADDENTROPY _IOW('R', 0x03, int[2])
#define RNDRESEEDCRNG _IO('R', 0x07)
#endif

#define MAX_ERRORS 8
#define IFACE "eth0"

struct identity {
  int have_time;
  uint64_t realtime_ns;
  char hostname[65]; /* HOST_NAME_MAX + 1 */
  const uint8_t *entropy;
  uint32_t entropy_len;
  int have_mac;
  uint8_t mac[6];
  char address[32], gateway[16];
};

static char errors[MAX_ERRORS][200];
static int nerrors;

static void failed(const char *fmt, ...) {
  if (nerrors == MAX_ERRORS) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(errors[nerrors++], sizeof errors[0], fmt, ap);
  va_end(ap);
}

/* "EPERM (Operation not permitted)": the name is what a host matches on, the text what a person reads. */
static const char *errno_text(int e) {
  static const struct { int e; const char *name; } names[] = {
    {EPERM, "EPERM"}, {EINVAL, "EINVAL"}, {ENOENT, "ENOENT"}, {ENODEV, "ENODEV"}, {ENOMEM, "ENOMEM"},
    {EBUSY, "EBUSY"}, {EACCES, "EACCES"}, {EFAULT, "EFAULT"}, {ENODATA, "ENODATA"}, {ENOTTY, "ENOTTY"},
    {EOPNOTSUPP, "EOPNOTSUPP"}, {EADDRNOTAVAIL, "EADDRNOTAVAIL"},
  };
  static char buf[96];
  const char *name = NULL;
  for (size_t i = 0; i < sizeof names / sizeof *names; i++) if (names[i].e == e) name = names[i].name;
  if (name) snprintf(buf, sizeof buf, "%s (%s)", name, strerror(e));
  else snprintf(buf, sizeof buf, "errno %d (%s)", e, strerror(e));
  return buf;
}

/* A string field into out: at least min bytes, shorter than the buffer, no NUL. */
static int take_str(char *out, size_t size, const uint8_t *v, uint32_t n, uint32_t min) {
  if (n < min || n >= size || memchr(v, 0, n)) return -1;
  memcpy(out, v, n);
  out[n] = 0;
  return 0;
}

static int parse_mac(const char *s, uint8_t mac[6]) {
  unsigned b[6];
  char end;
  if (sscanf(s, "%2x:%2x:%2x:%2x:%2x:%2x%c", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5], &end) != 6) return -1;
  for (int i = 0; i < 6; i++) mac[i] = (uint8_t)b[i];
  return mac[0] & 1 ? -1 : 0; /* a multicast address cannot name one interface */
}

static int valid_cidr(const char *cidr) {
  char a[32];
  struct in_addr ip;
  snprintf(a, sizeof a, "%s", cidr);
  char *slash = strchr(a, '/');
  if (!slash) return 0;
  *slash = 0;
  char *end;
  long prefix = strtol(slash + 1, &end, 10);
  return inet_aton(a, &ip) && !*end && prefix >= 1 && prefix <= 32;
}

/* Checks every field; returns why the request is refused, or NULL. */
static const char *parse(const uint8_t *payload, uint32_t len, struct identity *id) {
  struct tlv_iter it = {payload, len};
  uint16_t tag; const uint8_t *v; uint32_t n; int r;
  char mac[18];
  struct in_addr gw;
  while ((r = tlv_next(&it, &tag, &v, &n)) != 0) {
    if (r < 0) return "a field runs past the end of the payload";
    switch (tag) {
      case F_REALTIME_NS:
        if (n != 8) return "REALTIME_NS must be a u64";
        id->realtime_ns = 0;
        for (int i = 7; i >= 0; i--) id->realtime_ns = id->realtime_ns << 8 | v[i];
        id->have_time = 1;
        break;
      case F_HOSTNAME:
        if (take_str(id->hostname, sizeof id->hostname, v, n, 1) < 0) return "HOSTNAME must be 1 to 64 bytes without NUL";
        break;
      case F_ENTROPY:
        if (n > MVM_MAX_ENTROPY) return "ENTROPY is over 512 bytes";
        id->entropy = v; id->entropy_len = n;
        break;
      case F_ENV: /* applied from the payload later; checked here so that none is applied if one is bad */
        if (n < 2 || v[0] == '=' || !memchr(v, '=', n) || memchr(v, 0, n)) return "ENV must be KEY=VALUE without NUL";
        break;
      case F_NET_MAC:
        if (take_str(mac, sizeof mac, v, n, 17) < 0 || parse_mac(mac, id->mac) < 0) return "NET_MAC must be a unicast xx:xx:xx:xx:xx:xx";
        id->have_mac = 1;
        break;
      case F_NET_ADDRESS:
        if (take_str(id->address, sizeof id->address, v, n, 1) < 0 || !valid_cidr(id->address)) return "NET_ADDRESS must be a.b.c.d/prefix";
        break;
      case F_NET_GATEWAY:
        if (take_str(id->gateway, sizeof id->gateway, v, n, 1) < 0 || !inet_aton(id->gateway, &gw)) return "NET_GATEWAY must be a.b.c.d";
        break;
      default: break; /* unknown fields are ignored: newer hosts may send more */
    }
  }
  return id->have_time ? NULL : "REALTIME_NS is missing";
}

static void set_clock(uint64_t ns) {
  struct timespec ts = {.tv_sec = (time_t)(ns / 1000000000u), .tv_nsec = (long)(ns % 1000000000u)};
  if (clock_settime(CLOCK_REALTIME, &ts) < 0) failed("clock: %s", errno_text(errno));
}

/* Credited in full: the host's bytes come from its own CSPRNG. The reseed makes the CRNG use them now
 * rather than at its next scheduled reseed, so no output of the template's state follows this reply. */
static void add_entropy(const uint8_t *p, uint32_t n) {
  struct { int entropy_count, buf_size; uint8_t buf[MVM_MAX_ENTROPY]; } pool = {.entropy_count = (int)n * 8, .buf_size = (int)n};
  memcpy(pool.buf, p, n);
  int fd = open("/dev/urandom", O_WRONLY | O_CLOEXEC);
  if (fd < 0) failed("entropy: open /dev/urandom: %s", errno_text(errno));
  else if (ioctl(fd, RNDADDENTROPY, &pool) < 0) failed("entropy: RNDADDENTROPY: %s", errno_text(errno));
  else if (ioctl(fd, RNDRESEEDCRNG) < 0) failed("entropy: RNDRESEEDCRNG: %s", errno_text(errno));
  if (fd >= 0) close(fd);
  memset(pool.buf, 0, sizeof pool.buf); /* the agent's stack is no place to keep RNG input */
}

/* In the agent's own environment: every command it starts from now on inherits it (EXEC's ENV still
 * goes over it). */
static void set_env(const uint8_t *payload, uint32_t len) {
  struct tlv_iter it = {payload, len};
  uint16_t tag; const uint8_t *v; uint32_t n;
  while (tlv_next(&it, &tag, &v, &n) > 0) {
    if (tag != F_ENV) continue;
    char *kv = strndup((const char *)v, n), *eq = kv ? strchr(kv, '=') : NULL;
    if (!eq) { failed("env: %s", errno_text(ENOMEM)); free(kv); continue; }
    *eq = 0;
    if (setenv(kv, eq + 1, 1) < 0) failed("env: %s: %s", kv, errno_text(errno));
    free(kv);
  }
}

/* virtio-net changes its address while up (IFF_LIVE_ADDR_CHANGE); taking the link down instead would
 * also drop its routes. */
static void set_mac(const uint8_t mac[6]) {
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) { failed("network: socket: %s", errno_text(errno)); return; }
  struct ifreq r;
  memset(&r, 0, sizeof r);
  snprintf(r.ifr_name, IFNAMSIZ, "%s", IFACE);
  r.ifr_hwaddr.sa_family = ARPHRD_ETHER;
  memcpy(r.ifr_hwaddr.sa_data, mac, 6);
  if (ioctl(s, SIOCSIFHWADDR, &r) < 0) failed("network: set MAC of %s: %s", IFACE, errno_text(errno));
  close(s);
}

/* The address replaces eth0's (and with it the routes through it), so the gateway comes after it. */
static void set_network(const struct identity *id) {
  char err[160];
  if (id->have_mac) set_mac(id->mac);
  if (id->address[0] && net_configure(IFACE, id->address, NULL, err, sizeof err) < 0) failed("network: %s", err);
  if (id->gateway[0] && net_default_route(IFACE, id->gateway, err, sizeof err) < 0) failed("network: %s", err);
}

void identity_apply(uint32_t session, const uint8_t *payload, uint32_t len) {
  struct identity id = {0};
  const char *bad = session ? "IDENTITY belongs to session 0" : parse(payload, len, &id);
  if (bad) { send_error(session, E_BAD_MESSAGE, "identity: %s", bad); return; }
  nerrors = 0;
  set_clock(id.realtime_ns); /* first: what follows (and its log lines) happens at the right time */
  if (id.hostname[0] && sethostname(id.hostname, strlen(id.hostname)) < 0) failed("hostname: %s", errno_text(errno));
  if (id.entropy_len) add_entropy(id.entropy, id.entropy_len);
  set_env(payload, len);
  set_network(&id);
  const char *list[MAX_ERRORS];
  for (int i = 0; i < nerrors; i++) list[i] = errors[i];
  for (int i = 0; i < nerrors; i++) logmsg("identity: %s", list[i]);
  send_hello(&id.realtime_ns, list, nerrors);
}
