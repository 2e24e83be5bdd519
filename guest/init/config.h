/* The VM configuration the host passes through fw_cfg (opt/mvm/config); see docs/guest-config.md. */
#ifndef MVM_INIT_CONFIG_H
#define MVM_INIT_CONFIG_H

#define CONFIG_MAX_ENV 256
#define CONFIG_MAX_DNS 4
#define CONFIG_MAX_MOUNTS 16
#define CONFIG_MAX_MOUNT_PATH 511 /* bytes of a shared folder's guest path; a longer one is refused */

/* A shared folder: a 9p tag QEMU exports, mounted at a guest path. */
struct vm_mount {
  char *tag;
  char *path;
  int ro;
};

struct vm_config {
  char hostname[64];
  char *env[CONFIG_MAX_ENV];
  int nenv;
  char root[128];       /* block device to switch_root into, empty for the initramfs itself */
  char rootfstype[32];
  char rootflags[256];
  int root_ro;
  int root_resize;      /* grow the root ext4 filesystem online to fill its (grown) disk */
  char net_iface[16];
  char net_address[32]; /* a.b.c.d/prefix */
  char net_gateway[16];
  char *dns[CONFIG_MAX_DNS];
  int ndns;
  struct vm_mount mounts[CONFIG_MAX_MOUNTS];
  int nmounts;
};

/* Parses the file; on error fills err and returns -1. A missing file is an empty configuration. */
int config_load(const char *path, struct vm_config *c, char *err, int errlen);

#endif
