/* Exec sessions: one command per session id, its pipes, flow-control credit and exit.
 * A session lives until the host has acknowledged its EXIT (EXIT_ACK), not merely until the EXIT was sent:
 * a host that goes away first (a daemon killed with -9, or the frame lost as the connection dropped)
 * leaves the exit for the next host, which finds it through LIST. */
#include "agent.h"
#include "proto.h"
#include "wire.h"
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* After the command exits, its pipes may stay open in a background grandchild; stop waiting after this. */
#define EXIT_GRACE_MS 250

struct session {
  int used;
  uint32_t id;
  pid_t pid;
  int out_fd, err_fd, in_fd;
  int exited, status;
  int64_t exited_at;
  int reported;            /* EXIT sent: kept, for LIST, until the host acknowledges it (EXIT_ACK) */
  uint64_t reported_seq;   /* the order of reports: the oldest unacknowledged one makes room first */
  int exit_code, term_signal;
  char *message;           /* why the command could not start, sent with its EXIT */
  int64_t deadline;        /* 0, or when the command is killed for taking too long */
  int timed_out;
  int tty;                 /* out_fd is a pty master: stdout and stderr in one stream */
  char command[256];       /* argv, NUL-separated (truncated), for LIST */
  uint32_t command_len;
  char cgroup[64];         /* the command's own cgroup: killing it reaches every descendant */
  uint32_t out_credit;
  /* stdin bytes received but not yet written to the command; bounded by the window the host honours. */
  uint8_t *inq;
  uint32_t inq_len, inq_off;
  int in_eof;              /* host sent EOF: close stdin once the queue drains */
  uint32_t in_consumed;    /* written to the command, not yet granted back to the host */
};

static struct session sessions[MVM_MAX_SESSIONS];
static uint8_t readbuf[MVM_DATA_CHUNK];
static uint64_t reports;

void sessions_init(void) {
  for (int i = 0; i < MVM_MAX_SESSIONS; i++) sessions[i].used = 0;
}

static struct session *find(uint32_t id) {
  for (int i = 0; i < MVM_MAX_SESSIONS; i++)
    if (sessions[i].used && sessions[i].id == id) return &sessions[i];
  return NULL;
}

/* A session whose EXIT has not been sent yet: the only kind stdin, signals and window changes reach. */
static struct session *find_live(uint32_t id) {
  struct session *s = find(id);
  return s && !s->reported ? s : NULL;
}

static void close_fd(int *fd) {
  if (*fd >= 0) close(*fd);
  *fd = -1;
}

#define CGROUP_ROOT "/sys/fs/cgroup/mvm"

/* Ends every process the command started, wherever it went (setsid, double fork): cgroup.kill sends
 * SIGKILL to the whole cgroup. Without cgroups, its process group is the best we have. */
static void kill_tree(struct session *s) {
  if (s->cgroup[0]) {
    char path[96];
    snprintf(path, sizeof path, "%s/cgroup.kill", s->cgroup);
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd >= 0) {
      int ok = write(fd, "1", 1) == 1;
      close(fd);
      if (ok) return;
    }
  }
  if (kill(-s->pid, SIGKILL) < 0) kill(s->pid, SIGKILL);
}

static void session_free(struct session *s) {
  if (s->cgroup[0]) rmdir(s->cgroup); /* fails harmlessly while a straggler is still being reaped */
  close_fd(&s->out_fd);
  close_fd(&s->err_fd);
  close_fd(&s->in_fd);
  free(s->inq);
  s->inq = NULL;
  free(s->message);
  s->message = NULL;
  s->used = 0;
}

static void send_exit(const struct session *s) {
  struct tlv_out t = {0};
  if (s->timed_out) tlv_u32(&t, F_TIMED_OUT, 1);
  if (s->term_signal) tlv_u32(&t, F_TERM_SIGNAL, (uint32_t)s->term_signal);
  else tlv_u32(&t, F_EXIT_CODE, (uint32_t)s->exit_code);
  if (s->message) tlv_str(&t, F_MESSAGE, s->message);
  port_send_tlv(T_EXIT, s->id, &t);
}

