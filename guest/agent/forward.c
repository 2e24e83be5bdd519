/* TCP forwards (capability "forward"): FORWARD opens a connection to a port inside the guest, and its
 * bytes travel as STDIN (host -> guest) and STDOUT (guest -> host) frames under the session's windows, as
 * a command's do: the agent stops reading the socket when it has no output credit, and queues at most the
 * stdin window. An empty STDIN shuts the socket's write side; an empty STDOUT tells the host the guest
 * side ended. EXIT follows once both directions are done (or at once with MESSAGE on an error). Like
 * transfers, forwards do not survive the host going away. */
#include "agent.h"
#include "proto.h"
#include "wire.h"
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_FORWARDS 64
#define FWD_CHUNK (64 * 1024)
#define CONNECT_MS 10000 /* a connect that takes longer (an address that drops SYNs) fails */

struct forward {
  int used, fd, connecting;
  int rd_done;   /* the guest side sent EOF, and the empty STDOUT that says so went out */
  int in_eof;    /* the host half-closed: shut the write side once the queue is written */
  int wr_done;   /* the write side is shut */
  uint32_t id, out_credit, in_consumed;
  uint8_t *inq;
  uint32_t inq_off, inq_len;
  int64_t deadline;
  char where[80]; /* "127.0.0.1:80", for messages */
};

static struct forward fwds[MAX_FORWARDS];
static uint8_t buf[FWD_CHUNK];

static struct forward *find(uint32_t id) {
  for (int i = 0; i < MAX_FORWARDS; i++)
    if (fwds[i].used && fwds[i].id == id) return &fwds[i];
  return NULL;
}

int forward_owns(uint32_t id) { return find(id) != NULL; }

static void release(struct forward *f) {
  if (f->fd >= 0) close(f->fd);
  free(f->inq);
  memset(f, 0, sizeof *f);
  f->fd = -1;
}

/* Ends the forward with EXIT: status 0, or 1 with errno and a message when something failed. */
static void finish(struct forward *f, int err, const char *what) {
  struct tlv_out t = {0};
  tlv_u32(&t, F_EXIT_CODE, err ? 1 : 0);
  if (err) {
    char msg[200];
    snprintf(msg, sizeof msg, "%s %s: %s", what, f->where, strerror(err));
    tlv_u32(&t, F_ERRNO, (uint32_t)err);
    tlv_str(&t, F_MESSAGE, msg);
  }
  port_send_tlv(T_EXIT, f->id, &t);
  release(f);
}

static void exit_error(uint32_t id, int err, const char *msg) {
  struct tlv_out t = {0};
  tlv_u32(&t, F_EXIT_CODE, 1);
  if (err) tlv_u32(&t, F_ERRNO, (uint32_t)err);
  tlv_str(&t, F_MESSAGE, msg);
  port_send_tlv(T_EXIT, id, &t);
}

static void done_if_both(struct forward *f) {
  if (f->rd_done && f->wr_done) finish(f, 0, NULL);
}

static void started(struct forward *f) {
  f->connecting = 0;
  int one = 1;
  setsockopt(f->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one); /* small requests should not wait */
  port_send(T_STARTED, f->id, NULL, 0);
}

