/*
 * Software transmit offloads (src/virtio/net_gso.c): a TSO frame over IPv4 and IPv6 is cut
 * into gso_size segments whose headers (lengths, IPv4 id and checksum, sequence numbers,
 * flags, TCP checksum) are what a NIC would send and whose payloads rejoin the original;
 * a partial checksum alone is completed; headers that do not hold together are refused
 * with nothing sent.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "unit.h"
#include "virtio/net_gso.h"

#define PAYLOAD 4000
#define MSS 1448

struct cap {
	unsigned int n;
	uint8_t f[8][1600];
	size_t len[8];
};

static int capture(void *opaque, const uint8_t *frame, size_t len)
{
	struct cap *c = opaque;

	if (c->n == 8 || len > sizeof(c->f[0]))
		return -ENOSPC;
	memcpy(c->f[c->n], frame, len);
	c->len[c->n++] = len;
	return 0;
}

static uint16_t g16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t g32(const uint8_t *p)
{
	return (uint32_t)g16(p) << 16 | g16(p + 2);
}

/* The ones' complement sum of p[0..n) plus extra, folded: 0xffff when a checksum holds. */
static uint16_t sum(const uint8_t *p, size_t n, uint32_t extra)
{
	uint64_t s = extra;
	size_t i;

	for (i = 0; i + 1 < n; i += 2)
		s += g16(p + i);
	if (i < n)
		s += (uint32_t)p[i] << 8;
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return (uint16_t)s;
}

/* An Ethernet + IP + TCP frame with PAYLOAD bytes of pattern; returns its length. */
static size_t tso_frame(uint8_t *f, bool v6, uint8_t tcp_flags)
{
	size_t l3 = 14, l4 = v6 ? l3 + 40 : l3 + 20;

	memset(f, 0, l4 + 20);
	f[12] = v6 ? 0x86 : 0x08;
	f[13] = v6 ? 0xdd : 0x00;
	if (v6) {
		f[l3] = 0x60;
		f[l3 + 6] = 6;
		f[l3 + 7] = 64;
		for (int i = 0; i < 32; i++)
			f[l3 + 8 + i] = (uint8_t)(i + 1);
	} else {
		f[l3] = 0x45;
		f[l3 + 4] = 0x12; /* id 0x1234 */
		f[l3 + 5] = 0x34;
		f[l3 + 6] = 0x40; /* DF */
		f[l3 + 8] = 64;
		f[l3 + 9] = 6;
		memcpy(f + l3 + 12, "\x0a\x00\x02\x0f\x0a\x00\x02\x02", 8);
	}
	f[l4] = 0x9c; /* ports */
	f[l4 + 3] = 80;
	f[l4 + 4] = 0xff; /* seq 0xfffff000: it wraps */
	f[l4 + 5] = 0xff;
	f[l4 + 6] = 0xf0;
	f[l4 + 12] = 5 << 4;
	f[l4 + 13] = tcp_flags;
	for (size_t i = 0; i < PAYLOAD; i++)
		f[l4 + 20 + i] = (uint8_t)(i * 7 + 3);
	/* The partial checksum a driver leaves: garbage here, it must not matter. */
	f[l4 + 16] = 0xde;
	f[l4 + 17] = 0xad;
	return l4 + 20 + PAYLOAD;
}

static void check_segments(bool v6)
{
	static uint8_t f[8192], seg[2048];
	struct cap c = { 0 };
	size_t l3 = 14, l4 = v6 ? 54 : 34;
	size_t len = tso_frame(f, v6, 0x80 | 0x10 | 0x08 | 0x01); /* CWR ACK PSH FIN */
	struct net_hdr h = { .flags = VIRTIO_NET_HDR_F_NEEDS_CSUM,
			     .gso_type = v6 ? VIRTIO_NET_HDR_GSO_TCPV6 : VIRTIO_NET_HDR_GSO_TCPV4,
			     .hdr_len = (uint16_t)(l4 + 20),
			     .gso_size = MSS,
			     .csum_start = (uint16_t)l4,
			     .csum_offset = 16 };

	CHECK(net_gso_segment(&h, f, len, seg, sizeof(seg), capture, &c) == 3);
	REQUIRE(c.n == 3);
	size_t off = 0;
	for (unsigned int i = 0; i < 3; i++) {
		const uint8_t *s = c.f[i];
		size_t part = i < 2 ? MSS : PAYLOAD - 2 * MSS;
		CHECK(c.len[i] == l4 + 20 + part);
		CHECK(!memcmp(s, f, 14)); /* the Ethernet header as sent */
		if (v6) {
			CHECK(g16(s + l3 + 4) == 20 + part);
		} else {
			CHECK(g16(s + l3 + 2) == 20 + 20 + part);
			CHECK(g16(s + l3 + 4) == 0x1234 + i);
			CHECK(sum(s + l3, 20, 0) == 0xffff); /* the IPv4 header checksum holds */
		}
		CHECK(g32(s + l4 + 4) == 0xfffff000u + (uint32_t)off);
		uint8_t fl = s[l4 + 13];
		CHECK(!!(fl & 0x80) == (i == 0)); /* CWR on the first */
		CHECK(!!(fl & 0x09) == (i == 2) && (i < 2 || (fl & 0x09) == 0x09)); /* PSH FIN */
		CHECK(fl & 0x10);
		/* The TCP checksum holds over the pseudo-header and the segment. */
		uint32_t pseudo = 6 + (uint32_t)(20 + part);
		pseudo += v6 ? sum(s + l3 + 8, 32, 0) : sum(s + l3 + 12, 8, 0);
		CHECK(sum(s + l4, 20 + part, pseudo) == 0xffff);
		CHECK(!memcmp(s + l4 + 20, f + l4 + 20 + off, part));
		off += part;
	}
}

