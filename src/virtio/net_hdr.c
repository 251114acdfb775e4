/*
 * virtio-net header handling and receive-buffer filling: pure functions over chains
 * that virtq_pop() produced (or a fuzzer built), shared by src/virtio/net.c.
 */
#include "virtio/net_hdr.h"
#include "core/le.h"

#include <endian.h>
#include <errno.h>
#include <string.h>

void net_hdr_decode(const uint8_t raw[NET_HDR_LEN], struct net_hdr *h)
{
	h->flags = raw[0];
	h->gso_type = raw[1];
	h->hdr_len = le_get16(raw + 2);
	h->gso_size = le_get16(raw + 4);
	h->csum_start = le_get16(raw + 6);
	h->csum_offset = le_get16(raw + 8);
	h->num_buffers = le_get16(raw + 10);
}

void net_hdr_encode(const struct net_hdr *h, uint8_t raw[NET_HDR_LEN])
{
	raw[0] = h->flags;
	raw[1] = h->gso_type;
	le_put16(raw + 2, h->hdr_len);
	le_put16(raw + 4, h->gso_size);
	le_put16(raw + 6, h->csum_start);
	le_put16(raw + 8, h->csum_offset);
	le_put16(raw + 10, h->num_buffers);
}

long net_tx_split(const struct iovec *iov, unsigned int n, uint8_t hdr[NET_HDR_LEN],
		  struct iovec *frame, unsigned int *nframe)
{
	uint64_t skip = NET_HDR_LEN, total = 0;
	unsigned int k = 0;

	*nframe = 0;
	if (virtq_iov_read(iov, n, 0, hdr, NET_HDR_LEN) != NET_HDR_LEN)
		return -EBADMSG;
	for (unsigned int i = 0; i < n && i < VIRTQ_MAX_SIZE; i++) {
		uint64_t len = iov[i].iov_len;
		if (skip >= len) {
			skip -= len;
			continue;
		}
		len -= skip;
		total += len;
		/* Checked per segment: a chain may be far longer than any frame. */
		if (total > NET_MAX_FRAME)
			return -EMSGSIZE;
		frame[k].iov_base = (uint8_t *)iov[i].iov_base + skip;
		frame[k].iov_len = (size_t)len;
		k++;
		skip = 0;
	}
	if (total < NET_ETH_HLEN)
		return -EMSGSIZE;
	*nframe = k;
	return (long)total;
}

/* Does [start + offset, +2) lie inside a frame of len bytes? */
static bool csum_field_ok(uint16_t start, uint16_t offset, size_t len)
{
	return (size_t)start + offset + 2 <= len;
}

int net_hdr_check_tx(struct net_hdr *h, uint64_t features, size_t frame_len)
{
	uint8_t gso = h->gso_type & (uint8_t)~VIRTIO_NET_HDR_GSO_ECN;
	bool ecn = h->gso_type & VIRTIO_NET_HDR_GSO_ECN;

	h->num_buffers = 0;
	h->flags &= (uint8_t)~VIRTIO_NET_HDR_F_DATA_VALID; /* means nothing on transmit */
	if (h->flags & ~VIRTIO_NET_HDR_F_NEEDS_CSUM)
		return -EINVAL;
	if (h->flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) {
		if (!(features & NET_F(VIRTIO_NET_F_CSUM)) ||
		    !csum_field_ok(h->csum_start, h->csum_offset, frame_len))
			return -EINVAL;
	}
	switch (gso) {
	case VIRTIO_NET_HDR_GSO_NONE:
		return ecn ? -EINVAL : 0;
	case VIRTIO_NET_HDR_GSO_TCPV4:
		if (!(features & NET_F(VIRTIO_NET_F_HOST_TSO4)))
			return -EINVAL;
		break;
	case VIRTIO_NET_HDR_GSO_TCPV6:
		if (!(features & NET_F(VIRTIO_NET_F_HOST_TSO6)))
			return -EINVAL;
		break;
	default:
		return -EINVAL;
	}
	/* A GSO frame needs a partial checksum and a segment size (5.1.6.2.1). */
	if (ecn && !(features & NET_F(VIRTIO_NET_F_HOST_ECN)))
		return -EINVAL;
	if (!(h->flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) || h->gso_size == 0)
		return -EINVAL;
	return 0;
}

uint64_t net_csum_add(uint64_t sum, const uint8_t *p, size_t n)
{
	size_t i;

	for (i = 0; i + 1 < n; i += 2)
		sum += (uint32_t)p[i] << 8 | p[i + 1];
	if (i < n)
		sum += (uint32_t)p[i] << 8;
	return sum;
}