void forward_open(uint32_t id, const uint8_t *payload, uint32_t len) {
  if (id == 0 || find(id) || files_owns(id) || watch_owns(id)) { send_error(id, E_SESSION_EXISTS, "session %u is already in use", id); return; }
  struct tlv_iter it = {payload, len};
  uint16_t tag; const uint8_t *v; uint32_t n, port = 0; int k;
  char addr[64] = "127.0.0.1";
  while ((k = tlv_next(&it, &tag, &v, &n)) > 0) {
    if (tag == F_PORT && tlv_as_u32(v, n, &port) < 0) k = -1;
    if (tag == F_ADDRESS) {
      if (n == 0 || n >= sizeof addr || memchr(v, 0, n)) { k = -1; break; }
      memcpy(addr, v, n);
      addr[n] = 0;
    }
    if (k < 0) break;
  }
  if (k < 0 || port == 0 || port > 65535) { send_error(id, E_BAD_MESSAGE, "forward needs a PORT 1-65535"); return; }
  struct sockaddr_storage ss = {0};
  socklen_t sl;
  struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
  struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
  if (inet_pton(AF_INET, addr, &s4->sin_addr) == 1) {
    s4->sin_family = AF_INET; s4->sin_port = htons((uint16_t)port); sl = sizeof *s4;
  } else if (inet_pton(AF_INET6, addr, &s6->sin6_addr) == 1) {
    s6->sin6_family = AF_INET6; s6->sin6_port = htons((uint16_t)port); sl = sizeof *s6;
  } else {
    char msg[128];
    snprintf(msg, sizeof msg, "forward: %s is not an IPv4 or IPv6 address", addr);
    exit_error(id, EINVAL, msg);
    return;
  }
  struct forward *f = NULL;
  for (int i = 0; i < MAX_FORWARDS && !f; i++) if (!fwds[i].used) f = &fwds[i];
  if (!f) { send_error(id, E_TOO_MANY_SESSIONS, "at most %d forwarded connections at once", MAX_FORWARDS); return; }
  memset(f, 0, sizeof *f);
  f->used = 1;
  f->id = id;
  f->out_credit = MVM_WINDOW;
  snprintf(f->where, sizeof f->where, ss.ss_family == AF_INET6 ? "[%s]:%u" : "%s:%u", addr, port);
  f->fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (f->fd < 0) { finish(f, errno, "socket for"); return; }
  if (connect(f->fd, (struct sockaddr *)&ss, sl) == 0) { started(f); return; }
  if (errno != EINPROGRESS) { finish(f, errno, "connect"); return; }
  f->connecting = 1;
  f->deadline = uptime_ms() + CONNECT_MS;
}

static void grant(struct forward *f, int force) {
  if (f->in_consumed && (force || f->in_consumed >= MVM_WINDOW / 4)) {
    struct tlv_out t = {0};
    tlv_u32(&t, F_BYTES, f->in_consumed);
    port_send_tlv(T_STDIN_WINDOW, f->id, &t);
    f->in_consumed = 0;
  }
}

/* Writes what is queued; shuts the write side after the host's EOF once the queue is empty. Returns -1
 * when the forward ended (a write error). */
static int flush(struct forward *f) {
  while (!f->connecting && !f->wr_done && f->inq_off < f->inq_len) {
    ssize_t w = send(f->fd, f->inq + f->inq_off, f->inq_len - f->inq_off, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0 && errno == EAGAIN) break;
    if (w < 0) { finish(f, errno, "send to"); return -1; }
    f->inq_off += (uint32_t)w;
    f->in_consumed += (uint32_t)w;
  }
  if (f->inq_off == f->inq_len) {
    f->inq_off = f->inq_len = 0;
    if (f->in_eof && !f->wr_done && !f->connecting) {
      shutdown(f->fd, SHUT_WR);
      f->wr_done = 1;
    }
    grant(f, 1);
  } else {
    grant(f, 0);
  }
  return 0;
}

void forward_data(uint32_t id, const uint8_t *data, uint32_t len) {
  struct forward *f = find(id);
  if (!f) return;
  if (len == 0) { f->in_eof = 1; if (flush(f) == 0) done_if_both(f); return; }
  if (f->in_eof || f->wr_done) { send_error(id, E_BAD_MESSAGE, "data after the end of the forward's input; dropped"); return; }
  if (!f->inq && !(f->inq = malloc(MVM_WINDOW))) { finish(f, ENOMEM, "buffer for"); return; }
  if (f->inq_off > 0) {
    memmove(f->inq, f->inq + f->inq_off, f->inq_len - f->inq_off);
    f->inq_len -= f->inq_off; f->inq_off = 0;
  }
  if (len > MVM_WINDOW - f->inq_len) { send_error(id, E_BAD_MESSAGE, "data sent beyond the granted window; dropped"); return; }
  memcpy(f->inq + f->inq_len, data, len);
  f->inq_len += len;
  flush(f);
}

