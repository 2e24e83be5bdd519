/* File operations for the host. One-shot ones (FS: stat, list, mkdir, rename, remove, chmod, chown,
 * symlink) answer with FS_ENTRIES and FS_DONE at once. Transfers (READ, WRITE) stream a file with the
 * same flow control as a command's output and stdin, and end with the CRC-32 of every byte, so the host
 * can check the copy end to end. A write goes to a temporary file renamed into place only when complete:
 * a failed write (a full disk) never leaves half a file at the destination. */
#include "agent.h"
#include "proto.h"
#include "wire.h"
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_TRANSFERS 32
#define READ_CHUNK (128 * 1024)    /* bigger than command output chunks: fewer frames for bulk data */
#define ENTRIES_FLUSH (192 * 1024) /* send a listing in frames of about this size */

struct fs_req {
  char op[16];
  char path[PATH_MAX], path2[PATH_MAX], owner[128];
  uint32_t depth, mode, flags;
  int have_mode, have_depth;
};

struct transfer {
  int used, writing, fd;
  uint32_t id, credit, consumed;
  uint64_t bytes;
  uint32_t crc;
  char path[PATH_MAX], tmp[PATH_MAX];
  int have_mode, have_owner;
  mode_t mode;
  uid_t uid;
  gid_t gid;
};

static struct transfer transfers[MAX_TRANSFERS];
static uint8_t chunk[READ_CHUNK];
static uint8_t entries[ENTRIES_FLUSH + 2 * PATH_MAX + 64];
static size_t entries_len;

static struct transfer *find_transfer(uint32_t id) {
  for (int i = 0; i < MAX_TRANSFERS; i++)
    if (transfers[i].used && transfers[i].id == id) return &transfers[i];
  return NULL;
}

int files_owns(uint32_t id) { return find_transfer(id) != NULL; }

static void done_error(uint32_t id, int err, const char *what, const char *path) {
  struct tlv_out t = {0};
  char msg[PATH_MAX + 128];
  snprintf(msg, sizeof msg, "%s %s: %s", what, path, strerror(err));
  tlv_u32(&t, F_ERRNO, (uint32_t)err);
  tlv_str(&t, F_MESSAGE, msg);
  port_send_tlv(T_FS_DONE, id, &t);
}

/* A failure told in the agent's own words (with errno for the host to classify). */
static void done_error_msg(uint32_t id, int err, const char *msg) {
  struct tlv_out t = {0};
  tlv_u32(&t, F_ERRNO, (uint32_t)err);
  tlv_str(&t, F_MESSAGE, msg);
  port_send_tlv(T_FS_DONE, id, &t);
}

static void done_ok(uint32_t id, const struct transfer *tr) {
  struct tlv_out t = {0};
  if (tr) {
    tlv_u32(&t, F_CRC32, tr->crc);
    tlv_u64(&t, F_SIZE, tr->bytes);
  }
  port_send_tlv(T_FS_DONE, id, &t);
}

static int copy_str(char *dst, size_t cap, const uint8_t *v, uint32_t n) {
  if (n >= cap || memchr(v, 0, n)) return -1;
  memcpy(dst, v, n);
  dst[n] = 0;
  return 0;
}

static int parse_req(const uint8_t *p, uint32_t len, struct fs_req *r) {
  memset(r, 0, sizeof *r);
  struct tlv_iter it = {p, len};
  uint16_t tag; const uint8_t *v; uint32_t n; int k;
  while ((k = tlv_next(&it, &tag, &v, &n)) > 0) {
    int bad = 0;
    switch (tag) {
      case F_OP: bad = copy_str(r->op, sizeof r->op, v, n); break;
      case F_PATH: bad = copy_str(r->path, sizeof r->path, v, n); break;
      case F_PATH2: bad = copy_str(r->path2, sizeof r->path2, v, n); break;
      case F_OWNER: bad = copy_str(r->owner, sizeof r->owner, v, n); break;
      case F_DEPTH: bad = tlv_as_u32(v, n, &r->depth); r->have_depth = 1; break;
      case F_MODE: bad = tlv_as_u32(v, n, &r->mode); r->have_mode = 1; break;
      case F_FLAGS: bad = tlv_as_u32(v, n, &r->flags); break;
      default: break;
    }
    if (bad) return -1;
  }
  return k < 0 || !r->path[0] ? -1 : 0;
}

