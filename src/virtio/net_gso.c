/* Software checksum and TCP segmentation offload (net_gso.h). */
#include "virtio/net_gso.h"
#include "core/be.h"

#include <errno.h>
#include <string.h>

#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86dd
#define ETH_P_8021Q 0x8100
#define IPPROTO_TCP_ 6
#define TCP_FIN 0x01
#define TCP_PSH 0x08
#define TCP_CWR 0x80

/* Where the layers start, checked against len: l3 (IP) and l4 (TCP), and the header size. */
struct layout {
	size_t l3, l4, hdrs;
	bool v4;
};

static int parse(const struct net_hdr *h, const uint8_t *f, size_t len, struct layout *o)
{
	uint8_t gso = h->gso_type & (uint8_t)~VIRTIO_NET_HDR_GSO_ECN;
	size_t l3 = NET_ETH_HLEN;

	if (len < NET_ETH_HLEN)
		return -EINVAL;
	uint16_t type = be_get16(f + 12);
	if (type == ETH_P_8021Q) {
		if (len < NET_ETH_HLEN + 4)
			return -EINVAL;
		type = be_get16(f + 16);
		l3 += 4;
	}
	o->l3 = l3;
	o->v4 = gso == VIRTIO_NET_HDR_GSO_TCPV4;
	if (o->v4) {
		if (type != ETH_P_IP || len < l3 + 20 || f[l3] >> 4 != 4)
			return -EINVAL;
		size_t ihl = (size_t)(f[l3] & 15) * 4;
		/* No fragments: a TSO frame is one datagram. */
		if (ihl < 20 || len < l3 + ihl || f[l3 + 9] != IPPROTO_TCP_ ||
		    (be_get16(f + l3 + 6) & 0x3fff))
			return -EINVAL;
		o->l4 = l3 + ihl;
	} else if (gso == VIRTIO_NET_HDR_GSO_TCPV6) {
		if (type != ETH_P_IPV6 || len < l3 + 40 || f[l3] >> 4 != 6 ||
		    f[l3 + 6] != IPPROTO_TCP_)
			return -EINVAL;
		o->l4 = l3 + 40;
	} else {
		return -EINVAL;
	}
	if (len < o->l4 + 20)
		return -EINVAL;
	size_t doff = (size_t)(f[o->l4 + 12] >> 4) * 4;
	if (doff < 20 || len < o->l4 + doff)
		return -EINVAL;
	o->hdrs = o->l4 + doff;
	return 0;
}

/* The TCP checksum of the segment s (headers fixed, its field zero), stored in place. */
static void tcp_csum(uint8_t *s, const struct layout *o, size_t tcp_len)
{
	uint64_t sum = 0;

	if (o->v4) {
		sum = net_csum_add(sum, s + o->l3 + 12, 8); /* source and destination */
	} else {
		sum = net_csum_add(sum, s + o->l3 + 8, 32);
	}
	sum += IPPROTO_TCP_ + (uint64_t)tcp_len;
	sum = net_csum_add(sum, s + o->l4, tcp_len);
	be_put16(s + o->l4 + 16, net_csum_fold(sum));
}

int net_gso_segment(const struct net_hdr *h, uint8_t *frame, size_t len, uint8_t *seg,
		    size_t seg_len, net_gso_emit_fn emit, void *opaque)
{
	uint8_t gso = h->gso_type & (uint8_t)~VIRTIO_NET_HDR_GSO_ECN;
	struct layout o;
	int r;

	if (gso == VIRTIO_NET_HDR_GSO_NONE) {
		if ((h->flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) &&
		    net_csum_complete(frame, len, h->csum_start, h->csum_offset))
			return -EINVAL;
		r = emit(opaque, frame, len);
		return r ? r : 1;
	}
	if ((r = parse(h, frame, len, &o)))
		return r;
	size_t mss = h->gso_size, payload = len - o.hdrs, ihl = o.l4 - o.l3;
	size_t doff = o.hdrs - o.l4;
	if (mss == 0 || o.hdrs + mss > seg_len)
		return -EINVAL;
	uint32_t seq = be_get32(frame + o.l4 + 4);
	uint16_t id = o.v4 ? be_get16(frame + o.l3 + 4) : 0;
	uint8_t flags = frame[o.l4 + 13];
	int n = 0;
	size_t off = 0;
	do {
		size_t part = payload - off < mss ? payload - off : mss;
		bool first = off == 0, last = off + part == payload;
		memcpy(seg, frame, o.hdrs);
		memcpy(seg + o.hdrs, frame + o.hdrs + off, part);
		if (o.v4) {
			be_put16(seg + o.l3 + 2, (uint16_t)(ihl + doff + part));
			be_put16(seg + o.l3 + 4, (uint16_t)(id + n));
			be_put16(seg + o.l3 + 10, 0);
			be_put16(seg + o.l3 + 10, net_csum_fold(net_csum_add(0, seg + o.l3, ihl)));
		} else {
			be_put16(seg + o.l3 + 4, (uint16_t)(doff + part));
		}
		be_put32(seg + o.l4 + 4, seq + (uint32_t)off);
		seg[o.l4 + 13] =
			(uint8_t)(flags & ~(last ? 0 : TCP_FIN | TCP_PSH) & ~(first ? 0 : TCP_CWR));
		be_put16(seg + o.l4 + 16, 0);
		tcp_csum(seg, &o, doff + part);
		if ((r = emit(opaque, seg, o.hdrs + part)))
			return r;
		n++;
		off += part;
	} while (off < payload);
	return n;
}