void forward_window(uint32_t id, uint32_t bytes) {
  struct forward *f = find(id);
  if (f) f->out_credit = (uint64_t)f->out_credit + bytes > 0x7fffffff ? 0x7fffffff : f->out_credit + bytes;
}

/* SIGNAL: the host gives up on the connection. The socket is closed (a reset if data was pending). */
void forward_cancel(uint32_t id) {
  struct forward *f = find(id);
  if (f) finish(f, 0, NULL);
}

void forward_abort_all(void) {
  for (int i = 0; i < MAX_FORWARDS; i++)
    if (fwds[i].used) release(&fwds[i]);
}

int forward_poll_fds(struct pollfd *fds, int max, int output_allowed) {
  int n = 0;
  for (int i = 0; i < MAX_FORWARDS && n < max; i++) {
    struct forward *f = &fwds[i];
    if (!f->used) continue;
    short ev = 0;
    if (f->connecting || (!f->wr_done && f->inq_off < f->inq_len)) ev |= POLLOUT;
    if (!f->connecting && !f->rd_done && output_allowed && f->out_credit > 0) ev |= POLLIN;
    if (ev) fds[n++] = (struct pollfd){.fd = f->fd, .events = ev};
  }
  return n;
}

static void pump(struct forward *f) {
  uint32_t want = f->out_credit < FWD_CHUNK ? f->out_credit : FWD_CHUNK;
  ssize_t r = recv(f->fd, buf, want, 0);
  if (r < 0 && (errno == EAGAIN || errno == EINTR)) return;
  if (r < 0) { finish(f, errno, "recv from"); return; }
  if (r == 0) {
    port_send(T_STDOUT, f->id, NULL, 0);
    f->rd_done = 1;
    done_if_both(f);
    return;
  }
  f->out_credit -= (uint32_t)r;
  port_send(T_STDOUT, f->id, buf, (uint32_t)r);
}

void forward_poll_done(struct pollfd *fds, int n) {
  for (int k = 0; k < n; k++) {
    if (!fds[k].revents) continue;
    struct forward *f = NULL;
    for (int i = 0; i < MAX_FORWARDS && !f; i++) if (fwds[i].used && fwds[i].fd == fds[k].fd) f = &fwds[i];
    if (!f) continue;
    if (f->connecting) {
      int err = 0;
      socklen_t el = sizeof err;
      getsockopt(f->fd, SOL_SOCKET, SO_ERROR, &err, &el);
      if (err) { finish(f, err, "connect"); continue; }
      /* The revents may be stale: a frame read since poll() can have closed a forward and opened this one
       * on the same descriptor number. Connected only if the socket has a peer. */
      struct sockaddr_storage peer;
      socklen_t pl = sizeof peer;
      if (getpeername(f->fd, (struct sockaddr *)&peer, &pl) < 0) continue;
      started(f);
      if (flush(f) < 0) continue;
      continue;
    }
    if ((fds[k].revents & POLLOUT) && flush(f) < 0) continue;
    if (fds[k].revents & (POLLIN | POLLHUP | POLLERR)) {
      if (f->rd_done) { /* POLLERR after our read side ended: take the error */
        int err = 0; socklen_t el = sizeof err;
        getsockopt(f->fd, SOL_SOCKET, SO_ERROR, &err, &el);
        if (err) finish(f, err, "connection to");
        continue;
      }
      if (f->out_credit > 0) pump(f);
    }
  }
}

/* Connects that take too long fail; returns the milliseconds until the next such deadline, or -1. */
int forward_tick(void) {
  int next = -1;
  int64_t now = uptime_ms();
  for (int i = 0; i < MAX_FORWARDS; i++) {
    struct forward *f = &fwds[i];
    if (!f->used || !f->connecting) continue;
    if (now >= f->deadline) { finish(f, ETIMEDOUT, "connect"); continue; }
    int left = (int)(f->deadline - now);
    if (next < 0 || left < next) next = left;
  }
  return next;
}
