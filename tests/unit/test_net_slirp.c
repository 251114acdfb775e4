/*
 * Tests for the user-mode backend (src/backend/slirp.c) without a guest: the test plays
 * the guest, building Ethernet frames (ARP, DHCP, UDP) and reading what libslirp answers,
 * with the event loop driving slirp's sockets and timers. Only loopback addresses are used
 * on the host side; no privileges are needed.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "backend/slirp.h"
#include "core/loop.h"
#include "unit.h"

static const uint8_t guest_mac[6] = { 0x52, 0x54, 0x00, 0x12, 0x34, 0x56 };
static uint8_t frame[2048], got[70000];
static struct loop *loop;
static char err[256];

static uint16_t ip_csum(const uint8_t *p, size_t len)
{
	uint32_t sum = 0;

	for (size_t i = 0; i + 1 < len; i += 2)
		sum += (uint32_t)p[i] << 8 | p[i + 1];
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

/* Ethernet + IPv4 + UDP (checksum 0: none) around payload; returns the frame length. */
static size_t udp_frame(const char *src, const char *dst, uint16_t sport, uint16_t dport,
			const uint8_t *dmac, const void *payload, size_t len)
{
	uint8_t *ip = frame + 14, *udp = ip + 20;
	size_t ilen = 20 + 8 + len;

	memcpy(frame, dmac, 6);
	memcpy(frame + 6, guest_mac, 6);
	put16(frame + 12, 0x0800);
	memset(ip, 0, 20);
	ip[0] = 0x45;
	put16(ip + 2, (uint16_t)ilen);
	ip[8] = 64;
	ip[9] = 17;
	inet_pton(AF_INET, src, ip + 12);
	inet_pton(AF_INET, dst, ip + 16);
	put16(ip + 10, ip_csum(ip, 20));
	put16(udp, sport);
	put16(udp + 2, dport);
	put16(udp + 4, (uint16_t)(8 + len));
	put16(udp + 6, 0);
	memcpy(udp + 8, payload, len);
	return 14 + ilen;
}

static size_t arp_request(const char *target)
{
	uint8_t *a = frame + 14;

	memset(frame, 0xff, 6);
	memcpy(frame + 6, guest_mac, 6);
	put16(frame + 12, 0x0806);
	put16(a, 1);
	put16(a + 2, 0x0800);
	a[4] = 6;
	a[5] = 4;
	put16(a + 6, 1);
	memcpy(a + 8, guest_mac, 6);
	inet_pton(AF_INET, "10.0.2.15", a + 14);
	memset(a + 18, 0, 6);
	inet_pton(AF_INET, target, a + 24);
	return 14 + 28;
}

static int send_frame(struct net_backend *be, size_t len)
{
	struct iovec iov = { frame, len };

	return net_backend_send(be, &iov, 1);
}

/* Runs the loop and reads frames until match() accepts one; its length or -1. */
static ssize_t wait_frame(struct net_backend *be, bool (*match)(const uint8_t *, size_t, void *),
			  void *arg, int ms)
{
	for (int t = 0; t < ms / 5; t++) {
		ssize_t n;
		while ((n = net_backend_recv(be, got, sizeof(got))) >= 0)
			if (match(got, (size_t)n, arg))
				return n;
		loop_run_once(loop, 5);
	}
	return -1;
}

static bool is_arp_reply(const uint8_t *f, size_t n, void *arg)
{
	return n >= 42 && get16(f + 12) == 0x0806 && get16(f + 14 + 6) == 2 &&
	       !memcmp(f, guest_mac, 6);
}

static bool is_udp_to(const uint8_t *f, size_t n, void *arg)
{
	uint16_t port = *(uint16_t *)arg;

	return n >= 42 && get16(f + 12) == 0x0800 && f[23] == 17 && get16(f + 36) == port;
}

struct tcp_syn {
	uint16_t dport;
	bool arp_seen;
};

static bool is_syn_or_arp(const uint8_t *f, size_t n, void *arg)
{
	struct tcp_syn *s = arg;

	/* slirp may first ask who 10.0.2.15 is: answer-worthy, and proof it tried. */
	if (n >= 42 && get16(f + 12) == 0x0806 && get16(f + 20) == 1) {
		s->arp_seen = true;
		return false;
	}
	return n >= 54 && get16(f + 12) == 0x0800 && f[23] == 6 && get16(f + 36) == s->dport &&
	       (f[47] & 0x02);
}

static struct net_backend *open_user(const struct slirp_hostfwd *fwd, unsigned int nfwd)
{
	struct slirp_backend_opts o = { .mtu = 0, .nhostfwd = nfwd, .hostfwd = fwd };
	struct net_backend *be;

	if (!loop)
		loop = loop_create();
	if (slirp_backend_open(&be, &o, loop, err, sizeof(err))) {
		printf("  note: %s\n", err);
		return NULL;
	}
	return be;
}

