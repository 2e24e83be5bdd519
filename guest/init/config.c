/* Reads the configuration file: lines of key=value, values percent-encoded (%XX) so that any byte can
 * travel. Unknown keys are ignored so that a newer host can talk to an older guest. */
#include "config.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int hexval(int c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* Decodes in place; returns -1 on a bad escape or an embedded NUL. */
static int unescape(char *s) {
  char *o = s;
  for (char *p = s; *p; p++) {
    if (*p == '%') {
      int a = hexval(p[1]), b = a < 0 ? -1 : hexval(p[2]);
      if (b < 0 || (a == 0 && b == 0)) return -1;
      *o++ = (char)(a * 16 + b);
      p += 2;
    } else {
      *o++ = *p;
    }
  }
  *o = 0;
  return 0;
}

static int copy(char *dst, size_t n, const char *v) {
  if (strlen(v) >= n) return -1;
  strcpy(dst, v);
  return 0;
}

int config_load(const char *path, struct vm_config *c, char *err, int errlen) {
  memset(c, 0, sizeof *c);
  strcpy(c->hostname, "mvm");
  strcpy(c->rootfstype, "ext4");
  FILE *f = fopen(path, "re");
  if (!f) {
    if (errno == ENOENT) return 0;
    snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
    return -1;
  }
  char *line = NULL;
  size_t cap = 0;
  int lineno = 0, rc = 0;
  while (rc == 0 && getline(&line, &cap, f) > 0) {
    lineno++;
    line[strcspn(line, "\n")] = 0;
    if (!*line || *line == '#') continue;
    char *eq = strchr(line, '=');
    if (!eq) { snprintf(err, errlen, "config line %d has no '='", lineno); rc = -1; break; }
    *eq = 0;
    char *k = line, *v = eq + 1;
    if (unescape(v) < 0) { snprintf(err, errlen, "config line %d: bad %%-escape in %s", lineno, k); rc = -1; break; }
    int bad = 0;
    if (!strcmp(k, "version")) bad = strcmp(v, "1") != 0;
    else if (!strcmp(k, "hostname")) bad = copy(c->hostname, sizeof c->hostname, v);
    else if (!strcmp(k, "env")) {
      bad = c->nenv >= CONFIG_MAX_ENV || !strchr(v, '=');
      if (!bad) c->env[c->nenv++] = strdup(v);
    } else if (!strcmp(k, "root")) bad = copy(c->root, sizeof c->root, v);
    else if (!strcmp(k, "rootfstype")) bad = copy(c->rootfstype, sizeof c->rootfstype, v);
    else if (!strcmp(k, "rootflags")) bad = copy(c->rootflags, sizeof c->rootflags, v);
    else if (!strcmp(k, "rootro")) c->root_ro = !strcmp(v, "1");
    else if (!strcmp(k, "rootresize")) c->root_resize = !strcmp(v, "1");
    else if (!strcmp(k, "net.iface")) bad = copy(c->net_iface, sizeof c->net_iface, v);
    else if (!strcmp(k, "net.address")) bad = copy(c->net_address, sizeof c->net_address, v);
    else if (!strcmp(k, "net.gateway")) bad = copy(c->net_gateway, sizeof c->net_gateway, v);
    else if (!strcmp(k, "mount")) {
      /* mount=TAG:ro|rw:/guest/path (the path last, so it may hold ':') */
      char *a = strchr(v, ':'), *b = a ? strchr(a + 1, ':') : NULL;
      bad = c->nmounts >= CONFIG_MAX_MOUNTS || !a || !b || b[1] != '/';
      if (!bad && strlen(b + 1) > CONFIG_MAX_MOUNT_PATH) {
        snprintf(err, errlen, "config line %d: the shared folder path %.64s... is %zu bytes, over the limit of %d",
                 lineno, b + 1, strlen(b + 1), CONFIG_MAX_MOUNT_PATH);
        rc = -1;
        break;
      }
      if (!bad) {
        *a = 0;
        *b = 0;
        c->mounts[c->nmounts++] = (struct vm_mount){.tag = strdup(v), .ro = !strcmp(a + 1, "ro"), .path = strdup(b + 1)};
      }
    } else if (!strcmp(k, "net.dns")) {
      bad = c->ndns >= CONFIG_MAX_DNS;
      if (!bad) c->dns[c->ndns++] = strdup(v);
    }
    if (bad) { snprintf(err, errlen, "config line %d: invalid value for %s", lineno, k); rc = -1; }
  }
  free(line);
  fclose(f);
  return rc;
}
