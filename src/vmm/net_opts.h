/* `--net` specs: tap=NAME | tap-fd=N | user, then mac=, mtu= and (user) hostfwd=. */
#ifndef TERN_VMM_NET_OPTS_H
#define TERN_VMM_NET_OPTS_H

#include <net/if.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backend/slirp.h"

#define VMM_MAX_NETS 8
#define NET_MAX_HOSTFWD 16
#define NET_MTU_MIN 68
#define NET_MTU_MAX 65535

enum net_kind { NET_TAP, NET_TAP_FD, NET_USER };

#define NET_ID_MAX 64

struct net_config {
	char id[NET_ID_MAX + 1]; /* the API's iface_id ("eth<i>" from --net) */
	enum net_kind kind;
	char tap_name[IFNAMSIZ]; /* NET_TAP */
	int tap_fd;		 /* NET_TAP_FD */
	uint8_t mac[6];		 /* given, or random and locally administered */
	bool mac_given;
	uint16_t mtu; /* 0: not set (the guest uses 1500; VIRTIO_NET_F_MTU not offered) */
	unsigned int nhostfwd;
	struct slirp_hostfwd hostfwd[NET_MAX_HOSTFWD];
};

/*
 * Parses one spec ("tap=tap0,mac=52:54:00:12:34:56", "user,hostfwd=tcp::2222-:22"). On
 * error returns -EINVAL with a message naming the field and what it accepts in err.
 */
int net_opts_parse(const char *spec, struct net_config *c, char *err, size_t errlen);
/* Checks several NICs together: no MAC, tap name or tap fd twice. 0 or -EINVAL + err. */
int net_opts_check_all(const struct net_config *c, unsigned int n, char *err, size_t errlen);

/* "xx:xx:xx:xx:xx:xx" (hex, either case) of a unicast address. 0 or -EINVAL. */
int net_mac_parse(const char *s, uint8_t mac[6]);
/* A random unicast, locally administered address. */
void net_mac_random(uint8_t mac[6]);
/* Parses "tcp:[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT" (or udp:). 0 or -EINVAL + err. */
int net_hostfwd_parse(const char *s, struct slirp_hostfwd *f, char *err, size_t errlen);

#endif
