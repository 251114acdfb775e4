/*
 * User-mode network backend over libslirp: the guest gets a private 10.0.2.0/24 network
 * (itself 10.0.2.15 by DHCP, gateway 10.0.2.2, DNS 10.0.2.3, like QEMU's "-netdev user";
 * IPv6 fec0::/64 too), outbound TCP/UDP through ordinary host sockets, and host port
 * forwarding. Needs no privileges. slirp's sockets and timers run on the event loop.
 */
#ifndef TERN_BACKEND_SLIRP_H
#define TERN_BACKEND_SLIRP_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backend/net.h"
#include "core/loop.h"

#define SLIRP_MTU_MAX 65521 /* libslirp's largest if_mtu */

/* Host port forwarding: host_addr:host_port on the host reaches guest_addr:guest_port. */
struct slirp_hostfwd {
	bool udp;
	struct in_addr host_addr;  /* 127.0.0.1 unless given */
	uint16_t host_port;	   /* 1..65535 */
	struct in_addr guest_addr; /* 0: the guest's DHCP address, 10.0.2.15 */
	uint16_t guest_port;
};

struct slirp_backend_opts {
	uint16_t mtu; /* 0: 1500 */
	unsigned int nhostfwd;
	const struct slirp_hostfwd *hostfwd;
};

/* Creates the stack and its forwards. 0, or -errno with a message in err. */
int slirp_backend_open(struct net_backend **out, const struct slirp_backend_opts *o,
		       struct loop *loop, char *err, size_t errlen);

/* Frames slirp sent while the receive queue was full (dropped: TCP resends them). */
unsigned long long slirp_backend_dropped(const struct net_backend *be);

#endif
