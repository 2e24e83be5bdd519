/* Directory watches (capability "watch"): WATCH starts inotify on a directory (and, with FL_RECURSIVE, on
 * every directory below it, new ones included) and sends what changes as WATCH_EVENTS frames of EVENT
 * fields: a kind and the name relative to the watched directory. Events count against the session's
 * output window like a command's output: without credit the agent stops reading the inotify descriptor,
 * so the kernel's queue (bounded by fs.inotify.max_queued_events) fills and overflows, which the host is
 * told about (WK_OVERFLOW) rather than the agent holding events in memory. At most MAX_DIRS directories
 * per watch (WK_LIMIT names one that was left out). SIGNAL ends a watch; the host going away ends all. */
#include "agent.h"
#include "proto.h"
#include "wire.h"
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_WATCHES 16
#define MAX_DIRS 1024                /* watched directories per watch */
#define EVENTS_FLUSH (32 * 1024)     /* send a frame of events at about this size */
#define MASK (IN_CREATE | IN_MODIFY | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_ATTRIB | IN_DELETE_SELF | IN_ONLYDIR | IN_EXCL_UNLINK)

struct dir { int wd; char *rel; };

struct watch {
  int used, fd, recursive, limited, lost;
  uint32_t id, credit;
  char root[PATH_MAX];
  struct dir *dirs;
  int ndirs;
};

static struct watch watches[MAX_WATCHES];
static uint8_t out[EVENTS_FLUSH + PATH_MAX + 16];
static size_t out_len;
static char evbuf[64 * 1024] __attribute__((aligned(__alignof__(struct inotify_event))));

static struct watch *find(uint32_t id) {
  for (int i = 0; i < MAX_WATCHES; i++)
    if (watches[i].used && watches[i].id == id) return &watches[i];
  return NULL;
}

int watch_owns(uint32_t id) { return find(id) != NULL; }

static void release(struct watch *w) {
  if (w->fd >= 0) close(w->fd);
  for (int i = 0; i < w->ndirs; i++) free(w->dirs[i].rel);
  free(w->dirs);
  memset(w, 0, sizeof *w);
  w->fd = -1;
}

static void flush_events(struct watch *w) {
  if (w->lost && out_len + 7 <= w->credit) { /* events dropped for want of credit: say so */
    uint16_t tag = F_EVENT; uint32_t one = 1;
    memcpy(out + out_len, &tag, 2); memcpy(out + out_len + 2, &one, 4);
    out[out_len + 6] = WK_OVERFLOW;
    out_len += 7;
    w->lost = 0;
  }
  if (!out_len) return;
  port_send(T_WATCH_EVENTS, w->id, out, (uint32_t)out_len);
  w->credit = out_len > w->credit ? 0 : w->credit - (uint32_t)out_len;
  out_len = 0;
}

static void add_event(struct watch *w, uint8_t kind, const char *rel, const char *name) {
  char full[PATH_MAX];
  int n = snprintf(full, sizeof full, "%s%s%s", rel, rel[0] && name[0] ? "/" : "", name);
  if (n < 0 || (size_t)n >= sizeof full) return;
  uint32_t vlen = 1 + (uint32_t)n;
  uint16_t tag = F_EVENT;
  /* The same event again right behind itself (a file written in many small writes) says nothing new. */
  static size_t last_at = (size_t)-1;
  if (out_len && last_at < out_len && out_len - last_at == 6 + vlen && out[last_at + 6] == kind && !memcmp(out + last_at + 7, full, (size_t)n)) return;
  if (out_len + 6 + vlen > EVENTS_FLUSH) flush_events(w);
  /* Never beyond the credit (events can be longer than what the kernel reported): drop, and say so. */
  if ((uint64_t)out_len + 6 + vlen + 7 > w->credit) { w->lost = 1; return; }
  last_at = out_len;
  memcpy(out + out_len, &tag, 2); memcpy(out + out_len + 2, &vlen, 4);
  out[out_len + 6] = kind;
  memcpy(out + out_len + 7, full, (size_t)n);
  out_len += 6 + vlen;
}

static const char *rel_of(struct watch *w, int wd) {
  for (int i = 0; i < w->ndirs; i++) if (w->dirs[i].wd == wd) return w->dirs[i].rel;
  return NULL;
}

static void forget_wd(struct watch *w, int wd) {
  for (int i = 0; i < w->ndirs; i++) {
    if (w->dirs[i].wd != wd) continue;
    free(w->dirs[i].rel);
    w->dirs[i] = w->dirs[--w->ndirs];
    return;
  }
}

