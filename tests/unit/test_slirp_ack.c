/*
 * ACK thinning for user-mode networking (src/backend/slirp_ack.c): a newer bare ACK of
 * the same connection that acknowledges more replaces a waiting one; a duplicate ACK, a
 * window update, another connection, data, options, other flags, IPv6 and short frames
 * never do.
 */
#include <string.h>

#include "backend/slirp_ack.h"
#include "unit.h"

/* Ethernet + IPv4 (20 bytes) + TCP (20 bytes) ACK from 10.0.2.2:80 to 10.0.2.15:40000. */
static size_t ack(uint8_t *f, uint32_t n, uint16_t window)
{
	memset(f, 0, 54);
	f[12] = 0x08;
	f[14] = 0x45;
	f[17] = 40; /* total length: no payload */
	f[23] = 6;
	memcpy(f + 26, "\x0a\x00\x02\x02\x0a\x00\x02\x0f", 8);
	f[34] = 0;
	f[35] = 80;
	f[36] = 0x9c;
	f[37] = 0x40;
	f[42] = (uint8_t)(n >> 24);
	f[43] = (uint8_t)(n >> 16);
	f[44] = (uint8_t)(n >> 8);
	f[45] = (uint8_t)n;
	f[46] = 5 << 4;
	f[47] = 0x10;
	f[48] = (uint8_t)(window >> 8);
	f[49] = (uint8_t)window;
	return 54;
}

TEST(slirp_ack_newer_supersedes_older)
{
	uint8_t a[64], b[64];
	size_t la = ack(a, 1000, 8192), lb = ack(b, 2448, 4096);

	CHECK(slirp_ack_supersedes(b, lb, a, la));
	CHECK(!slirp_ack_supersedes(a, la, b, lb)); /* older does not replace newer */
	/* Sequence numbers wrap: 0x10 acknowledges more than 0xfffffff0. */
	ack(a, 0xfffffff0u, 8192);
	ack(b, 0x10, 8192);
	CHECK(slirp_ack_supersedes(b, lb, a, la));
}

TEST(slirp_ack_keeps_what_carries_news)
{
	uint8_t a[64], b[64];
	size_t la = ack(a, 1000, 8192), lb;

	lb = ack(b, 1000, 8192); /* a duplicate ACK: a loss signal */
	CHECK(!slirp_ack_supersedes(b, lb, a, la));
	lb = ack(b, 1000, 65535); /* a window update */
	CHECK(!slirp_ack_supersedes(b, lb, a, la));
	lb = ack(b, 2000, 8192);
	b[37] ^= 1; /* another port */
	CHECK(!slirp_ack_supersedes(b, lb, a, la));
	lb = ack(b, 2000, 8192);
	b[29] ^= 1; /* another address */
	CHECK(!slirp_ack_supersedes(b, lb, a, la));
	lb = ack(b, 2000, 8192);
	b[47] = 0x18; /* PSH */
	CHECK(!slirp_ack_supersedes(b, lb, a, la));
	lb = ack(b, 2000, 8192);
	b[47] = 0x11; /* FIN */
	CHECK(!slirp_ack_supersedes(b, lb, a, la));
	lb = ack(b, 2000, 8192);
	b[17] = 41; /* a byte of data */
	CHECK(!slirp_ack_supersedes(b, lb, a, la));
	lb = ack(b, 2000, 8192);
	b[46] = 6 << 4; /* TCP options */
	CHECK(!slirp_ack_supersedes(b, lb, a, la));
	lb = ack(b, 2000, 8192);
	b[23] = 17; /* UDP */
	CHECK(!slirp_ack_supersedes(b, lb, a, la));
	lb = ack(b, 2000, 8192);
	b[12] = 0x86; /* not IPv4 */
	b[13] = 0xdd;
	CHECK(!slirp_ack_supersedes(b, lb, a, la));
	lb = ack(b, 2000, 8192);
	CHECK(!slirp_ack_supersedes(b, 40, a, la)); /* short */
	CHECK(!slirp_ack_supersedes(b, lb, a, 40));
	CHECK(slirp_ack_supersedes(b, lb, a, la)); /* and the untouched pair does */
}
