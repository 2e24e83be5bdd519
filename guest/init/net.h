#ifndef MVM_INIT_NET_H
#define MVM_INIT_NET_H
int net_loopback_up(void);
/* Gives iface the address cidr ("a.b.c.d/prefix"), brings it up, and adds a default route via gateway. */
int net_configure(const char *iface, const char *cidr, const char *gateway, char *err, int errlen);
/* Makes gateway the default route through iface, replacing any there was. */
int net_default_route(const char *iface, const char *gateway, char *err, int errlen);
#endif
