/*
 * TAP network backend: a Linux tap interface (layer 2) opened through /dev/net/tun with
 * IFF_TAP|IFF_NO_PI|IFF_VNET_HDR, or a tap fd a manager passes in. With the virtio-net
 * header the checksum and TSO offloads pass straight through to the host stack.
 */
#ifndef TERN_BACKEND_TAP_H
#define TERN_BACKEND_TAP_H

#include <stddef.h>
#include <stdint.h>

#include "backend/net.h"

/*
 * Opens the tap interface name, creating it when it does not exist (which needs
 * CAP_NET_ADMIN; a created interface is brought up and goes away with tern). mtu 0 leaves
 * the interface MTU alone. On failure returns -errno and a message in err naming the cause.
 */
int tap_open(struct net_backend **out, const char *name, uint16_t mtu, char *err, size_t errlen);
/*
 * Uses fd, an already attached tap queue (TUNSETIFF done by the caller), which the
 * backend then owns. Checks it is a tap with IFF_NO_PI; without IFF_VNET_HDR no offloads
 * are offered.
 */
int tap_open_fd(struct net_backend **out, int fd, uint16_t mtu, char *err, size_t errlen);

/* TUNSETOFFLOAD flags a driver's accepted virtio-net features map to (0 when none). */
unsigned int tap_offload_flags(uint64_t features);

#endif