uint16_t net_csum_fold(uint64_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

int net_csum_complete(uint8_t *frame, size_t len, uint16_t start, uint16_t offset)
{
	if (!csum_field_ok(start, offset, len))
		return -EINVAL;
	uint16_t c = net_csum_fold(net_csum_add(0, frame + start, len - start));
	/* 0 would mean "no checksum" to UDP; 0xffff is the same value for everyone else. */
	if (c == 0)
		c = 0xffff;
	frame[start + offset] = (uint8_t)(c >> 8);
	frame[start + offset + 1] = (uint8_t)c;
	return 0;
}

int net_hdr_fix_rx(struct net_hdr *h, uint8_t *frame, size_t len, uint64_t features)
{
	bool csum = features & NET_F(VIRTIO_NET_F_GUEST_CSUM);
	uint8_t gso = h->gso_type & (uint8_t)~VIRTIO_NET_HDR_GSO_ECN;
	bool ecn = h->gso_type & VIRTIO_NET_HDR_GSO_ECN;

	h->num_buffers = 0;
	if (h->flags & ~(VIRTIO_NET_HDR_F_NEEDS_CSUM | VIRTIO_NET_HDR_F_DATA_VALID))
		return -EINVAL;
	switch (gso) {
	case VIRTIO_NET_HDR_GSO_NONE:
		if (ecn)
			return -EINVAL;
		break;
	case VIRTIO_NET_HDR_GSO_TCPV4:
		if (!csum || !(features & NET_F(VIRTIO_NET_F_GUEST_TSO4)))
			return -EINVAL;
		break;
	case VIRTIO_NET_HDR_GSO_TCPV6:
		if (!csum || !(features & NET_F(VIRTIO_NET_F_GUEST_TSO6)))
			return -EINVAL;
		break;
	default:
		return -EINVAL;
	}
	if (ecn && !(features & NET_F(VIRTIO_NET_F_GUEST_ECN)))
		return -EINVAL;
	if (h->flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) {
		if (!csum_field_ok(h->csum_start, h->csum_offset, len))
			return -EINVAL;
		if (!csum) {
			/* The driver wants finished checksums: finish it here. */
			net_csum_complete(frame, len, h->csum_start, h->csum_offset);
			h->csum_start = h->csum_offset = 0;
		}
	}
	if (!csum) {
		/* Without GUEST_CSUM the flags must be zero (5.1.6.3.2). */
		h->flags = 0;
	}
	return 0;
}

/* Writes bytes [off, off + chunk) of the stream "header then frame" into c's buffers. */
static void put(const struct virtq_chain *c, const uint8_t *hdr, const uint8_t *frame, size_t off,
		size_t chunk)
{
	const struct iovec *iov = c->iov + c->nread;
	size_t done = 0;

	if (off < NET_HDR_LEN) {
		done = NET_HDR_LEN - off;
		if (done > chunk)
			done = chunk;
		virtq_iov_write(iov, c->nwrite, 0, hdr + off, done);
	}
	if (done < chunk)
		virtq_iov_write(iov, c->nwrite, done, frame + (off + done - NET_HDR_LEN),
				chunk - done);
}

int net_rx_fill(net_rx_pop_fn pop, void *opaque, struct virtq_chain *first,
		struct virtq_chain *scratch, bool mergeable, unsigned int max_chains,
		const uint8_t hdr[NET_HDR_LEN], const uint8_t *frame, size_t len,
		struct net_rx_out *out)
{
	size_t total = NET_HDR_LEN + len, off = 0;
	uint8_t nb[2];

	out->n = 0;
	if (max_chains > VIRTQ_MAX_SIZE)
		max_chains = VIRTQ_MAX_SIZE;
	if (!mergeable)
		max_chains = 1;
	while (off < total) {
		struct virtq_chain *c = out->n ? scratch : first;
		if (out->n == max_chains)
			return NET_RX_TOO_BIG;
		int r = pop(opaque, c);
		if (r < 0)
			return -EBADMSG;
		if (r == 0)
			return NET_RX_NO_BUFFERS;
		out->n++;
		/* Receive buffers are device-writable only, each at least a header (5.1.6.3.1). */
		if (c->nread || c->write_len < NET_HDR_LEN)
			return -EBADMSG;
		if (!mergeable && c->write_len < total)
			return NET_RX_TOO_BIG;
		size_t chunk = total - off;
		if (chunk > c->write_len)
			chunk = (size_t)c->write_len;
		put(c, hdr, frame, off, chunk);
		out->heads[out->n - 1] = c->head;
		out->lens[out->n - 1] = (uint32_t)chunk;
		off += chunk;
	}
	/* num_buffers is 1 without mergeable buffers (VERSION_1), else the chains used. */
	le_put16(nb, (uint16_t)out->n);
	virtq_iov_write(first->iov + first->nread, first->nwrite, 10, nb, 2);
	return NET_RX_DONE;
}