/* "uid:gid", "user:group", "user" (its primary group) or ":group". */
static int parse_owner(const char *owner, uid_t *uid, gid_t *gid) {
  char user[128], *group;
  snprintf(user, sizeof user, "%s", owner);
  if ((group = strchr(user, ':'))) *group++ = 0;
  char *end;
  *uid = (uid_t)-1; *gid = (gid_t)-1;
  if (user[0]) {
    unsigned long u = strtoul(user, &end, 10);
    struct passwd *pw = *end ? getpwnam(user) : getpwuid((uid_t)u);
    if (*end && !pw) return -1;
    *uid = pw ? pw->pw_uid : (uid_t)u;
    if (pw && !group) *gid = pw->pw_gid;
  }
  if (group && group[0]) {
    unsigned long g = strtoul(group, &end, 10);
    struct group *gr = *end ? getgrnam(group) : NULL;
    if (*end && !gr) return -1;
    *gid = gr ? gr->gr_gid : (gid_t)g;
  }
  return 0;
}

/* One entry: kind, mode, uid, gid, size, mtime (ms), name length, name, symlink target (the rest). */
static void add_entry(uint32_t id, const char *name, const struct stat *st, const char *link) {
  size_t nl = strlen(name), ll = link ? strlen(link) : 0, vlen = 31 + nl + ll;
  if (entries_len + 6 + vlen > ENTRIES_FLUSH && entries_len) {
    port_send(T_FS_ENTRIES, id, entries, (uint32_t)entries_len);
    entries_len = 0;
  }
  uint8_t *p = entries + entries_len;
  uint8_t kind = S_ISREG(st->st_mode) ? 0 : S_ISDIR(st->st_mode) ? 1 : S_ISLNK(st->st_mode) ? 2 : 3;
  int64_t mtime = (int64_t)st->st_mtim.tv_sec * 1000 + st->st_mtim.tv_nsec / 1000000;
  uint64_t size = (uint64_t)st->st_size;
  uint32_t mode = st->st_mode, uid = st->st_uid, gid = st->st_gid, len32 = (uint32_t)vlen;
  uint16_t tag = F_ENTRY, nl16 = (uint16_t)nl;
  memcpy(p, &tag, 2); memcpy(p + 2, &len32, 4); p += 6;
  *p = kind; memcpy(p + 1, &mode, 4); memcpy(p + 5, &uid, 4); memcpy(p + 9, &gid, 4);
  memcpy(p + 13, &size, 8); memcpy(p + 21, &mtime, 8); memcpy(p + 29, &nl16, 2);
  memcpy(p + 31, name, nl);
  if (ll) memcpy(p + 31 + nl, link, ll);
  entries_len += 6 + vlen;
}

static void flush_entries(uint32_t id) {
  if (entries_len) port_send(T_FS_ENTRIES, id, entries, (uint32_t)entries_len);
  entries_len = 0;
}

static void entry_at(uint32_t id, int dirfd, const char *at, const char *name, const struct stat *st) {
  char target[PATH_MAX] = "";
  if (S_ISLNK(st->st_mode)) {
    ssize_t n = readlinkat(dirfd, at, target, sizeof target - 1);
    target[n > 0 ? n : 0] = 0;
  }
  add_entry(id, name, st, target[0] ? target : NULL);
}

/* Lists a directory to a depth (0 = no limit), never following symlinks below the root. */
static void list_dir(uint32_t id, int dirfd, const char *prefix, uint32_t depth, uint32_t level) {
  DIR *d = fdopendir(dirfd);
  if (!d) { close(dirfd); return; }
  struct dirent *e;
  while ((e = readdir(d))) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
    char name[PATH_MAX];
    if ((size_t)snprintf(name, sizeof name, "%s%s%s", prefix, prefix[0] ? "/" : "", e->d_name) >= sizeof name) continue;
    struct stat st;
    if (fstatat(dirfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) continue; /* vanished meanwhile */
    entry_at(id, dirfd, e->d_name, name, &st);
    if (S_ISDIR(st.st_mode) && (depth == 0 || level < depth)) {
      int sub = openat(dirfd, e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (sub >= 0) list_dir(id, sub, name, depth, level + 1);
    }
  }
  closedir(d);
}

static int mkdir_p(const char *path, mode_t mode, int parents, const uid_t *uid, const gid_t *gid) {
  char buf[PATH_MAX];
  snprintf(buf, sizeof buf, "%s", path);
  for (char *p = parents ? buf + 1 : buf + strlen(buf); ; p++) {
    if (*p != '/' && *p) continue;
    char c = *p;
    *p = 0;
    if (mkdir(buf, mode) == 0) {
      if (uid && lchown(buf, *uid, *gid) < 0) return -1;
    } else {
      struct stat st;
      if (errno != EEXIST || !parents || stat(buf, &st) < 0 || !S_ISDIR(st.st_mode)) {
        if (errno == EEXIST && parents) errno = ENOTDIR;
        return -1;
      }
    }
    if (!c) return 0;
    *p = c;
  }
}

/* A recursive remove stays on the file system it started on. A shared folder (9p) mounted below the
 * directory is the host's own files: the walk must never go into it. */
static dev_t remove_dev;
static char remove_crossing[PATH_MAX];

static int find_crossing(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  (void)ftw;
  if (flag == FTW_NS || st->st_dev == remove_dev) return 0;
  snprintf(remove_crossing, sizeof remove_crossing, "%s", path);
  return 1; /* stops the walk */
}

static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  (void)ftw;
  if (flag != FTW_NS && st->st_dev != remove_dev) { errno = EXDEV; return -1; } /* FTW_MOUNT skips those already */
  return (flag == FTW_DP ? rmdir(path) : unlink(path)) < 0 ? -1 : 0;
}