/* Watches rel (relative to the root; "" is the root) and, when recursive, the directories below it. */
static int add_dir(struct watch *w, const char *rel) {
  char path[PATH_MAX];
  if ((size_t)snprintf(path, sizeof path, "%s%s%s", w->root, rel[0] ? "/" : "", rel) >= sizeof path) return 0;
  if (w->ndirs >= MAX_DIRS) {
    if (!w->limited) add_event(w, WK_LIMIT, rel, "");
    w->limited = 1;
    return 0;
  }
  int wd = inotify_add_watch(w->fd, path, MASK | IN_DONT_FOLLOW);
  if (wd < 0) return -1;
  if (!rel_of(w, wd)) {
    struct dir *d = realloc(w->dirs, sizeof *d * (size_t)(w->ndirs + 1));
    char *r = strdup(rel);
    if (!d || !r) { free(r); if (d) w->dirs = d; inotify_rm_watch(w->fd, wd); errno = ENOMEM; return -1; }
    w->dirs = d;
    w->dirs[w->ndirs++] = (struct dir){wd, r};
  }
  if (!w->recursive) return 0;
  DIR *dp = opendir(path);
  if (!dp) return 0;
  struct dirent *e;
  while ((e = readdir(dp))) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
    if (e->d_type != DT_DIR && e->d_type != DT_UNKNOWN) continue;
    char sub[PATH_MAX];
    if ((size_t)snprintf(sub, sizeof sub, "%s%s%s", rel, rel[0] ? "/" : "", e->d_name) >= sizeof sub) continue;
    struct stat st;
    char p2[PATH_MAX];
    if ((size_t)snprintf(p2, sizeof p2, "%s/%s", path, e->d_name) >= sizeof p2) continue;
    if (lstat(p2, &st) == 0 && S_ISDIR(st.st_mode)) add_dir(w, sub);
  }
  closedir(dp);
  return 0;
}

static void end_with(struct watch *w, int err, const char *msg) {
  struct tlv_out t = {0};
  tlv_u32(&t, F_EXIT_CODE, err ? 1 : 0);
  if (err) tlv_u32(&t, F_ERRNO, (uint32_t)err);
  if (msg) tlv_str(&t, F_MESSAGE, msg);
  port_send_tlv(T_EXIT, w->id, &t);
  release(w);
}

void watch_start(uint32_t id, const uint8_t *payload, uint32_t len) {
  if (id == 0 || find(id) || files_owns(id) || forward_owns(id)) { send_error(id, E_SESSION_EXISTS, "session %u is already in use", id); return; }
  struct tlv_iter it = {payload, len};
  uint16_t tag; const uint8_t *v; uint32_t n, flags = 0; int k;
  char path[PATH_MAX] = "";
  while ((k = tlv_next(&it, &tag, &v, &n)) > 0) {
    if (tag == F_PATH) {
      if (n == 0 || n >= sizeof path || memchr(v, 0, n)) { k = -1; break; }
      memcpy(path, v, n);
      path[n] = 0;
    }
    if (tag == F_FLAGS && tlv_as_u32(v, n, &flags) < 0) { k = -1; break; }
  }
  if (k < 0 || path[0] != '/') { send_error(id, E_BAD_MESSAGE, "watch needs an absolute PATH"); return; }
  struct watch *w = NULL;
  for (int i = 0; i < MAX_WATCHES && !w; i++) if (!watches[i].used) w = &watches[i];
  if (!w) { send_error(id, E_TOO_MANY_SESSIONS, "at most %d watches at once", MAX_WATCHES); return; }
  memset(w, 0, sizeof *w);
  w->used = 1;
  w->id = id;
  w->credit = MVM_WINDOW;
  w->recursive = (flags & FL_RECURSIVE) != 0;
  size_t pl = strlen(path);
  while (pl > 1 && path[pl - 1] == '/') path[--pl] = 0;
  snprintf(w->root, sizeof w->root, "%s", path);
  char msg[PATH_MAX + 64];
  struct stat st;
  int err = 0;
  if (stat(path, &st) < 0) err = errno;
  else if (!S_ISDIR(st.st_mode)) err = ENOTDIR;
  else if ((w->fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC)) < 0) err = errno;
  else if (add_dir(w, "") < 0) err = errno;
  if (err) {
    snprintf(msg, sizeof msg, "watch %s: %s", path, strerror(err));
    end_with(w, err, msg);
    return;
  }
  port_send(T_STARTED, id, NULL, 0);
  flush_events(w); /* a WK_LIMIT found while adding the tree */
}

