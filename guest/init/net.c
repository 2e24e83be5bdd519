/* Network set-up with plain ioctls, so it works the same before and after switch_root (no tools needed). */
#include "net.h"
#include <arpa/inet.h>
#include <net/if.h>
#include <net/route.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

static void set_addr(struct sockaddr *sa, in_addr_t a) {
  struct sockaddr_in *in = (struct sockaddr_in *)sa;
  memset(in, 0, sizeof *in);
  in->sin_family = AF_INET;
  in->sin_addr.s_addr = a;
}

static int link_up(int s, const char *iface) {
  struct ifreq r;
  memset(&r, 0, sizeof r);
  snprintf(r.ifr_name, IFNAMSIZ, "%s", iface);
  if (ioctl(s, SIOCGIFFLAGS, &r) < 0) return -1;
  r.ifr_flags |= IFF_UP | IFF_RUNNING;
  return ioctl(s, SIOCSIFFLAGS, &r);
}

int net_loopback_up(void) {
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) return -1;
  int rc = link_up(s, "lo");
  close(s);
  return rc;
}

int net_configure(const char *iface, const char *cidr, const char *gateway, char *err, int errlen) {
  char addr[32];
  snprintf(addr, sizeof addr, "%s", cidr);
  char *slash = strchr(addr, '/');
  int prefix = slash ? atoi(slash + 1) : 24;
  if (slash) *slash = 0;
  struct in_addr ip;
  if (!inet_aton(addr, &ip) || prefix < 1 || prefix > 32) {
    snprintf(err, errlen, "bad address %s", cidr);
    return -1;
  }
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) { snprintf(err, errlen, "socket: %m"); return -1; }
  struct ifreq r;
  memset(&r, 0, sizeof r);
  snprintf(r.ifr_name, IFNAMSIZ, "%s", iface);
  set_addr(&r.ifr_addr, ip.s_addr);
  if (ioctl(s, SIOCSIFADDR, &r) < 0) { snprintf(err, errlen, "set address on %s: %m", iface); close(s); return -1; }
  set_addr(&r.ifr_netmask, htonl(prefix == 32 ? 0xffffffffu : ~(0xffffffffu >> prefix)));
  if (ioctl(s, SIOCSIFNETMASK, &r) < 0) { snprintf(err, errlen, "set netmask on %s: %m", iface); close(s); return -1; }
  if (link_up(s, iface) < 0) { snprintf(err, errlen, "bring up %s: %m", iface); close(s); return -1; }
  close(s);
  return gateway && *gateway ? net_default_route(iface, gateway, err, errlen) : 0;
}

int net_default_route(const char *iface, const char *gateway, char *err, int errlen) {
  struct in_addr gw;
  if (!inet_aton(gateway, &gw)) { snprintf(err, errlen, "bad gateway %s", gateway); return -1; }
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) { snprintf(err, errlen, "socket: %m"); return -1; }
  struct rtentry rt;
  memset(&rt, 0, sizeof rt);
  set_addr(&rt.rt_dst, INADDR_ANY);
  set_addr(&rt.rt_genmask, INADDR_ANY);
  rt.rt_dev = (char *)iface;
  /* A default route already there (the agent re-addressing a restored VM) would make the add fail with
   * EEXIST or, via another gateway, win; at boot there is none and this fails harmlessly. */
  for (int i = 0; i < 8 && ioctl(s, SIOCDELRT, &rt) == 0; i++) {}
  set_addr(&rt.rt_gateway, gw.s_addr);
  rt.rt_flags = RTF_UP | RTF_GATEWAY;
  if (ioctl(s, SIOCADDRT, &rt) < 0) { snprintf(err, errlen, "default route via %s: %m", gateway); close(s); return -1; }
  close(s);
  return 0;
}
