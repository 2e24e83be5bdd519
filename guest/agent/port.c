/* The channel to the host: a virtio-serial port found by its name, framed writes, connection state. */
#include "agent.h"
#include "proto.h"
#include "wire.h"
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define PORT_NAME "org.mvm.agent"
static int fd = -1;
static int connected = 1;

int64_t uptime_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_BOOTTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void logmsg(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "mvm-agent: ");
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
}

/* The kernel names ports vportNpM; the name QEMU gave the port is in sysfs. */
static int find_port(char *out, size_t n) {
  DIR *d = opendir("/sys/class/virtio-ports");
  if (!d) return -1;
  struct dirent *e;
  int found = -1;
  while ((e = readdir(d)) && found < 0) {
    if (e->d_name[0] == '.') continue;
    char path[512], name[64] = {0};
    snprintf(path, sizeof path, "/sys/class/virtio-ports/%s/name", e->d_name);
    FILE *f = fopen(path, "re");
    if (!f) continue;
    if (fgets(name, sizeof name, f) && strncmp(name, PORT_NAME, strlen(PORT_NAME)) == 0 &&
        (name[strlen(PORT_NAME)] == '\n' || name[strlen(PORT_NAME)] == 0)) {
      snprintf(out, n, "/dev/%s", e->d_name);
      found = 0;
    }
    fclose(f);
  }
  closedir(d);
  return found;
}

int port_open(const char *override) {
  char path[300];
  if (override) {
    snprintf(path, sizeof path, "%s", override);
  } else {
    /* Drivers are built in, so the port normally exists before init runs; wait briefly in case. */
    int64_t deadline = uptime_ms() + 10000;
    while (find_port(path, sizeof path) < 0) {
      if (uptime_ms() > deadline) { logmsg("no virtio-serial port named %s", PORT_NAME); return -1; }
      usleep(5000);
    }
  }
  fd = open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) { logmsg("open %s: %s", path, strerror(errno)); return -1; }
  return fd;
}

int port_fd(void) { return fd; }
int port_connected(void) { return connected; }
void port_set_connected(int c) {
  if (c != connected) logmsg("host %s", c ? "connected" : "disconnected");
  connected = c;
}

/* Waits until the port takes more bytes. While the host is away the port reports POLLHUP at once, so
 * sleep between tries instead of spinning. */
static void wait_writable(void) {
  struct pollfd p = {.fd = fd, .events = POLLOUT};
  if (poll(&p, 1, 1000) > 0 && (p.revents & POLLHUP)) {
    port_set_connected(0);
    usleep(50000);
  }
}

void port_send(uint8_t type, uint32_t session, const void *payload, uint32_t len) {
  uint8_t h[MVM_HEADER_SIZE];
  header_encode(h, type, session, len);
  struct iovec iov[2] = {{h, sizeof h}, {(void *)payload, len}};
  int cnt = len ? 2 : 1;
  struct iovec *v = iov;
  while (cnt > 0) {
    ssize_t w = writev(fd, v, cnt);
    if (w < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) { wait_writable(); continue; }
      logmsg("write to host: %s", strerror(errno));
      usleep(50000);
      continue;
    }
    while (cnt > 0 && (size_t)w >= v->iov_len) { w -= v->iov_len; v++; cnt--; }
    if (cnt > 0) { v->iov_base = (uint8_t *)v->iov_base + w; v->iov_len -= w; }
  }
}

void port_send_tlv(uint8_t type, uint32_t session, const struct tlv_out *t) {
  if (t->overflow) {
    logmsg("frame 0x%02x for session %u did not fit in %d bytes; not sent", type, session, TLV_OUT_MAX);
    send_error(session, E_INTERNAL, "the agent's frame 0x%02x did not fit in its %d-byte buffer", type, TLV_OUT_MAX);
    return;
  }
  port_send(type, session, t->buf, (uint32_t)t->len);
}

void send_error(uint32_t session, uint32_t code, const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  struct tlv_out t = {0};
  tlv_u32(&t, F_ERROR_CODE, code);
  tlv_str(&t, F_MESSAGE, msg);
  port_send(T_ERROR, session, t.buf, t.len); /* a 512-byte message always fits */
}