TEST(net_gso_cuts_tcp4_into_segments)
{
	check_segments(false);
}

TEST(net_gso_cuts_tcp6_into_segments)
{
	check_segments(true);
}

TEST(net_gso_completes_a_partial_checksum)
{
	static uint8_t f[8192], seg[2048];
	struct cap c = { 0 };
	size_t len = tso_frame(f, false, 0x10) - PAYLOAD + 100;
	struct net_hdr h = { .flags = VIRTIO_NET_HDR_F_NEEDS_CSUM,
			     .csum_start = 34,
			     .csum_offset = 16 };

	/* The field holds the pseudo-header sum, as a driver leaves it. */
	uint16_t ps = sum(f + 26, 8, 6 + 120);
	f[50] = (uint8_t)(ps >> 8);
	f[51] = (uint8_t)ps;
	CHECK(net_gso_segment(&h, f, len, seg, sizeof(seg), capture, &c) == 1);
	REQUIRE(c.n == 1 && c.len[0] == len);
	CHECK(sum(c.f[0] + 34, 120, 6 + 120 + sum(f + 26, 8, 0)) == 0xffff);
}

TEST(net_gso_refuses_what_does_not_hold_together)
{
	static uint8_t f[8192], seg[2048];
	struct net_hdr h = { .flags = VIRTIO_NET_HDR_F_NEEDS_CSUM,
			     .gso_type = VIRTIO_NET_HDR_GSO_TCPV4,
			     .gso_size = MSS,
			     .csum_start = 34,
			     .csum_offset = 16 };
	struct cap c = { 0 };
	size_t len = tso_frame(f, false, 0x10);

	/* Each of these is dropped whole: nothing reaches emit. */
	f[14] = 0x44; /* IHL 16 bytes */
	CHECK(net_gso_segment(&h, f, len, seg, sizeof(seg), capture, &c) == -EINVAL);
	f[14] = 0x4f; /* IHL 60: the TCP header then runs past a short frame */
	CHECK(net_gso_segment(&h, f, 80, seg, sizeof(seg), capture, &c) == -EINVAL);
	f[14] = 0x45;
	f[23] = 17; /* UDP */
	CHECK(net_gso_segment(&h, f, len, seg, sizeof(seg), capture, &c) == -EINVAL);
	f[23] = 6;
	f[20] = 0x20; /* more fragments */
	CHECK(net_gso_segment(&h, f, len, seg, sizeof(seg), capture, &c) == -EINVAL);
	f[20] = 0x40;
	f[46] = 4 << 4; /* TCP data offset 16 */
	CHECK(net_gso_segment(&h, f, len, seg, sizeof(seg), capture, &c) == -EINVAL);
	f[46] = 15 << 4; /* 60 bytes, past a 70-byte frame */
	CHECK(net_gso_segment(&h, f, 70, seg, sizeof(seg), capture, &c) == -EINVAL);
	f[46] = 5 << 4;
	f[12] = 0x86; /* IPv6 ethertype with a TCPv4 header type */
	f[13] = 0xdd;
	CHECK(net_gso_segment(&h, f, len, seg, sizeof(seg), capture, &c) == -EINVAL);
	f[12] = 0x08;
	f[13] = 0x00;
	h.gso_size = 1500; /* more than the segment buffer holds with the headers */
	CHECK(net_gso_segment(&h, f, len, seg, 1500, capture, &c) == -EINVAL);
	h.gso_size = MSS;
	CHECK(net_gso_segment(&h, f, 20, seg, sizeof(seg), capture, &c) == -EINVAL);
	CHECK(c.n == 0);
	/* And the frame that was mangled above, mended, goes through. */
	CHECK(net_gso_segment(&h, f, len, seg, sizeof(seg), capture, &c) == 3);
}