/* Is path (a directory, lstat'ed into st) a mount point: another device than its parent's, or "/"? */
static int is_mount_point(const char *path, const struct stat *st) {
  char parent[PATH_MAX + 4];
  struct stat pst;
  snprintf(parent, sizeof parent, "%s/..", path);
  if (stat(parent, &pst) < 0) return 0;
  return pst.st_dev != st->st_dev || pst.st_ino == st->st_ino;
}

/* rm -r that never crosses into another file system: it refuses, before removing anything, when a mount
 * point is inside (or is) the directory; FTW_MOUNT keeps the walk on its own file system even if a mount
 * appears meanwhile. Returns -1 with errno, and a message in msg when there is more to say than errno. */
static int remove_tree(const char *path, const struct stat *st, char *msg, size_t msglen) {
  remove_dev = st->st_dev;
  if (is_mount_point(path, st)) {
    snprintf(msg, msglen, "cannot remove %s: it is a mount point (a shared folder or another file system); nothing was removed", path);
    errno = EBUSY;
    return -1;
  }
  remove_crossing[0] = 0;
  int r = nftw(path, find_crossing, 32, FTW_PHYS);
  if (r == 1) {
    snprintf(msg, msglen, "cannot remove %s: %s is a mount point (a shared folder or another file system); nothing was removed", path, remove_crossing);
    errno = EXDEV;
    return -1;
  }
  if (r < 0) return -1;
  return nftw(path, remove_one, 32, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
}

static int parent_dirs(const char *path) {
  char dir[PATH_MAX];
  snprintf(dir, sizeof dir, "%s", path);
  char *slash = strrchr(dir, '/');
  if (!slash || slash == dir) return 0;
  *slash = 0;
  return mkdir_p(dir, 0755, 1, NULL, NULL);
}

void files_fs(uint32_t id, const uint8_t *payload, uint32_t len) {
  struct fs_req r;
  if (id == 0 || parse_req(payload, len, &r) < 0) {
    send_error(id, E_BAD_MESSAGE, "a file operation needs OP and a PATH without NUL bytes, shorter than %d", PATH_MAX);
    return;
  }
  struct stat st;
  uid_t uid; gid_t gid;
  int ok = -1;
  const char *what = r.op;
  char msg[PATH_MAX + 256] = "";
  if (r.owner[0] && parse_owner(r.owner, &uid, &gid) < 0) { errno = EINVAL; done_error(id, errno, "unknown user or group in", r.owner); return; }
  if (!strcmp(r.op, "stat")) {
    if ((ok = lstat(r.path, &st)) == 0) { entry_at(id, AT_FDCWD, r.path, r.path, &st); flush_entries(id); }
  } else if (!strcmp(r.op, "list")) {
    int fd = open(r.path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) { list_dir(id, fd, "", r.have_depth ? r.depth : 1, 1); flush_entries(id); ok = 0; }
  } else if (!strcmp(r.op, "mkdir")) {
    ok = mkdir_p(r.path, r.have_mode ? r.mode & 07777 : 0755, r.flags & FL_PARENTS, r.owner[0] ? &uid : NULL, &gid);
  } else if (!strcmp(r.op, "rename")) {
    ok = (r.flags & FL_PARENTS) && parent_dirs(r.path2) < 0 ? -1 : rename(r.path, r.path2);
  } else if (!strcmp(r.op, "remove")) {
    if (!strcmp(r.path, "/")) { errno = EPERM; ok = -1; }
    else if ((ok = lstat(r.path, &st)) == 0) {
      if (!S_ISDIR(st.st_mode)) ok = unlink(r.path);
      else if (r.flags & FL_RECURSIVE) ok = remove_tree(r.path, &st, msg, sizeof msg);
      else ok = rmdir(r.path);
    }
  } else if (!strcmp(r.op, "chmod")) {
    ok = chmod(r.path, r.mode & 07777);
  } else if (!strcmp(r.op, "chown")) {
    ok = r.owner[0] ? lchown(r.path, uid, gid) : (errno = EINVAL, -1);
  } else if (!strcmp(r.op, "symlink")) {
    ok = (r.flags & FL_PARENTS) && parent_dirs(r.path) < 0 ? -1 : symlink(r.path2, r.path);
  } else {
    send_error(id, E_BAD_MESSAGE, "unknown file operation %s", r.op);
    return;
  }
  if (ok < 0 && msg[0]) done_error_msg(id, errno, msg);
  else if (ok < 0) done_error(id, errno, what, r.path);
  else done_ok(id, NULL);
}

static struct transfer *new_transfer(uint32_t id) {
  if (id == 0 || find_transfer(id)) { send_error(id, E_SESSION_EXISTS, "session %u is already in use", id); return NULL; }
  for (int i = 0; i < MAX_TRANSFERS; i++) {
    if (transfers[i].used) continue;
    memset(&transfers[i], 0, sizeof transfers[i]);
    transfers[i].used = 1;
    transfers[i].id = id;
    transfers[i].fd = -1;
    return &transfers[i];
  }
  send_error(id, E_TOO_MANY_SESSIONS, "at most %d file transfers may run at once", MAX_TRANSFERS);
  return NULL;
}

static void end_transfer(struct transfer *t) {
  if (t->fd >= 0) close(t->fd);
  if (t->tmp[0]) unlink(t->tmp);
  t->used = 0;
}

void files_read(uint32_t id, const uint8_t *payload, uint32_t len) {
  struct fs_req r;
  if (parse_req(payload, len, &r) < 0) { send_error(id, E_BAD_MESSAGE, "read needs a PATH without NUL bytes"); return; }
  struct transfer *t = new_transfer(id);
  if (!t) return;
  struct stat st;
  snprintf(t->path, sizeof t->path, "%s", r.path);
  /* O_NONBLOCK: opening a FIFO must not hang the agent. Only regular files are read: a device or a
   * FIFO has no end, a directory no bytes. */
  const char *why = "cannot read";
  t->fd = open(r.path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
  int ok = t->fd >= 0 && fstat(t->fd, &st) == 0;
  if (ok && S_ISDIR(st.st_mode)) { ok = 0; errno = EISDIR; }
  else if (ok && !S_ISREG(st.st_mode)) { ok = 0; errno = EINVAL; why = "not a regular file, cannot read"; }
  if (!ok) {
    done_error(id, errno, why, r.path);
    end_transfer(t);
    return;
  }
  fcntl(t->fd, F_SETFL, fcntl(t->fd, F_GETFL) & ~O_NONBLOCK);
  add_entry(id, r.path, &st, NULL);
  flush_entries(id);
  t->credit = MVM_WINDOW;
}

void files_write(uint32_t id, const uint8_t *payload, uint32_t len) {
  struct fs_req r;
  if (parse_req(payload, len, &r) < 0) { send_error(id, E_BAD_MESSAGE, "write needs a PATH without NUL bytes"); return; }
  struct transfer *t = new_transfer(id);
  if (!t) return;
  struct stat st;
  const char *what = "cannot write";
  snprintf(t->path, sizeof t->path, "%s", r.path);
  if (r.owner[0] && parse_owner(r.owner, &t->uid, &t->gid) < 0) { errno = EINVAL; what = "unknown user or group for"; goto fail; }
  t->have_owner = r.owner[0] != 0;
  t->have_mode = r.have_mode;
  t->mode = r.mode & 07777;
  if ((r.flags & FL_PARENTS) && parent_dirs(r.path) < 0) { what = "cannot make the parent directories of"; goto fail; }
  if (lstat(r.path, &st) == 0) {
    if (r.flags & FL_EXCLUSIVE) { errno = EEXIST; goto fail; }
    if (S_ISDIR(st.st_mode)) { errno = EISDIR; goto fail; }
    if (S_ISREG(st.st_mode)) { /* replacing a file keeps its mode and owner unless told otherwise */
      if (!t->have_mode) { t->mode = st.st_mode & 07777; t->have_mode = 1; }
      if (!t->have_owner) { t->uid = st.st_uid; t->gid = st.st_gid; t->have_owner = 1; }
    }
  }
  /* The temporary file sits beside the destination, so the final rename cannot cross file systems. */
  char dir[PATH_MAX];
  snprintf(dir, sizeof dir, "%s", r.path);
  char *slash = strrchr(dir, '/');
  if (slash) slash[1] = 0; else dir[0] = 0;
  if ((size_t)snprintf(t->tmp, sizeof t->tmp, "%s.mvm-write-%u.tmp", dir, id) >= sizeof t->tmp) { errno = ENAMETOOLONG; goto fail; }
  t->fd = open(t->tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (t->fd < 0) { t->tmp[0] = 0; goto fail; }
  t->writing = 1;
  port_send(T_STARTED, id, NULL, 0);
  return;
fail:
  done_error(id, errno, what, r.path);
  end_transfer(t);
}

static void grant(struct transfer *t, int force) {
  if (!t->consumed || (!force && t->consumed < MVM_WINDOW / 4)) return;
  struct tlv_out o = {0};
  tlv_u32(&o, F_BYTES, t->consumed);
  port_send_tlv(T_STDIN_WINDOW, t->id, &o);
  t->consumed = 0;
}

static int finish_write(struct transfer *t) {
  if (t->have_mode && fchmod(t->fd, t->mode) < 0) return -1;
  if (t->have_owner && fchown(t->fd, t->uid, t->gid) < 0) return -1;
  int fd = t->fd;
  t->fd = -1;
  if (close(fd) < 0 || rename(t->tmp, t->path) < 0) return -1;
  t->tmp[0] = 0;
  return 0;
}

/* Data for a write (an empty frame ends it). Each chunk is written before credit goes back. */
void files_data(uint32_t id, const uint8_t *data, uint32_t len) {
  struct transfer *t = find_transfer(id);
  if (!t || !t->writing) { send_error(id, E_BAD_MESSAGE, "session %u is not a file being written", id); return; }
  if (len == 0) {
    if (finish_write(t) < 0) done_error(id, errno, "cannot write", t->path);
    else done_ok(id, t);
    end_transfer(t);
    return;
  }
  for (uint32_t at = 0; at < len;) {
    ssize_t w = write(t->fd, data + at, len - at);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) { /* a full disk, typically: report it, drop the partial file */
      done_error(id, errno, "cannot write", t->path);
      end_transfer(t);
      return;
    }
    at += (uint32_t)w;
  }
  t->crc = crc32_update(t->crc, data, len);
  t->bytes += len;
  t->consumed += len;
  grant(t, 0);
}

void files_window(uint32_t id, uint32_t bytes) {
  struct transfer *t = find_transfer(id);
  if (t && !t->writing) t->credit = (uint64_t)t->credit + bytes > 0x7fffffff ? 0x7fffffff : t->credit + bytes;
}

/* Sends one chunk of each file being read that has credit. Returns 1 while some could send more. */
int files_pump(void) {
  int more = 0;
  for (int i = 0; i < MAX_TRANSFERS && port_connected(); i++) {
    struct transfer *t = &transfers[i];
    if (!t->used || t->writing || t->credit == 0) continue;
    ssize_t r = read(t->fd, chunk, t->credit < READ_CHUNK ? t->credit : READ_CHUNK);
    if (r < 0 && errno == EINTR) { more = 1; continue; }
    if (r < 0) { done_error(t->id, errno, "cannot read", t->path); end_transfer(t); continue; }
    if (r == 0) { done_ok(t->id, t); end_transfer(t); continue; }
    t->crc = crc32_update(t->crc, chunk, (size_t)r);
    t->bytes += (uint64_t)r;
    t->credit -= (uint32_t)r;
    port_send(T_STDOUT, t->id, chunk, (uint32_t)r);
    more |= t->credit > 0;
  }
  return more;
}

/* The host gave up on a transfer (SIGNAL on its id): drop it, and a write's temporary file with it. */
void files_cancel(uint32_t id) {
  struct transfer *t = find_transfer(id);
  if (t) end_transfer(t);
}

/* The host went away: nobody will finish these, so drop them (and their temporary files). */
void files_abort_all(void) {
  for (int i = 0; i < MAX_TRANSFERS; i++)
    if (transfers[i].used) end_transfer(&transfers[i]);
}
