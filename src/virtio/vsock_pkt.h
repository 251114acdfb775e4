/*
 * virtio-vsock packets (virtio 1.x, 5.10.6): the 44-byte header, checks of what a guest
 * transmits, and the payload room of a receive buffer. Pure (no sockets, no locks), so
 * it can be fuzzed.
 */
#ifndef TERN_VIRTIO_VSOCK_PKT_H
#define TERN_VIRTIO_VSOCK_PKT_H

#include <stdint.h>
#include <sys/uio.h>

#include "virtio/queue.h"

#define VSOCK_HDR_SIZE 44
#define VSOCK_HOST_CID 2
#define VSOCK_TYPE_STREAM 1

#define VSOCK_OP_INVALID 0
#define VSOCK_OP_REQUEST 1
#define VSOCK_OP_RESPONSE 2
#define VSOCK_OP_RST 3
#define VSOCK_OP_SHUTDOWN 4
#define VSOCK_OP_RW 5
#define VSOCK_OP_CREDIT_UPDATE 6
#define VSOCK_OP_CREDIT_REQUEST 7

/* SHUTDOWN flags: the sender will not receive / will not send any more. */
#define VSOCK_SHUTDOWN_RCV 1u
#define VSOCK_SHUTDOWN_SEND 2u

/* Largest payload of one packet either way (what Linux sends at most). */
#define VSOCK_MAX_PAYLOAD (64u * 1024)

struct vsock_hdr {
	uint64_t src_cid, dst_cid;
	uint32_t src_port, dst_port;
	uint32_t len;
	uint16_t type, op;
	uint32_t flags;
	uint32_t buf_alloc, fwd_cnt;
};

/* What to do with a transmitted packet (the chain itself was well formed). */
enum vsock_verdict {
	VSOCK_PKT_OK,
	VSOCK_PKT_DROP,	 /* not from the guest's CID or not to the host: ignored */
	VSOCK_PKT_RESET, /* bad type, op or length: answered with RST, payload unused */
};

struct vsock_pkt {
	struct vsock_hdr hdr;
	/* RW: the payload, hdr.len bytes of the chain's readable part after the header. */
	struct iovec data[VIRTQ_MAX_SIZE];
	unsigned int ndata;
	const char *why; /* DROP / RESET: what was wrong */
};

void vsock_hdr_decode(const uint8_t in[VSOCK_HDR_SIZE], struct vsock_hdr *h);
void vsock_hdr_encode(const struct vsock_hdr *h, uint8_t out[VSOCK_HDR_SIZE]);

/*
 * Parses a tx chain. Returns -EBADMSG when the chain's readable part cannot hold a
 * header (the device then needs a reset), else a verdict. OK means: type STREAM, a known
 * op, src_cid == guest_cid, dst_cid == VSOCK_HOST_CID, len 0 unless op is RW, and
 * len <= VSOCK_MAX_PAYLOAD and within the readable bytes after the header (sliced into
 * p->data). Writable segments of a tx chain are ignored.
 */
int vsock_pkt_parse(const struct virtq_chain *c, uint64_t guest_cid, struct vsock_pkt *p);

/*
 * The room for payload in an rx chain: slices up to max bytes (at most VSOCK_MAX_PAYLOAD) of its writable part after
 * the header into iov[0..*n). Returns the bytes of room (0..max), or -EBADMSG when the
 * writable part cannot hold a header. Readable segments of an rx chain are ignored.
 */
int vsock_pkt_rx_room(const struct virtq_chain *c, uint32_t max, struct iovec *iov,
		      unsigned int *n);
/* Writes the header at the start of an rx chain's writable part (checked by rx_room). */
void vsock_pkt_rx_put_hdr(const struct virtq_chain *c, const struct vsock_hdr *h);

#endif
