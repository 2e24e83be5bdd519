/* mvm-agent: runs in the guest, serves the host over the virtio-serial port org.mvm.agent.
 * One thread, one poll loop: frames from the host, the sessions' pipes, SIGCHLD through a signalfd.
 * Usage: mvm-agent [--port PATH] */
#include "agent.h"
#include "proto.h"
#include "wire.h"
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#define REAP_POLL_MS 100 /* without a signalfd, how often exited commands are looked for */

static uint8_t rbuf[MVM_HEADER_SIZE + MVM_MAX_PAYLOAD];
static size_t have;
static uint64_t discard_left; /* bytes of a refused oversized frame still to skip */
static int resyncing;         /* looking for the next valid header after garbage */

void send_hello(const uint64_t *answering, const char *const *errors, int nerrors) {
  struct tlv_out t = {0};
  struct utsname u;
  char host[256] = "";
  const char *init_ms = getenv("MVM_INIT_UPTIME_MS");
  tlv_u32(&t, F_PROTO, MVM_PROTO_VERSION);
  tlv_str(&t, F_AGENT_VERSION, AGENT_VERSION);
  static const char *caps[] = {"exec", "stdin", "signal", "window", "poweroff", "timeout", "pty", "files", "exit-ack", "identity", "forward", "watch"};
  for (size_t i = 0; i < sizeof caps / sizeof *caps; i++) tlv_str(&t, F_CAP, caps[i]);
  tlv_u32(&t, F_MAX_PAYLOAD, MVM_MAX_PAYLOAD);
  tlv_u32(&t, F_WINDOW, MVM_WINDOW);
  tlv_u32(&t, F_MAX_SESSIONS, MVM_MAX_SESSIONS);
  tlv_u64(&t, F_UPTIME_MS, (uint64_t)uptime_ms());
  if (init_ms) tlv_u64(&t, F_INIT_UPTIME_MS, strtoull(init_ms, NULL, 10));
  if (uname(&u) == 0) tlv_str(&t, F_KERNEL, u.release);
  gethostname(host, sizeof host - 1);
  tlv_str(&t, F_HOSTNAME, host);
  tlv_u32(&t, F_AGENT_PID, (uint32_t)getpid());
  if (answering) tlv_u64(&t, F_REALTIME_NS, *answering);
  for (int i = 0; i < nerrors; i++) tlv_str(&t, F_IDENTITY_ERROR, errors[i]);
  port_send_tlv(T_HELLO, 0, &t);
}

static void poweroff(void) {
  port_send(T_POWEROFF_ACK, 0, NULL, 0);
  /* mvm-init (PID 1) turns SIGUSR2 into an orderly power-off, as busybox init does. */
  if (kill(1, SIGUSR2) < 0) logmsg("cannot signal init: %s", strerror(errno));
}

static void dispatch(const struct frame_header *h, const uint8_t *p) {
  if (h->version != MVM_PROTO_VERSION) {
    send_error(h->session, E_UNSUPPORTED_VERSION, "protocol version %u is not supported (this agent speaks %d)",
               h->version, MVM_PROTO_VERSION);
    return;
  }
  switch (h->type) {
    case T_HELLO_REQ: send_hello(NULL, NULL, 0); break;
    case T_EXEC: session_exec(h->session, p, h->length); break;
    case T_STDIN:
      if (forward_owns(h->session)) forward_data(h->session, p, h->length);
      else if (files_owns(h->session)) files_data(h->session, p, h->length);
      else session_stdin(h->session, p, h->length);
      break;
    case T_SIGNAL:
      if (forward_owns(h->session)) forward_cancel(h->session);
      else if (watch_owns(h->session)) watch_cancel(h->session);
      else if (files_owns(h->session)) files_cancel(h->session);
      else session_signal(h->session, p, h->length);
      break;
    case T_WINDOW:
      if (files_owns(h->session) || forward_owns(h->session) || watch_owns(h->session)) {
        struct tlv_iter it = {p, h->length};
        uint16_t tag; const uint8_t *v; uint32_t n, bytes = 0;
        while (tlv_next(&it, &tag, &v, &n) > 0) if (tag == F_BYTES) tlv_as_u32(v, n, &bytes);
        if (forward_owns(h->session)) forward_window(h->session, bytes);
        else if (watch_owns(h->session)) watch_window(h->session, bytes);
        else files_window(h->session, bytes);
      } else {
        session_window(h->session, p, h->length);
      }
      break;
    case T_RESIZE: session_resize(h->session, p, h->length); break;
    case T_LIST: sessions_list(); break;
    case T_EXIT_ACK: session_exit_ack(h->session); break;
    case T_IDENTITY: identity_apply(h->session, p, h->length); break;
    case T_FS: files_fs(h->session, p, h->length); break;
    case T_READ: files_read(h->session, p, h->length); break;
    case T_WRITE: files_write(h->session, p, h->length); break;
    case T_FORWARD: forward_open(h->session, p, h->length); break;
    case T_WATCH: watch_start(h->session, p, h->length); break;
    case T_POWEROFF: poweroff(); break;
    default: send_error(h->session, E_UNKNOWN_TYPE, "unknown frame type 0x%02x", h->type);
  }
}

static void consume(size_t n) {
  memmove(rbuf, rbuf + n, have - n);
  have -= n;
}

/* Takes every whole frame out of the buffer, then moves what is left to the front once (not after each
 * frame: with bulk data that copying cost as much as the data). Garbage is skipped to the next valid header. */
