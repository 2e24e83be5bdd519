/* mvm-init: PID 1 of every mvm guest, and PID 1 it stays.
 * Mounts the basics, applies the configuration the host passed through fw_cfg (hostname, network, root
 * disk, environment), switch_roots into a root disk when one is named (taking itself and the agent along
 * on a tmpfs, so images need nothing of mvm), starts the agent and restarts it if it dies, reaps orphans,
 * and turns SIGUSR2/SIGTERM/SIGINT/SIGPWR into an orderly power-off. */
#include "config.h"
#include "net.h"
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/statfs.h>
#include <stdint.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define CONFIG_PATH "/sys/firmware/qemu_fw_cfg/by_name/opt/mvm/config/raw"
#define DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

static long long uptime_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_BOOTTIME, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void vsay(const char *prefix, const char *fmt, va_list ap) {
  char buf[512];
  vsnprintf(buf, sizeof buf, fmt, ap);
  dprintf(2, "mvm-init: %s%s\n", prefix, buf);
}

static void say(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsay("", fmt, ap);
  va_end(ap);
}

static void shutdown_now(void) __attribute__((noreturn));
static pid_t shell_pid = -1;

/* A guest that cannot come up powers off, so the host sees QEMU end and reads why on the console. */
static void fatal(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsay("fatal: ", fmt, ap);
  va_end(ap);
  shutdown_now();
}

static void mount_or_warn(const char *src, const char *dst, const char *type, unsigned long flags, const char *data) {
  mkdir(dst, 0755);
  if (mount(src, dst, type, flags, data) < 0 && errno != EBUSY) say("mount %s on %s: %s", type, dst, strerror(errno));
}

static int copy_file(const char *from, const char *to, mode_t mode) {
  int in = open(from, O_RDONLY | O_CLOEXEC), out = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  char buf[65536];
  ssize_t n = 0;
  if (in >= 0 && out >= 0)
    while ((n = read(in, buf, sizeof buf)) > 0)
      if (write(out, buf, n) != n) { n = -1; break; }
  int ok = in >= 0 && out >= 0 && n == 0;
  if (in >= 0) close(in);
  if (out >= 0) close(out);
  return ok ? 0 : -1;
}