/* The command is over and all its output forwarded: send its EXIT, and keep the session (pipes closed,
 * cgroup gone) until the host acknowledges it. */
static void report_exit(struct session *s) {
  if (s->cgroup[0]) rmdir(s->cgroup);
  s->cgroup[0] = 0;
  close_fd(&s->out_fd);
  close_fd(&s->err_fd);
  close_fd(&s->in_fd);
  free(s->inq);
  s->inq = NULL;
  s->exited = 1;
  s->reported = 1;
  s->reported_seq = ++reports;
  send_exit(s);
}

void session_exit_ack(uint32_t id) {
  struct session *s = find(id);
  if (s && s->reported) session_free(s); /* an ack for anything else (a duplicate) changes nothing */
}

/* A slot for a new session: a free one, else the one whose exit has waited longest for an ack (a host
 * that never acknowledges, an older one, must not use up every slot). */
static struct session *free_slot(void) {
  struct session *oldest = NULL;
  for (int i = 0; i < MVM_MAX_SESSIONS; i++) {
    struct session *s = &sessions[i];
    if (!s->used) return s;
    if (s->reported && (!oldest || s->reported_seq < oldest->reported_seq)) oldest = s;
  }
  if (oldest) {
    logmsg("forgetting the unacknowledged exit of session %u to make room", oldest->id);
    session_free(oldest);
  }
  return oldest;
}

static void save_command(struct session *s, char **argv, int argc) {
  s->command_len = 0;
  for (int i = 0; i < argc && s->command_len < sizeof s->command; i++) {
    uint32_t n = (uint32_t)strlen(argv[i]) + 1, room = sizeof s->command - s->command_len;
    memcpy(s->command + s->command_len, argv[i], n < room ? n : room);
    s->command_len += n < room ? n : room;
  }
}

/* What the child reports through its close-on-exec pipe when it could not start the command. */
struct spawn_failure {
  int stage; /* 1 chdir, 2 user, 3 exec */
  int err;
};

static int parse_user(const char *user, uid_t *uid, gid_t *gid, const char **name, const char **home) {
  struct passwd *pw;
  int numeric = *user != 0;
  for (const char *c = user; *c; c++) numeric &= isdigit((unsigned char)*c) != 0;
  pw = numeric ? getpwuid((uid_t)strtoul(user, NULL, 10)) : getpwnam(user);
  if (pw) {
    *uid = pw->pw_uid; *gid = pw->pw_gid; *name = pw->pw_name; *home = pw->pw_dir;
    return 0;
  }
  if (!numeric) return -1;
  *uid = *gid = (uid_t)strtoul(user, NULL, 10);
  *name = NULL; *home = "/";
  return 0;
}

/* Runs in the forked child: never returns. */
static void child_exec(char **argv, char **env, int nenv, const char *cwd, const char *user, int errfd, const char *cgroup, const char *tty) {
  struct spawn_failure f = {0, 0};
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
  signal(SIGPIPE, SIG_DFL);
  setsid(); /* its own process group, so signals reach the whole tree */
  if (tty) { /* the pty becomes the controlling terminal: job control, ^C and window changes work */
    int fd = open(tty, O_RDWR);
    if (fd < 0 || ioctl(fd, TIOCSCTTY, 0) < 0) { f.stage = 4; f.err = errno; goto fail; }
    dup2(fd, 0); dup2(fd, 1); dup2(fd, 2);
    if (fd > 2) close(fd);
    setenv("TERM", "xterm-256color", 0);
  }
  if (cgroup[0]) { /* and its own cgroup, so a timeout reaches even what leaves the group */
    char path[96];
    snprintf(path, sizeof path, "%s/cgroup.procs", cgroup);
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd >= 0) { (void)!write(fd, "0", 1); close(fd); }
  }
  if (user && *user) {
    uid_t uid; gid_t gid; const char *name, *home;
    if (parse_user(user, &uid, &gid, &name, &home) < 0) { f.stage = 2; f.err = ENOENT; goto fail; }
    if ((name ? initgroups(name, gid) : setgroups(0, NULL)) < 0 || setgid(gid) < 0 || setuid(uid) < 0) {
      f.stage = 2; f.err = errno; goto fail;
    }
    setenv("HOME", home, 1);
    if (name) { setenv("USER", name, 1); setenv("LOGNAME", name, 1); }
  }
  for (int i = 0; i < nenv; i++) putenv(env[i]);
  if (cwd && *cwd && chdir(cwd) < 0) { f.stage = 1; f.err = errno; goto fail; }
  execvp(argv[0], argv);
  f.stage = 3; f.err = errno;