static void parse_frames(void) {
  size_t off = 0;
  for (;;) {
    if (discard_left) {
      size_t n = discard_left < have - off ? discard_left : have - off;
      off += n;
      discard_left -= n;
      if (discard_left) break;
    }
    if (have - off < MVM_HEADER_SIZE) break;
    struct frame_header h;
    if (header_decode(rbuf + off, &h) < 0) {
      if (!resyncing) send_error(0, E_BAD_FRAME, "bad frame header; skipping to the next valid frame");
      resyncing = 1;
      uint8_t *next = memchr(rbuf + off + 1, MVM_MAGIC0, have - off - 1);
      off = next ? (size_t)(next - rbuf) : have;
      continue;
    }
    resyncing = 0;
    if (h.length > MVM_MAX_PAYLOAD) {
      send_error(h.session, E_FRAME_TOO_LARGE, "frame of %u bytes is over the limit of %d", h.length, MVM_MAX_PAYLOAD);
      off += MVM_HEADER_SIZE;
      discard_left = h.length;
      continue;
    }
    if (have - off < MVM_HEADER_SIZE + h.length) break;
    dispatch(&h, rbuf + off + MVM_HEADER_SIZE);
    off += MVM_HEADER_SIZE + h.length;
  }
  if (off) consume(off); /* never for nothing: moving a partial frame onto itself on every read is slow */
}

/* Reads what the port has. Returns 0 normally, -1 when the host has gone away. */
static int read_port(void) {
  for (;;) {
    ssize_t r = read(port_fd(), rbuf + have, sizeof rbuf - have);
    if (r > 0) { have += r; parse_frames(); continue; }
    if (r == 0) {
      /* virtio-serial reads 0 while no host is connected, once what the old host sent has been read: what
       * is left is a frame it never finished, which must not swallow the next host's first bytes. */
      have = 0;
      discard_left = 0;
      resyncing = 0;
      return -1;
    }
    if (errno == EINTR) continue;
    return 0; /* EAGAIN */
  }
}

int main(int argc, char **argv) {
  const char *port = NULL;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--port") == 0 && i + 1 < argc) port = argv[++i];
    else { fprintf(stderr, "usage: mvm-agent [--port PATH]\n"); return 2; }
  }
  signal(SIGPIPE, SIG_IGN);
  sigset_t chld;
  sigemptyset(&chld);
  sigaddset(&chld, SIGCHLD);
  sigprocmask(SIG_BLOCK, &chld, NULL);
  int sfd = signalfd(-1, &chld, SFD_NONBLOCK | SFD_CLOEXEC);
  /* Without it (out of descriptors or memory) children are still reaped: the loop then polls for them. */
  if (sfd < 0) logmsg("signalfd: %s; checking for exited commands every %d ms instead", strerror(errno), REAP_POLL_MS);
  /* Orphans of the commands come back to us, so a timeout can later reach a whole process tree. */
  prctl(PR_SET_CHILD_SUBREAPER, 1);
  mkdir("/sys/fs/cgroup/mvm", 0755); /* one cgroup per command below it (see session.c) */
  if (port_open(port) < 0) return 1;
  sessions_init();
  send_hello(NULL, NULL, 0);
  /* Tells mvm-init that the host has its hello, so the console shell may start now: starting it earlier
   * would compete with this agent for the one vCPU while the host waits (docs/boot-time.md). */
  if (getppid() == 1 && kill(1, SIGUSR1) < 0) logmsg("cannot signal init: %s", strerror(errno));

  struct pollfd fds[2 + 3 * MVM_MAX_SESSIONS + 64 + 16]; /* + forwards and watches */
  for (;;) {
    int n = 0, timeout = files_pump() ? 0 : sessions_next_timeout();
    int fwd_next = forward_tick();
    if (fwd_next >= 0 && (timeout < 0 || fwd_next < timeout)) timeout = fwd_next;
    fds[n++] = (struct pollfd){.fd = sfd, .events = POLLIN};
    if (port_connected()) fds[n++] = (struct pollfd){.fd = port_fd(), .events = POLLIN};
    else if (timeout < 0 || timeout > 50) timeout = 50; /* the port gives no event when the host returns */
    if (sfd < 0 && (timeout < 0 || timeout > REAP_POLL_MS)) timeout = REAP_POLL_MS;
    int first = n;
    n += sessions_poll_fds(fds + n, (int)(sizeof fds / sizeof *fds) - n, port_connected());
    int fwd_first = n;
    n += forward_poll_fds(fds + n, (int)(sizeof fds / sizeof *fds) - n, port_connected());
    int watch_first = n;
    n += watch_poll_fds(fds + n, (int)(sizeof fds / sizeof *fds) - n, port_connected());
    int r = poll(fds, n, timeout);
    if (r < 0 && errno != EINTR) { logmsg("poll: %s", strerror(errno)); sleep(1); continue; }
    if (sfd < 0) {
      sessions_reap();
    } else if (fds[0].revents) {
      struct signalfd_siginfo si;
      while (read(sfd, &si, sizeof si) > 0) {}
      sessions_reap();
    }
    if (!port_connected()) {
      if (read_port() == 0) { port_set_connected(1); sessions_new_host(); send_hello(NULL, NULL, 0); }
    } else if (fds[1].revents & (POLLIN | POLLHUP | POLLERR)) {
      if (read_port() < 0) { port_set_connected(0); files_abort_all(); forward_abort_all(); watch_abort_all(); }
    }
    if (r > 0) {
      sessions_poll_done(fds + first, fwd_first - first);
      forward_poll_done(fds + fwd_first, watch_first - fwd_first);
      watch_poll_done(fds + watch_first, n - watch_first);
    }
    sessions_tick();
  }
}