/* Frees the initramfs' memory before leaving it; never crosses into another filesystem. */
static void delete_tree(int dirfd, dev_t dev) {
  DIR *d = fdopendir(dirfd);
  if (!d) return;
  struct dirent *e;
  while ((e = readdir(d))) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
    struct stat st;
    if (fstatat(dirfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || st.st_dev != dev) continue;
    if (S_ISDIR(st.st_mode)) {
      int sub = openat(dirfd, e->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      if (sub >= 0) delete_tree(sub, dev);
      unlinkat(dirfd, e->d_name, AT_REMOVEDIR);
    } else {
      unlinkat(dirfd, e->d_name, 0);
    }
  }
  closedir(d);
}

/* ext4's online resize, as resize2fs does it (busybox has no resize2fs): the new size in fs blocks. */
#define EXT4_IOC_RESIZE_FS _IOW('f', 16, uint64_t)

static void grow_root(const struct vm_config *c) {
  int dev = open(c->root, O_RDONLY | O_CLOEXEC), dir = open("/newroot", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  uint64_t bytes = 0;
  struct statfs fs;
  if (dev < 0 || dir < 0 || ioctl(dev, BLKGETSIZE64, &bytes) < 0 || fstatfs(dir, &fs) < 0 || fs.f_bsize == 0) {
    say("cannot size %s for resizing: %s", c->root, strerror(errno));
  } else {
    uint64_t blocks = bytes / (uint64_t)fs.f_bsize;
    if (blocks > fs.f_blocks && ioctl(dir, EXT4_IOC_RESIZE_FS, &blocks) < 0) say("cannot grow the root filesystem: %s", strerror(errno));
  }
  if (dev >= 0) close(dev);
  if (dir >= 0) close(dir);
}

static void switch_root(const struct vm_config *c) {
  unsigned long flags = c->root_ro ? MS_RDONLY : 0;
  mkdir("/newroot", 0755);
  if (mount(c->root, "/newroot", c->rootfstype, flags, c->rootflags[0] ? c->rootflags : NULL) < 0)
    fatal("cannot mount root disk %s (%s): %s", c->root, c->rootfstype, strerror(errno));
  if (c->root_resize && !c->root_ro) grow_root(c);
  if (mkdir("/newroot/run", 0755) < 0 && errno != EEXIST) fatal("root disk has no /run and is read-only");
  if (mount("tmpfs", "/newroot/run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755") < 0)
    fatal("cannot mount /run on the root disk: %s", strerror(errno));
  mkdir("/newroot/run/mvm", 0755);
  if (copy_file("/init", "/newroot/run/mvm/init", 0755) < 0 ||
      copy_file("/sbin/mvm-agent", "/newroot/run/mvm/mvm-agent", 0755) < 0)
    fatal("cannot copy mvm's init and agent to the root disk's /run");
  static const char *moved[] = {"/dev", "/proc", "/sys"};
  for (int i = 0; i < 3; i++) {
    char to[32];
    snprintf(to, sizeof to, "/newroot%s", moved[i]);
    mkdir(to, 0755);
    if (mount(moved[i], to, NULL, MS_MOVE, NULL) < 0) fatal("cannot move %s to the root disk: %s", moved[i], strerror(errno));
  }
  struct stat st;
  int rootfd = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (rootfd >= 0 && fstat(rootfd, &st) == 0) delete_tree(rootfd, st.st_dev);
  if (chdir("/newroot") < 0 || mount(".", "/", NULL, MS_MOVE, NULL) < 0 || chroot(".") < 0 || chdir("/") < 0)
    fatal("switch_root into %s failed: %s", c->root, strerror(errno));
  char *argv[] = {"/run/mvm/init", "--stage2", NULL};
  execv(argv[0], argv);
  fatal("cannot run /run/mvm/init after switch_root: %s", strerror(errno));
}

static void write_resolv_conf(const struct vm_config *c, int on_root_disk) {
  if (!c->ndns) return;
  const char *path = on_root_disk ? "/run/mvm/resolv.conf" : "/etc/resolv.conf";
  FILE *f = fopen(path, "we");
  if (!f) { say("cannot write %s: %s", path, strerror(errno)); return; }
  for (int i = 0; i < c->ndns; i++) fprintf(f, "nameserver %s\n", c->dns[i]);
  fclose(f);
  /* On an image, lay it over the image's own file instead of changing the disk (as Docker does). */
  if (on_root_disk && mount(path, "/etc/resolv.conf", NULL, MS_BIND, NULL) < 0)
    say("cannot bind /etc/resolv.conf: %s", strerror(errno));
}

/* mkdir -p; a path that does not fit is refused (ENAMETOOLONG), never cut short. */
static int make_dirs(const char *path) {
  char buf[CONFIG_MAX_MOUNT_PATH + 1];
  if (strlen(path) >= sizeof buf) { errno = ENAMETOOLONG; return -1; }
  snprintf(buf, sizeof buf, "%s", path);
  for (char *p = buf + 1; *p; p++) {
    if (*p != '/') continue;
    *p = 0;
    mkdir(buf, 0755);
    *p = '/';
  }
  mkdir(buf, 0755);
  return 0;
}

/* Shared folders over virtio-9p. Read-only is enforced by QEMU on the host side too. */
static void mount_shared_folders(const struct vm_config *c) {
  for (int i = 0; i < c->nmounts; i++) {
    const struct vm_mount *m = &c->mounts[i];
    if (make_dirs(m->path) < 0)
      fatal("cannot make the mount point of shared folder %s (%zu bytes, the limit is %d): %s", m->tag, strlen(m->path), CONFIG_MAX_MOUNT_PATH, strerror(errno));
    if (mount(m->tag, m->path, "9p", m->ro ? MS_RDONLY : 0, "trans=virtio,version=9p2000.L,msize=262144") < 0)
      fatal("cannot mount shared folder %s on %s: %s", m->tag, m->path, strerror(errno));
  }
}

static pid_t agent_pid = -1;
static const char *agent_path = "/sbin/mvm-agent";

/* fork() for init's children: in the child, signals unblocked (init blocks them all) and a new session. */
static pid_t fork_child(void) {
  pid_t pid = fork();
  if (pid == 0) {
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    setsid();
  }
  return pid;
}

static void start_agent(void) {
  pid_t pid = fork_child();
  if (pid == 0) {
    char *argv[] = {(char *)agent_path, NULL};
    execv(agent_path, argv);
    say("cannot run %s: %s", agent_path, strerror(errno));
    _exit(127);
  }
  agent_pid = pid;
}

/* A root shell on the serial console, for `mvm console`. Only the daemon's user can reach the console
 * (its socket is private), as with a hypervisor's console. Restarted when it exits: at once after a
 * session that lasted, after a growing delay (1 s, doubling up to SHELL_BACKOFF_MAX_MS) when it keeps
 * dying at once (no usable console), so it never spins and never gives up. */
#define SHELL_QUICK_MS 1000
#define SHELL_BACKOFF_MAX_MS 60000
/* The first shell starts when the agent says its hello is sent (SIGUSR1), or after this long without. */
#define SHELL_FIRST_WAIT_MS 2000
static int shell_ever_started;
static long long shell_started;
static long long shell_backoff_ms = 1000;

static void start_console_shell(void) {
  const char *shell = access("/bin/sh", X_OK) == 0 ? "/bin/sh" : NULL;
  if (!shell) return;
  pid_t pid = fork_child();
  if (pid == 0) {
    int fd = open("/dev/ttyS0", O_RDWR | O_NOCTTY);
    if (fd < 0) _exit(127);
    ioctl(fd, TIOCSCTTY, 0);
    dup2(fd, 0); dup2(fd, 1); dup2(fd, 2);
    if (fd > 2) close(fd);
    setenv("TERM", "vt100", 1);
    chdir("/root");
    char *argv[] = {"-sh", NULL};
    execv(shell, argv);
    _exit(127);
  }
  shell_pid = pid;
  shell_ever_started = 1;
  shell_started = uptime_ms();
}

static void shutdown_now(void) {
  say("powering off");
  sigset_t chld;
  sigemptyset(&chld);
  sigaddset(&chld, SIGCHLD);
  /* The console shell is interactive and so ignores SIGTERM: end its session outright, or every
   * power-off would wait out the grace period below. */
  if (shell_pid > 0) kill(-shell_pid, SIGKILL);
  kill(-1, SIGTERM);
  /* Give processes up to 2 s to exit on SIGTERM, then kill what is left. */
  long long deadline = uptime_ms() + 2000;
  while (uptime_ms() < deadline) {
    while (waitpid(-1, NULL, WNOHANG) > 0) {}
    if (waitpid(-1, NULL, WNOHANG) < 0 && errno == ECHILD) break;
    struct timespec ts = {0, 20 * 1000000};
    sigtimedwait(&chld, NULL, &ts);
  }
  kill(-1, SIGKILL);
  while (waitpid(-1, NULL, WNOHANG) > 0) {}
  sync();
  mount(NULL, "/", NULL, MS_REMOUNT | MS_RDONLY, NULL);
  /* Power-off needs ACPI; without it the kernel would only halt. QEMU runs with -no-reboot, so a reboot
   * ends it just as cleanly. */
  if (access("/sys/firmware/acpi", F_OK) == 0) reboot(RB_POWER_OFF);
  reboot(RB_AUTOBOOT);
  for (;;) pause();
}

int main(int argc, char **argv) {
  int stage2 = argc > 1 && !strcmp(argv[1], "--stage2");
  long long started = uptime_ms();
  sigset_t sigs;
  sigemptyset(&sigs);
  int handled[] = {SIGCHLD, SIGUSR1, SIGUSR2, SIGTERM, SIGINT, SIGPWR, SIGHUP};
  for (size_t i = 0; i < sizeof handled / sizeof *handled; i++) sigaddset(&sigs, handled[i]);
  sigprocmask(SIG_BLOCK, &sigs, NULL);

  if (!stage2) {
    mount_or_warn("devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755");
    if (fcntl(2, F_GETFD) < 0) { /* no console from the kernel: open it ourselves */
      int fd = open("/dev/console", O_RDWR);
      if (fd >= 0) { dup2(fd, 0); dup2(fd, 1); dup2(fd, 2); if (fd > 2) close(fd); }
    }
    say("started at %lld ms", started);
    mount_or_warn("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
    mount_or_warn("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
  }
  struct vm_config c;
  char err[256];
  if (config_load(CONFIG_PATH, &c, err, sizeof err) < 0) fatal("%s", err);

  if (!stage2) {
    if (sethostname(c.hostname, strlen(c.hostname)) < 0) say("sethostname: %s", strerror(errno));
    if (net_loopback_up() < 0) say("cannot bring up lo: %s", strerror(errno));
    if (c.net_iface[0] && net_configure(c.net_iface, c.net_address, c.net_gateway, err, sizeof err) < 0)
      fatal("network: %s", err);
    if (c.root[0]) switch_root(&c);
  }
  int on_root_disk = stage2;
  if (on_root_disk) agent_path = "/run/mvm/mvm-agent";
  else mount_or_warn("tmpfs", "/run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755");
  mount_or_warn("devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620,gid=5");
  mount_or_warn("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777");
  mount_or_warn("cgroup2", "/sys/fs/cgroup", "cgroup2", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
  write_resolv_conf(&c, on_root_disk);
  mount_shared_folders(&c);

  /* The agent and every command it runs inherit this environment; the VM's own variables come last. */
  clearenv();
  setenv("PATH", DEFAULT_PATH, 1);
  setenv("HOME", "/root", 1);
  for (int i = 0; i < c.nenv; i++) putenv(c.env[i]);
  char t[32];
  snprintf(t, sizeof t, "%lld", started);
  setenv("MVM_INIT_UPTIME_MS", t, 1);
  chdir("/");
  start_agent();

  /* Restarts wait for a time, not in a sleep: signals (a power-off above all) and reaping go on meanwhile.
   * 0 means nothing is due. The console shell is due once the agent's hello is out (see above). */
  long long agent_started = uptime_ms(), agent_due = 0, shell_due = agent_started + SHELL_FIRST_WAIT_MS;
  for (;;) {
    long long now = uptime_ms();
    if (agent_due && now >= agent_due) { agent_due = 0; agent_started = now; start_agent(); }
    if (shell_due && now >= shell_due) { shell_due = 0; start_console_shell(); }
    long long next = agent_due && (!shell_due || agent_due < shell_due) ? agent_due : shell_due;
    siginfo_t si;
    int sig;
    if (next) {
      long long wait = next - now;
      struct timespec ts = {wait / 1000, (wait % 1000) * 1000000};
      sig = sigtimedwait(&sigs, &si, &ts);
    } else {
      sig = sigwaitinfo(&sigs, &si);
    }
    if (sig < 0) continue; /* EAGAIN: a restart is due; EINTR */
    if (sig == SIGCHLD) {
      int status;
      pid_t pid;
      while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        now = uptime_ms();
        if (pid == shell_pid) {
          shell_pid = -1;
          if (now - shell_started >= SHELL_QUICK_MS) {
            shell_backoff_ms = 1000;
            shell_due = now;
          } else {
            say("the console shell exited at once; starting it again in %lld s", shell_backoff_ms / 1000);
            shell_due = now + shell_backoff_ms;
            shell_backoff_ms = shell_backoff_ms * 2 > SHELL_BACKOFF_MAX_MS ? SHELL_BACKOFF_MAX_MS : shell_backoff_ms * 2;
          }
          continue;
        }
        if (pid != agent_pid) continue;
        agent_pid = -1;
        say("agent exited (%s %d); restarting it", WIFSIGNALED(status) ? "signal" : "status",
            WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
        /* At once, but at most once a second when it keeps dying. */
        agent_due = now - agent_started < 1000 ? agent_started + 1000 : now;
      }
    } else if (sig == SIGUSR1) {
      if (!shell_ever_started) shell_due = uptime_ms();
    } else if (sig == SIGUSR2 || sig == SIGTERM || sig == SIGINT || sig == SIGPWR) {
      shutdown_now();
    }
  }
}