fail:
  (void)!write(errfd, &f, sizeof f);
  _exit(127);
}

static char *dup_field(const uint8_t *v, uint32_t n) {
  char *s = malloc(n + 1);
  if (!s) return NULL;
  memcpy(s, v, n);
  s[n] = 0;
  return memchr(v, 0, n) ? (free(s), NULL) : s; /* an embedded NUL cannot be passed to exec */
}

static void set_nonblock(int fd) { fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK); }

void session_exec(uint32_t id, const uint8_t *payload, uint32_t len) {
  if (id == 0) { send_error(0, E_BAD_MESSAGE, "exec needs a non-zero session id"); return; }
  struct session *old = find(id);
  if (old && !old->reported) { send_error(id, E_SESSION_EXISTS, "session %u is already running", id); return; }
  /* A host that reuses the id of an ended session it never acknowledged has no use for that exit. */
  if (old) session_free(old);
  struct session *s = free_slot();
  if (!s) { send_error(id, E_TOO_MANY_SESSIONS, "at most %d sessions may run at once", MVM_MAX_SESSIONS); return; }

  /* Every string is copied out of the frame; the arrays are sized by the payload, which is capped. */
  uint32_t max = len / 6 + 1;
  char **argv = calloc(max + 1, sizeof *argv), **env = calloc(max + 1, sizeof *env);
  char *cwd = NULL, *user = NULL;
  uint32_t timeout_ms = 0, rows = 0, cols = 0;
  int argc = 0, nenv = 0, want_stdin = 0, want_tty = 0, bad = !argv || !env;
  /* Everything below is released on one path (done:); a descriptor handed to the session is set to -1. */
  int out[2] = {-1, -1}, err[2] = {-1, -1}, in[2] = {-1, -1}, ep[2] = {-1, -1};
  char tty[64] = "", cgroup[64] = "";
  struct tlv_iter it = {payload, len};
  uint16_t tag; const uint8_t *v; uint32_t n; int r;
  while (!bad && (r = tlv_next(&it, &tag, &v, &n)) != 0) {
    if (r < 0) { bad = 1; break; }
    char *str = NULL;
    if (tag == F_ARG || tag == F_ENV || tag == F_CWD || tag == F_USER) {
      if (!(str = dup_field(v, n))) { bad = 1; break; }
    }
    switch (tag) {
      case F_ARG: argv[argc++] = str; break;
      case F_ENV: if (!strchr(str, '=')) { free(str); bad = 1; } else env[nenv++] = str; break;
      case F_CWD: free(cwd); cwd = str; break;
      case F_USER: free(user); user = str; break;
      case F_STDIN: want_stdin = n == 1 && v[0] == 1; break;
      case F_TIMEOUT_MS: if (tlv_as_u32(v, n, &timeout_ms) < 0) bad = 1; break;
      case F_TTY: want_tty = n == 1 && v[0] == 1; break;
      case F_ROWS: if (tlv_as_u32(v, n, &rows) < 0) bad = 1; break;
      case F_COLS: if (tlv_as_u32(v, n, &cols) < 0) bad = 1; break;
      default: break; /* unknown fields are ignored: newer hosts may send more */
    }
  }
  if (bad || argc == 0 || !argv[0][0]) {
    send_error(id, E_BAD_MESSAGE, "exec needs at least one non-empty argument, and strings without NUL bytes");
    goto done;
  }

  if (want_tty) { /* a pty instead of pipes: the master is the command's stdin and its output */
    out[0] = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (out[0] < 0 || grantpt(out[0]) < 0 || unlockpt(out[0]) < 0 || ptsname_r(out[0], tty, sizeof tty) != 0) goto spawn_fail;
    struct winsize ws = {.ws_row = rows ? rows : 24, .ws_col = cols ? cols : 80};
    ioctl(out[0], TIOCSWINSZ, &ws);
    if ((in[1] = fcntl(out[0], F_DUPFD_CLOEXEC, 0)) < 0) goto spawn_fail;
  } else {
    if (pipe2(out, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0) goto spawn_fail;
    if (want_stdin ? pipe2(in, O_CLOEXEC) < 0 : (in[0] = open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0) goto spawn_fail;
  }
  if (pipe2(ep, O_CLOEXEC) < 0) goto spawn_fail;
  snprintf(cgroup, sizeof cgroup, "%s/s%u", CGROUP_ROOT, id);
  if (mkdir(cgroup, 0755) < 0 && errno != EEXIST) cgroup[0] = 0;
  pid_t pid = fork();
  if (pid == 0) {
    if (!want_tty) { dup2(in[0], 0); dup2(out[1], 1); dup2(err[1], 2); }
    child_exec(argv, env, nenv, cwd, user, ep[1], cgroup, want_tty ? tty : NULL);
  }
  if (pid < 0) goto spawn_fail;
  close_fd(&out[1]); close_fd(&err[1]); close_fd(&in[0]); close_fd(&ep[1]);
  struct spawn_failure f;
  ssize_t got;
  do got = read(ep[0], &f, sizeof f); while (got < 0 && errno == EINTR);
  if (got == sizeof f) {
    /* The child is gone already; reap it here so the exit is not reported twice. */
    waitpid(pid, NULL, 0);
    if (cgroup[0]) rmdir(cgroup);
    char msg[600];
    const char *what = f.stage == 1 ? "cannot change to directory" : f.stage == 2 ? "cannot switch to user" : f.stage == 4 ? "cannot open the terminal" : "cannot run";
    const char *arg = f.stage == 1 ? cwd : f.stage == 2 ? user : f.stage == 4 ? "" : argv[0];
    snprintf(msg, sizeof msg, "%s %s: %s", what, arg, f.stage == 2 && f.err == ENOENT ? "no such user" : strerror(f.err));
    /* Shell conventions: 127 when the command does not exist, 126 when it exists but cannot run. This
     * exit is kept until acknowledged too: it may be the VM's own command's. */
    *s = (struct session){.used = 1, .id = id, .out_fd = -1, .err_fd = -1, .in_fd = -1, .tty = want_tty,
                          .exit_code = f.stage == 3 && f.err == ENOENT ? 127 : 126, .message = strdup(msg)};
    save_command(s, argv, argc);
    report_exit(s);
    goto done;
  }
  *s = (struct session){.used = 1, .id = id, .pid = pid, .out_fd = out[0], .err_fd = err[0], .in_fd = in[1],
                        .out_credit = MVM_WINDOW, .deadline = timeout_ms ? uptime_ms() + timeout_ms : 0, .tty = want_tty};
  out[0] = err[0] = in[1] = -1; /* the session's now */
  snprintf(s->cgroup, sizeof s->cgroup, "%s", cgroup);
  save_command(s, argv, argc);
  set_nonblock(s->out_fd);
  if (s->err_fd >= 0) set_nonblock(s->err_fd);
  if (s->in_fd >= 0) set_nonblock(s->in_fd);
  struct tlv_out t = {0};
  tlv_u32(&t, F_PID, (uint32_t)pid);
  port_send_tlv(T_STARTED, id, &t);
  goto done;

spawn_fail:
  send_error(id, E_SPAWN_FAILED, "cannot start a process: %s", strerror(errno));
  if (cgroup[0]) rmdir(cgroup);
done:
  for (int i = 0; i < 2; i++) { close_fd(&out[i]); close_fd(&err[i]); close_fd(&in[i]); close_fd(&ep[i]); }
  for (int i = 0; i < argc; i++) free(argv[i]);
  for (int i = 0; i < nenv; i++) free(env[i]);
  free(argv); free(env); free(cwd); free(user);
}

static void grant_stdin(struct session *s, int force) {
  if (s->in_consumed && (force || s->in_consumed >= MVM_WINDOW / 4)) {
    struct tlv_out t = {0};
    tlv_u32(&t, F_BYTES, s->in_consumed);
    port_send_tlv(T_STDIN_WINDOW, s->id, &t);
    s->in_consumed = 0;
  }
}

/* Writes queued stdin to the command; closes its stdin after EOF once the queue is empty. */
static void flush_stdin(struct session *s) {
  while (s->in_fd >= 0 && s->inq_off < s->inq_len) {
    ssize_t w = write(s->in_fd, s->inq + s->inq_off, s->inq_len - s->inq_off);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0 && errno == EAGAIN) break;
    if (w < 0) { /* the command closed its stdin: drop what is queued, still grant the credit back */
      s->in_consumed += s->inq_len - s->inq_off;
      s->inq_off = s->inq_len;
      close_fd(&s->in_fd);
      break;
    }
    s->inq_off += w;
    s->in_consumed += w;
  }
  if (s->inq_off == s->inq_len) {
    s->inq_off = s->inq_len = 0;
    if (s->in_eof) close_fd(&s->in_fd);
    grant_stdin(s, 1);
  } else {
    grant_stdin(s, 0);
  }
}

void session_stdin(uint32_t id, const uint8_t *data, uint32_t len) {
  struct session *s = find_live(id);
  if (!s) { send_error(id, E_UNKNOWN_SESSION, "no running session %u", id); return; }
  if (len == 0) { s->in_eof = 1; flush_stdin(s); return; }
  if (s->in_fd < 0) { s->in_consumed += len; grant_stdin(s, 1); return; } /* stdin closed: discard */
  if (!s->inq && !(s->inq = malloc(MVM_WINDOW))) { send_error(id, E_INTERNAL, "out of memory"); return; }
  if (s->inq_off > 0) { /* compact */
    memmove(s->inq, s->inq + s->inq_off, s->inq_len - s->inq_off);
    s->inq_len -= s->inq_off; s->inq_off = 0;
  }
  if (len > MVM_WINDOW - s->inq_len) {
    send_error(id, E_BAD_MESSAGE, "stdin sent beyond the granted window; data dropped");
    return;
  }
  memcpy(s->inq + s->inq_len, data, len);
  s->inq_len += len;
  flush_stdin(s);
}

void session_signal(uint32_t id, const uint8_t *payload, uint32_t len) {
  struct session *s = find_live(id);
  if (!s) { send_error(id, E_UNKNOWN_SESSION, "no running session %u", id); return; }
  struct tlv_iter it = {payload, len};
  uint16_t tag; const uint8_t *v; uint32_t n, signo = 0; int r;
  while ((r = tlv_next(&it, &tag, &v, &n)) > 0) if (tag == F_SIGNO) tlv_as_u32(v, n, &signo);
  if (r < 0 || signo == 0 || signo >= 65) { send_error(id, E_BAD_MESSAGE, "signal needs a signal number 1-64"); return; }
  if (s->exited) return;
  /* The command leads its own process group: signal the group, as a terminal would. */
  if (kill(-s->pid, (int)signo) < 0) kill(s->pid, (int)signo);
}

void session_window(uint32_t id, const uint8_t *payload, uint32_t len) {
  struct session *s = find_live(id);
  if (!s) return; /* a grant racing with the session's end is harmless */
  struct tlv_iter it = {payload, len};
  uint16_t tag; const uint8_t *v; uint32_t n, bytes = 0; int r;
  while ((r = tlv_next(&it, &tag, &v, &n)) > 0) if (tag == F_BYTES) tlv_as_u32(v, n, &bytes);
  if (r < 0) { send_error(id, E_BAD_MESSAGE, "malformed window frame"); return; }
  s->out_credit = (uint64_t)s->out_credit + bytes > 0x7fffffff ? 0x7fffffff : s->out_credit + bytes;
}

/* Every session, ended ones included: one whose command exited but whose output is still being forwarded
 * (its EXIT follows), and one whose EXIT was sent but not acknowledged: that EXIT is sent again after the
 * list, so a host that adopts the session learns how it ended even if the first EXIT went to a host that
 * has gone. */
void sessions_list(void) {
  /* One SESSION field each: id u32, pid u32 (0: it never started), tty u8, then the command's argv,
   * NUL-separated. */
  static uint8_t buf[MVM_MAX_SESSIONS * (6 + 9 + sizeof(((struct session *)0)->command))];
  size_t n = 0;
  for (int i = 0; i < MVM_MAX_SESSIONS; i++) {
    struct session *s = &sessions[i];
    if (!s->used) continue;
    uint16_t tag = F_SESSION;
    uint32_t vlen = 9 + s->command_len, pid = (uint32_t)s->pid;
    memcpy(buf + n, &tag, 2); memcpy(buf + n + 2, &vlen, 4);
    memcpy(buf + n + 6, &s->id, 4); memcpy(buf + n + 10, &pid, 4); buf[n + 14] = (uint8_t)s->tty;
    memcpy(buf + n + 15, s->command, s->command_len);
    n += 6 + vlen;
  }
  port_send(T_SESSIONS, 0, buf, (uint32_t)n);
  for (int i = 0; i < MVM_MAX_SESSIONS; i++)
    if (sessions[i].used && sessions[i].reported) send_exit(&sessions[i]);
}

void sessions_new_host(void) {
  for (int i = 0; i < MVM_MAX_SESSIONS; i++) sessions[i].out_credit = MVM_WINDOW;
}

void session_resize(uint32_t id, const uint8_t *payload, uint32_t len) {
  struct session *s = find_live(id);
  if (!s) return; /* the command ended meanwhile */
  struct tlv_iter it = {payload, len};
  uint16_t tag; const uint8_t *v; uint32_t n, rows = 0, cols = 0; int r;
  while ((r = tlv_next(&it, &tag, &v, &n)) > 0) {
    if (tag == F_ROWS) tlv_as_u32(v, n, &rows);
    else if (tag == F_COLS) tlv_as_u32(v, n, &cols);
  }
  if (r < 0 || !rows || !cols || rows > 0xffff || cols > 0xffff) { send_error(id, E_BAD_MESSAGE, "resize needs ROWS and COLS, 1-65535"); return; }
  struct winsize ws = {.ws_row = (unsigned short)rows, .ws_col = (unsigned short)cols};
  if (s->tty && s->out_fd >= 0) ioctl(s->out_fd, TIOCSWINSZ, &ws); /* the kernel sends SIGWINCH */
}

static void finish_if_done(struct session *s) {
  if (!s->exited || s->reported || s->out_fd >= 0 || s->err_fd >= 0) return;
  if (WIFSIGNALED(s->status)) s->term_signal = WTERMSIG(s->status);
  else s->exit_code = WEXITSTATUS(s->status);
  report_exit(s);
}

void sessions_reap(void) {
  int status;
  pid_t pid;
  while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
    for (int i = 0; i < MVM_MAX_SESSIONS; i++) {
      struct session *s = &sessions[i];
      if (s->used && !s->exited && s->pid == pid) {
        s->exited = 1;
        s->status = status;
        s->exited_at = uptime_ms();
        close_fd(&s->in_fd);
        finish_if_done(s);
      }
    }
  }
}