void watch_window(uint32_t id, uint32_t bytes) {
  struct watch *w = find(id);
  if (w) w->credit = (uint64_t)w->credit + bytes > 0x7fffffff ? 0x7fffffff : w->credit + bytes;
}

void watch_cancel(uint32_t id) {
  struct watch *w = find(id);
  if (w) end_with(w, 0, NULL);
}

void watch_abort_all(void) {
  for (int i = 0; i < MAX_WATCHES; i++)
    if (watches[i].used) release(&watches[i]);
}

int watch_poll_fds(struct pollfd *fds, int max, int output_allowed) {
  int n = 0;
  for (int i = 0; i < MAX_WATCHES && n < max; i++) {
    struct watch *w = &watches[i];
    /* Without at least a full frame of credit the events wait in the kernel's queue. */
    if (w->used && output_allowed && w->credit >= EVENTS_FLUSH + PATH_MAX + 16) fds[n++] = (struct pollfd){.fd = w->fd, .events = POLLIN};
  }
  return n;
}

static void read_events(struct watch *w) {
  ssize_t r = read(w->fd, evbuf, sizeof evbuf);
  if (r <= 0) return;
  int root_gone = 0;
  for (char *p = evbuf; p < evbuf + r;) {
    struct inotify_event *e = (struct inotify_event *)p;
    p += sizeof *e + e->len;
    if (e->mask & IN_Q_OVERFLOW) { add_event(w, WK_OVERFLOW, "", ""); continue; }
    const char *rel = rel_of(w, e->wd);
    if (!rel) continue;
    if (e->mask & IN_IGNORED) { if (!rel[0]) root_gone = 1; forget_wd(w, e->wd); continue; }
    if (e->mask & IN_DELETE_SELF) { if (!rel[0]) root_gone = 1; continue; }
    const char *name = e->len ? e->name : "";
    uint8_t kind = e->mask & IN_CREATE ? WK_CREATE : e->mask & IN_MOVED_TO ? WK_CREATE : e->mask & IN_MODIFY ? WK_WRITE
                 : e->mask & IN_DELETE ? WK_REMOVE : e->mask & IN_MOVED_FROM ? WK_RENAME : e->mask & IN_ATTRIB ? WK_CHMOD : 0;
    if (!kind) continue;
    char relcopy[PATH_MAX];
    snprintf(relcopy, sizeof relcopy, "%s", rel); /* add_dir may move the table rel points into */
    add_event(w, kind, relcopy, name);
    if (w->recursive && (e->mask & IN_ISDIR) && (e->mask & (IN_CREATE | IN_MOVED_TO))) {
      char sub[PATH_MAX];
      if ((size_t)snprintf(sub, sizeof sub, "%s%s%s", relcopy, relcopy[0] ? "/" : "", name) < sizeof sub) add_dir(w, sub);
    }
    if (w->recursive && (e->mask & IN_ISDIR) && (e->mask & IN_MOVED_FROM)) {
      /* A directory moved away: its watches (and those below) would report under a stale name. */
      char sub[PATH_MAX];
      int sl = snprintf(sub, sizeof sub, "%s%s%s", relcopy, relcopy[0] ? "/" : "", name);
      for (int i = w->ndirs - 1; sl > 0 && (size_t)sl < sizeof sub && i >= 0; i--) {
        const char *d = w->dirs[i].rel;
        if (!strncmp(d, sub, (size_t)sl) && (d[sl] == 0 || d[sl] == '/')) { inotify_rm_watch(w->fd, w->dirs[i].wd); forget_wd(w, w->dirs[i].wd); }
      }
    }
  }
  flush_events(w);
  if (root_gone) {
    char msg[PATH_MAX + 64];
    snprintf(msg, sizeof msg, "watch %s: the directory was removed", w->root);
    end_with(w, ENOENT, msg);
  }
}

void watch_poll_done(struct pollfd *fds, int n) {
  for (int k = 0; k < n; k++) {
    if (!fds[k].revents) continue;
    for (int i = 0; i < MAX_WATCHES; i++)
      if (watches[i].used && watches[i].fd == fds[k].fd) { read_events(&watches[i]); break; }
  }
}
