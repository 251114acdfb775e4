/*
 * The virtio-net packet header (virtio 1.x, 5.1.6) and the pure steps of the data path:
 * checking a transmitted chain and its header, fixing up a received header for what the
 * driver accepted, and spreading a received frame over one or several (mergeable) receive
 * chains. No KVM, no threads, no allocation: fuzzed by fuzz/fuzz_net.c.
 */
#ifndef TERN_VIRTIO_NET_HDR_H
#define TERN_VIRTIO_NET_HDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "virtio/queue.h"

/* Feature bits (5.1.3) */
#define VIRTIO_NET_F_CSUM 0
#define VIRTIO_NET_F_GUEST_CSUM 1
#define VIRTIO_NET_F_MTU 3
#define VIRTIO_NET_F_MAC 5
#define VIRTIO_NET_F_GUEST_TSO4 7
#define VIRTIO_NET_F_GUEST_TSO6 8
#define VIRTIO_NET_F_GUEST_ECN 9
#define VIRTIO_NET_F_GUEST_UFO 10
#define VIRTIO_NET_F_HOST_TSO4 11
#define VIRTIO_NET_F_HOST_TSO6 12
#define VIRTIO_NET_F_HOST_ECN 13
#define VIRTIO_NET_F_HOST_UFO 14
#define VIRTIO_NET_F_MRG_RXBUF 15
#define VIRTIO_NET_F_STATUS 16
#define VIRTIO_NET_F_CTRL_VQ 17
#define VIRTIO_NET_F_GUEST_ANNOUNCE 21

/* Config status bits (5.1.4) */
#define VIRTIO_NET_S_LINK_UP 1
#define VIRTIO_NET_S_ANNOUNCE 2

/* Header flags and GSO types (5.1.6) */
#define VIRTIO_NET_HDR_F_NEEDS_CSUM 1
#define VIRTIO_NET_HDR_F_DATA_VALID 2
#define VIRTIO_NET_HDR_GSO_NONE 0
#define VIRTIO_NET_HDR_GSO_TCPV4 1
#define VIRTIO_NET_HDR_GSO_UDP 3
#define VIRTIO_NET_HDR_GSO_TCPV6 4
#define VIRTIO_NET_HDR_GSO_ECN 0x80

/*
 * tern always negotiates VERSION_1, so the header always has num_buffers: 12 bytes,
 * little-endian.
 */
#define NET_HDR_LEN 12
#define NET_ETH_HLEN 14
/* Largest frame (without the header) either way: a 64 KiB GSO packet and its headers. */
#define NET_MAX_FRAME 65550

#define NET_F(bit) (1ULL << (bit))

/* The header with its fields in host order. */
struct net_hdr {
	uint8_t flags;
	uint8_t gso_type;
	uint16_t hdr_len;
	uint16_t gso_size;
	uint16_t csum_start;
	uint16_t csum_offset;
	uint16_t num_buffers;
};

void net_hdr_decode(const uint8_t raw[NET_HDR_LEN], struct net_hdr *h);
void net_hdr_encode(const struct net_hdr *h, uint8_t raw[NET_HDR_LEN]);

/*
 * Splits the device-readable part of a transmit chain: copies the header out into hdr
 * (it may span segments) and points frame[] at the bytes after it (at most
 * VIRTQ_MAX_SIZE segments, inside iov[]). Returns the frame length; -EBADMSG when the
 * chain cannot even hold a header (a driver bug: the device needs a reset); -EMSGSIZE
 * when the frame is shorter than an Ethernet header or longer than NET_MAX_FRAME (it is
 * dropped).
 */
long net_tx_split(const struct iovec *iov, unsigned int n, uint8_t hdr[NET_HDR_LEN],
		  struct iovec *frame, unsigned int *nframe);

/*
 * Checks a transmitted header against the negotiated features (offloads the device
 * offered) and the frame length; clears what a device ignores (num_buffers, DATA_VALID).
 * 0, or -EINVAL: the frame is dropped.
 */
int net_hdr_check_tx(struct net_hdr *h, uint64_t features, size_t frame_len);

/*
 * Makes a received header (from a backend with vnet headers) fit what the driver
 * accepted: DATA_VALID only with GUEST_CSUM; a partial checksum the driver cannot take is
 * completed here; GSO only of the kinds it accepted. 0, or -EINVAL: the frame is dropped.
 */
int net_hdr_fix_rx(struct net_hdr *h, uint8_t *frame, size_t len, uint64_t features);

/*
 * Completes a partial checksum (NEEDS_CSUM): the ones' complement sum of frame[start..len)
 * (whose field at start+offset holds the pseudo-header sum) stored at start+offset.
 * -EINVAL when the field is outside the frame.
 */
int net_csum_complete(uint8_t *frame, size_t len, uint16_t start, uint16_t offset);
/*
 * The Internet checksum in two steps: net_csum_add adds p[0..n) as big-endian 16-bit
 * words (an odd last byte padded with zero) to a running sum, net_csum_fold folds it to
 * 16 bits and complements it.
 */
uint64_t net_csum_add(uint64_t sum, const uint8_t *p, size_t n);
uint16_t net_csum_fold(uint64_t sum);

/* Takes the next receive chain: 1, 0 when none is posted, <0 when the ring is malformed. */
typedef int (*net_rx_pop_fn)(void *opaque, struct virtq_chain *c);

enum net_rx_result {
	NET_RX_DONE = 1,       /* out->heads/lens hold the chains to return, in order */
	NET_RX_NO_BUFFERS = 0, /* not enough buffers posted: give back out->n chains, wait */
	NET_RX_TOO_BIG = -1,   /* cannot ever fit: give back out->n chains, drop the frame */
};

struct net_rx_out {
	unsigned int n; /* chains popped */
	uint16_t heads[VIRTQ_MAX_SIZE];
	uint32_t lens[VIRTQ_MAX_SIZE];
};

/*
 * Writes the header (num_buffers filled in here) and the frame into receive chains taken
 * with pop(): one chain without mergeable buffers, otherwise as many as needed, at most
 * max_chains (the queue size: more can never be posted at once). first and scratch are
 * chain buffers the caller provides. Returns an enum net_rx_result, or -EBADMSG for a
 * malformed ring or a receive chain that breaks the spec (device-readable segments, or
 * less room than a header): the device then needs a reset (out->n chains were popped).
 */
int net_rx_fill(net_rx_pop_fn pop, void *opaque, struct virtq_chain *first,
		struct virtq_chain *scratch, bool mergeable, unsigned int max_chains,
		const uint8_t hdr[NET_HDR_LEN], const uint8_t *frame, size_t len,
		struct net_rx_out *out);

#endif