int sessions_poll_fds(struct pollfd *fds, int max, int output_allowed) {
  int n = 0;
  for (int i = 0; i < MVM_MAX_SESSIONS && n + 3 <= max; i++) {
    struct session *s = &sessions[i];
    if (!s->used) continue;
    if (output_allowed && s->out_credit > 0) {
      if (s->out_fd >= 0) fds[n++] = (struct pollfd){.fd = s->out_fd, .events = POLLIN};
      if (s->err_fd >= 0) fds[n++] = (struct pollfd){.fd = s->err_fd, .events = POLLIN};
    }
    if (s->in_fd >= 0 && s->inq_off < s->inq_len) fds[n++] = (struct pollfd){.fd = s->in_fd, .events = POLLOUT};
  }
  return n;
}

/* Reads one chunk of output (bounded by the credit) and forwards it; closes the pipe at EOF. */
static ssize_t pump_output(struct session *s, int *fd, uint8_t type) {
  uint32_t want = s->out_credit < sizeof readbuf ? s->out_credit : sizeof readbuf;
  if (want == 0 || *fd < 0) return 0;
  ssize_t r = read(*fd, readbuf, want);
  if (r > 0) {
    s->out_credit -= r;
    port_send(type, s->id, readbuf, (uint32_t)r);
  } else if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
    close_fd(fd);
  }
  return r;
}

