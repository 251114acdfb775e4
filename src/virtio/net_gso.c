/* Software checksum and TCP segmentation offload (net_gso.h). */
#include "virtio/net_gso.h"

#include <errno.h>
#include <string.h>

#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86dd
#define ETH_P_8021Q 0x8100
#define IPPROTO_TCP_ 6
#define TCP_FIN 0x01
#define TCP_PSH 0x08
#define TCP_CWR 0x80

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static void put32(uint8_t *p, uint32_t v)
{
	put16(p, (uint16_t)(v >> 16));
	put16(p + 2, (uint16_t)v);
}

/* The ones' complement sum of p[0..n) in big-endian 16-bit words, added to sum. */
static uint64_t sum_bytes(uint64_t sum, const uint8_t *p, size_t n)
{
	size_t i;

	for (i = 0; i + 1 < n; i += 2)
		sum += get16(p + i);
	if (i < n)
		sum += (uint32_t)p[i] << 8;
	return sum;
}

static uint16_t fold(uint64_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

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
	uint16_t type = get16(f + 12);
	if (type == ETH_P_8021Q) {
		if (len < NET_ETH_HLEN + 4)
			return -EINVAL;
		type = get16(f + 16);
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
		    (get16(f + l3 + 6) & 0x3fff))
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
		sum = sum_bytes(sum, s + o->l3 + 12, 8); /* source and destination */
	} else {
		sum = sum_bytes(sum, s + o->l3 + 8, 32);
	}
	sum += IPPROTO_TCP_ + (uint64_t)tcp_len;
	sum = sum_bytes(sum, s + o->l4, tcp_len);
	put16(s + o->l4 + 16, fold(sum));
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
	uint32_t seq = get32(frame + o.l4 + 4);
	uint16_t id = o.v4 ? get16(frame + o.l3 + 4) : 0;
	uint8_t flags = frame[o.l4 + 13];
	int n = 0;
	size_t off = 0;
	do {
		size_t part = payload - off < mss ? payload - off : mss;
		bool first = off == 0, last = off + part == payload;
		memcpy(seg, frame, o.hdrs);
		memcpy(seg + o.hdrs, frame + o.hdrs + off, part);
		if (o.v4) {
			put16(seg + o.l3 + 2, (uint16_t)(ihl + doff + part));
			put16(seg + o.l3 + 4, (uint16_t)(id + n));
			put16(seg + o.l3 + 10, 0);
			put16(seg + o.l3 + 10, fold(sum_bytes(0, seg + o.l3, ihl)));
		} else {
			put16(seg + o.l3 + 4, (uint16_t)(doff + part));
		}
		put32(seg + o.l4 + 4, seq + (uint32_t)off);
		seg[o.l4 + 13] =
			(uint8_t)(flags & ~(last ? 0 : TCP_FIN | TCP_PSH) & ~(first ? 0 : TCP_CWR));
		put16(seg + o.l4 + 16, 0);
		tcp_csum(seg, &o, doff + part);
		if ((r = emit(opaque, seg, o.hdrs + part)))
			return r;
		n++;
		off += part;
	} while (off < payload);
	return n;
}
