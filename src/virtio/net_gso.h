/*
 * The transmit offloads a NIC does, done in software for a backend that takes only whole,
 * checksummed frames (user-mode networking): the device can then offer the driver
 * checksum and TCP segmentation offload anyway, so the guest hands over one 64 KiB TCP
 * frame where it would otherwise build, checksum and queue some forty. Pure functions,
 * no allocation: fuzzed by fuzz/fuzz_net.c.
 */
#ifndef TERN_VIRTIO_NET_GSO_H
#define TERN_VIRTIO_NET_GSO_H

#include <stddef.h>
#include <stdint.h>

#include "virtio/net_hdr.h"

/* Receives one finished frame (valid during the call); returns 0 or -errno. */
typedef int (*net_gso_emit_fn)(void *opaque, const uint8_t *frame, size_t len);

/*
 * What the wire would carry for frame[0..len), sent by a driver with header h (already
 * accepted by net_hdr_check_tx): with GSO (TCPv4, TCPv6; an optional 802.1Q tag; no IPv4
 * options beyond the header's length, no IPv6 extension headers) the payload cut into
 * gso_size pieces, each with its own copy of the headers fixed up: IP lengths, the IPv4
 * id (incremented per segment) and header checksum, the TCP sequence number, FIN and PSH
 * on the last segment only, CWR on the first only, the TCP checksum. Without GSO, a
 * partial checksum (NEEDS_CSUM) completed in place. Segments are built in seg, which
 * needs room for the headers and gso_size bytes. Returns how many frames went to emit, or
 * -EINVAL for headers that do not hold together (nothing was emitted), or emit's error.
 */
int net_gso_segment(const struct net_hdr *h, uint8_t *frame, size_t len, uint8_t *seg,
		    size_t seg_len, net_gso_emit_fn emit, void *opaque);

#endif