TEST(net_slirp_arp_and_dhcp)
{
	struct net_backend *be = open_user(NULL, 0);
	REQUIRE(be);
	CHECK(!be->vnet_hdr && be->features == 0);

	/* The gateway answers ARP. */
	REQUIRE(send_frame(be, arp_request("10.0.2.2")) == 0);
	ssize_t n = wait_frame(be, is_arp_reply, NULL, 2000);
	REQUIRE(n > 0);
	CHECK(!memcmp(got + 14 + 14, "\x0a\x00\x02\x02", 4)); /* sender: 10.0.2.2 */

	/* DHCP: DISCOVER gets an OFFER of 10.0.2.15, router .2, DNS .3. */
	uint8_t b[300] = { 0 };
	b[0] = 1, b[1] = 1, b[2] = 6;
	memcpy(b + 4, "\x12\x34\x56\x78", 4);
	put16(b + 10, 0x8000);
	memcpy(b + 28, guest_mac, 6);
	memcpy(b + 236, "\x63\x82\x53\x63", 4);
	b[240] = 53, b[241] = 1, b[242] = 1; /* DHCPDISCOVER */
	b[243] = 255;
	static const uint8_t bcast[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
	REQUIRE(send_frame(be, udp_frame("0.0.0.0", "255.255.255.255", 68, 67, bcast, b,
					 sizeof(b))) == 0);
	uint16_t port = 68;
	n = wait_frame(be, is_udp_to, &port, 2000);
	REQUIRE(n > 0);
	const uint8_t *bootp = got + 14 + 20 + 8;
	CHECK(bootp[0] == 2 && !memcmp(bootp + 4, "\x12\x34\x56\x78", 4));
	CHECK(!memcmp(bootp + 16, "\x0a\x00\x02\x0f", 4)); /* yiaddr 10.0.2.15 */
	bool router = false, dns = false, offer = false;
	for (size_t i = 240; i + 1 < (size_t)n - 42 && bootp[i] != 255;) {
		uint8_t opt = bootp[i], len = bootp[i + 1];
		if (opt == 0) {
			i++;
			continue;
		}
		if (opt == 53 && len == 1 && bootp[i + 2] == 2)
			offer = true;
		if (opt == 3 && len >= 4 && !memcmp(bootp + i + 2, "\x0a\x00\x02\x02", 4))
			router = true;
		if (opt == 6 && len >= 4 && !memcmp(bootp + i + 2, "\x0a\x00\x02\x03", 4))
			dns = true;
		i += 2u + len;
	}
	CHECK(offer && router && dns);
	net_backend_close(be);
}

TEST(net_slirp_udp_out_and_back)
{
	struct net_backend *be = open_user(NULL, 0);
	REQUIRE(be);
	/* A host socket on loopback, reached from the guest as the gateway 10.0.2.2. */
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t alen = sizeof(a);
	REQUIRE(s >= 0 && bind(s, (struct sockaddr *)&a, sizeof(a)) == 0);
	REQUIRE(getsockname(s, (struct sockaddr *)&a, &alen) == 0);
	uint16_t hport = ntohs(a.sin_port);

	/* Let slirp learn the guest's MAC, as a real guest's ARP would. */
	send_frame(be, arp_request("10.0.2.2"));
	wait_frame(be, is_arp_reply, NULL, 2000);
	static const uint8_t gw_mac[6] = { 0x52, 0x55, 0x0a, 0x00, 0x02, 0x02 };
	REQUIRE(send_frame(be, udp_frame("10.0.2.15", "10.0.2.2", 5555, hport, gw_mac, "ping",
					 4)) == 0);
	char buf[64];
	struct sockaddr_in from;
	socklen_t flen = sizeof(from);
	ssize_t n = -1;
	for (int t = 0; t < 400 && n < 0; t++) {
		loop_run_once(loop, 5);
		n = recvfrom(s, buf, sizeof(buf), MSG_DONTWAIT, (struct sockaddr *)&from, &flen);
	}
	REQUIRE(n == 4 && !memcmp(buf, "ping", 4));
	CHECK(from.sin_addr.s_addr == htonl(INADDR_LOOPBACK));
	/* The answer comes back to the guest as UDP from 10.0.2.2. */
	REQUIRE(sendto(s, "pong", 4, 0, (struct sockaddr *)&from, flen) == 4);
	uint16_t gport = 5555;
	ssize_t m = wait_frame(be, is_udp_to, &gport, 2000);
	REQUIRE(m > 0);
	CHECK(!memcmp(got, guest_mac, 6));
	CHECK(!memcmp(got + 26, "\x0a\x00\x02\x02", 4) && !memcmp(got + 42, "pong", 4));
	close(s);
	net_backend_close(be);
}

/* Is there a TCP socket listening on 127.0.0.1:port (and none on 0.0.0.0:port)? */
static int listening(uint16_t port, bool any)
{
	char line[512], want[32];
	FILE *f = fopen("/proc/net/tcp", "r");
	int found = 0;

	if (!f)
		return -1;
	snprintf(want, sizeof(want), "%s:%04X", any ? "00000000" : "0100007F", port);
	while (fgets(line, sizeof(line), f)) {
		char local[64], remote[64];
		unsigned int st;
		if (sscanf(line, " %*d: %63s %63s %x", local, remote, &st) == 3 &&
		    !strcmp(local, want) && st == 0x0a)
			found = 1;
	}
	fclose(f);
	return found;
}

static uint16_t free_port(void)
{
	int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t alen = sizeof(a);
	uint16_t p = 0;

	if (s >= 0 && bind(s, (struct sockaddr *)&a, sizeof(a)) == 0 &&
	    getsockname(s, (struct sockaddr *)&a, &alen) == 0)
		p = ntohs(a.sin_port);
	if (s >= 0)
		close(s);
	return p;
}

TEST(net_slirp_hostfwd)
{
	uint16_t hport = free_port();
	REQUIRE(hport);
	struct slirp_hostfwd fwd = {
		.udp = false,
		.host_addr.s_addr = htonl(INADDR_LOOPBACK),
		.host_port = hport,
		.guest_port = 22,
	};
	struct net_backend *be = open_user(&fwd, 1);
	REQUIRE(be);
	CHECK(listening(hport, false) == 1);
	CHECK(listening(hport, true) == 0); /* loopback only */

	send_frame(be, arp_request("10.0.2.2"));
	wait_frame(be, is_arp_reply, NULL, 2000);
	/* A host connection becomes a SYN to the guest's port 22. */
	int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_port = htons(hport),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	REQUIRE(c >= 0);
	int r = connect(c, (struct sockaddr *)&a, sizeof(a));
	CHECK(r == 0 || errno == EINPROGRESS);
	struct tcp_syn syn = { 22, false };
	ssize_t n = wait_frame(be, is_syn_or_arp, &syn, 3000);
	CHECK(n > 0 && !syn.arp_seen); /* it knew the guest's MAC from its ARP request */
	CHECK(n > 0 && !memcmp(got + 30, "\x0a\x00\x02\x0f", 4)); /* to 10.0.2.15 */
	close(c);
	net_backend_close(be);
	CHECK(listening(hport, false) == 0); /* closed with the backend */

	/* A port already taken: a clear error. */
	int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	a.sin_port = 0;
	socklen_t alen = sizeof(a);
	REQUIRE(s >= 0 && bind(s, (struct sockaddr *)&a, sizeof(a)) == 0 && listen(s, 1) == 0);
	REQUIRE(getsockname(s, (struct sockaddr *)&a, &alen) == 0);
	fwd.host_port = ntohs(a.sin_port);
	struct slirp_backend_opts o = { .nhostfwd = 1, .hostfwd = &fwd };
	CHECK(slirp_backend_open(&be, &o, loop, err, sizeof(err)) < 0);
	CHECK(strstr(err, "hostfwd") && strstr(err, "127.0.0.1"));
	close(s);
}

TEST(net_slirp_bounded_queue)
{
	struct net_backend *be = open_user(NULL, 0);
	REQUIRE(be);

	/* Nobody reads (a guest with no buffers): frames pile up to a bound, then drop. */
	for (int i = 0; i < 400; i++)
		send_frame(be, arp_request("10.0.2.2"));
	for (int i = 0; i < 5; i++)
		loop_run_once(loop, 1);
	CHECK(slirp_backend_dropped(be) == 400 - 256);
	unsigned int count = 0;
	while (net_backend_recv(be, got, sizeof(got)) > 0)
		count++;
	CHECK(count == 256);
	CHECK(net_backend_recv(be, got, sizeof(got)) == -EAGAIN);
	/* Too large a frame for slirp to take is refused, not truncated. */
	struct iovec iov[2] = { { got, 40000 }, { got, 40000 } };
	CHECK(net_backend_send(be, iov, 2) == -EMSGSIZE);
	net_backend_close(be);
}

TEST(net_slirp_bad_mtu)
{
	struct slirp_backend_opts o = { .mtu = SLIRP_MTU_MAX + 1 };
	struct net_backend *be;

	if (!loop)
		loop = loop_create();
	CHECK(slirp_backend_open(&be, &o, loop, err, sizeof(err)) == -EINVAL);
	CHECK(strstr(err, "mtu") != NULL);
	o.mtu = 9000;
	REQUIRE(slirp_backend_open(&be, &o, loop, err, sizeof(err)) == 0);
	net_backend_close(be);
}