void sessions_poll_done(struct pollfd *fds, int n) {
  for (int k = 0; k < n; k++) {
    if (!fds[k].revents) continue;
    for (int i = 0; i < MVM_MAX_SESSIONS; i++) {
      struct session *s = &sessions[i];
      if (!s->used) continue;
      if (fds[k].fd == s->out_fd) pump_output(s, &s->out_fd, T_STDOUT);
      else if (fds[k].fd == s->err_fd) pump_output(s, &s->err_fd, T_STDERR);
      else if (fds[k].fd == s->in_fd) flush_stdin(s);
      else continue;
      finish_if_done(s);
      break;
    }
  }
}

int sessions_next_timeout(void) {
  int64_t now = uptime_ms(), best = -1;
  for (int i = 0; i < MVM_MAX_SESSIONS; i++) {
    struct session *s = &sessions[i];
    if (s->used && !s->exited && s->deadline && !s->timed_out) {
      int64_t left = s->deadline - now < 0 ? 0 : s->deadline - now;
      if (best < 0 || left < best) best = left;
    }
    /* A WINDOW frame wakes those without credit; without a host, nothing is forwarded, so no hurry. */
    if (!s->used || !s->exited || s->reported || s->out_credit == 0 || !port_connected()) continue;
    int64_t left = s->exited_at + EXIT_GRACE_MS - now;
    if (left < 0) left = 0;
    if (best < 0 || left < best) best = left;
  }
  return (int)best;
}

/* Ends sessions whose command exited but whose pipes are held open by something it left behind. */
void sessions_tick(void) {
  int64_t now = uptime_ms();
  for (int i = 0; i < MVM_MAX_SESSIONS; i++) {
    struct session *s = &sessions[i];
    if (s->used && !s->exited && s->deadline && !s->timed_out && now >= s->deadline) {
      s->timed_out = 1; /* SIGKILL at once: a command that ignores SIGTERM must not outlive its time */
      kill_tree(s);
    }
    /* Without a host, output waits in the pipes (and the EXIT after it) until one connects. */
    if (!s->used || !s->exited || s->reported || now < s->exited_at + EXIT_GRACE_MS || s->out_credit == 0 || !port_connected()) continue;
    /* Forward what is already in the pipes, then stop listening to whoever still holds them. */
    while (s->out_credit > 0 && pump_output(s, &s->out_fd, T_STDOUT) > 0) {}
    while (s->out_credit > 0 && pump_output(s, &s->err_fd, T_STDERR) > 0) {}
    if (s->out_credit == 0) continue;
    close_fd(&s->out_fd);
    close_fd(&s->err_fd);
    finish_if_done(s);
  }
}
