/*
 * Tests for the TAP backend (src/backend/tap.c) against real tap interfaces. They create
 * interfaces and addresses, so they only run inside a fresh network namespace, as root:
 * tests/guest/test_net.py runs this binary there with TERN_NET_NETNS=1. Elsewhere each
 * case notes that it did nothing.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_packet.h>
#include <linux/if_tun.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <grp.h>
#include <sys/wait.h>
#include <unistd.h>

#include "backend/tap.h"
#include "virtio/net_hdr.h"
#include "unit.h"

#define ETHERTYPE_TEST 0x88b5 /* IEEE local experimental */

static char err[512];

static bool in_netns(void)
{
	const char *e = getenv("TERN_NET_NETNS");

	if (e && !strcmp(e, "1"))
		return true;
	printf("  note: not run: needs a fresh network namespace as root "
	       "(tests/guest/test_net.py runs it with TERN_NET_NETNS=1)\n");
	return false;
}

static long sysfs_long(const char *ifname, const char *attr, int base)
{
	char path[128], buf[64] = { 0 };
	int fd;

	snprintf(path, sizeof(path), "/sys/class/net/%s/%s", ifname, attr);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	return n > 0 ? strtol(buf, NULL, base) : -1;
}

static bool if_exists(const char *name)
{
	return if_nametoindex(name) != 0;
}

static int packet_socket(const char *ifname)
{
	int s = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, htons(ETH_P_ALL));
	struct sockaddr_ll a = { .sll_family = AF_PACKET,
				 .sll_protocol = htons(ETH_P_ALL),
				 .sll_ifindex = (int)if_nametoindex(ifname) };

	if (s < 0)
		return -1;
	if (bind(s, (struct sockaddr *)&a, sizeof(a)) < 0) {
		close(s);
		return -1;
	}
	return s;
}

static void test_frame(uint8_t *f, size_t len, uint8_t tag)
{
	memset(f, 0xff, 6); /* broadcast */
	memcpy(f + 6, "\x52\x54\x00\x00\x00\x10", 6);
	f[12] = ETHERTYPE_TEST >> 8;
	f[13] = ETHERTYPE_TEST & 0xff;
	for (size_t i = 14; i < len; i++)
		f[i] = (uint8_t)(tag + i);
}

/* Reads frames from the packet socket until one of our test type with tag arrives. */
static ssize_t packet_wait(int s, uint8_t *buf, size_t len, uint8_t tag)
{
	for (int tries = 0; tries < 200; tries++) {
		struct pollfd p = { s, POLLIN, 0 };
		if (poll(&p, 1, 10) <= 0)
			continue;
		ssize_t n = recv(s, buf, len, 0);
		if (n >= 15 && buf[12] == ETHERTYPE_TEST >> 8 &&
		    buf[13] == (ETHERTYPE_TEST & 0xff) && buf[14] == (uint8_t)(tag + 14))
			return n;
	}
	return -1;
}

/* Reads frames from the backend until one whose frame part satisfies match(). */
static ssize_t backend_wait(struct net_backend *be, uint8_t *buf, size_t len,
			    bool (*match)(const uint8_t *frame, size_t n, void *), void *arg)
{
	for (int tries = 0; tries < 200; tries++) {
		struct pollfd p = { be->poll_fd, POLLIN, 0 };
		if (poll(&p, 1, 10) <= 0)
			continue;
		ssize_t n;
		while ((n = net_backend_recv(be, buf, len)) >= 0) {
			size_t h = be->vnet_hdr ? NET_HDR_LEN : 0;
			if ((size_t)n > h && match(buf + h, (size_t)n - h, arg))
				return n;
		}
	}
	return -1;
}

static bool match_tag(const uint8_t *f, size_t n, void *arg)
{
	uint8_t tag = *(uint8_t *)arg;

	return n >= 15 && f[12] == ETHERTYPE_TEST >> 8 && f[14] == (uint8_t)(tag + 14);
}

TEST(net_tap_offload_flags)
{
	/* Pure: what TUNSETOFFLOAD gets for a driver's features (no tap needed). */
	uint64_t c = NET_F(VIRTIO_NET_F_GUEST_CSUM), t4 = NET_F(VIRTIO_NET_F_GUEST_TSO4),
		 t6 = NET_F(VIRTIO_NET_F_GUEST_TSO6), e = NET_F(VIRTIO_NET_F_GUEST_ECN);

	CHECK(tap_offload_flags(0) == 0);
	CHECK(tap_offload_flags(t4 | t6 | e) == 0); /* TSO without CSUM: tun refuses it */
	CHECK(tap_offload_flags(c) == TUN_F_CSUM);
	CHECK(tap_offload_flags(c | e) == TUN_F_CSUM);
	CHECK(tap_offload_flags(c | t4) == (TUN_F_CSUM | TUN_F_TSO4));
	CHECK(tap_offload_flags(c | t4 | t6 | e) ==
	      (TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN));
}

TEST(net_tap_create_and_flags)
{
	struct net_backend *be;

	if (!in_netns())
		return;
	REQUIRE(!if_exists("terntap0"));
	REQUIRE(tap_open(&be, "terntap0", 0, err, sizeof(err)) == 0);
	CHECK(if_exists("terntap0"));
	CHECK(be->vnet_hdr && be->poll_fd >= 0);
	long flags = sysfs_long("terntap0", "tun_flags", 16);
	CHECK(flags >= 0 && (flags & IFF_TAP) && (flags & IFF_NO_PI) && (flags & IFF_VNET_HDR));
	CHECK(sysfs_long("terntap0", "flags", 16) & IFF_UP); /* created: brought up */
	uint64_t want = NET_F(VIRTIO_NET_F_CSUM) | NET_F(VIRTIO_NET_F_HOST_TSO4) |
			NET_F(VIRTIO_NET_F_HOST_TSO6) | NET_F(VIRTIO_NET_F_GUEST_CSUM) |
			NET_F(VIRTIO_NET_F_GUEST_TSO4) | NET_F(VIRTIO_NET_F_GUEST_TSO6);
	CHECK((be->features & want) == want);
	CHECK(net_backend_set_offloads(be, be->features) == 0);
	CHECK(net_backend_set_offloads(be, 0) == 0);
	/* A second open of the same single-queue tap is refused with a reason. */
	struct net_backend *be2;
	CHECK(tap_open(&be2, "terntap0", 0, err, sizeof(err)) == -EBUSY);
	CHECK(strstr(err, "tap=terntap0") && strstr(err, "in use"));
	net_backend_close(be);
	/* Ours went away with us. */
	CHECK(!if_exists("terntap0"));
}

TEST(net_tap_existing_and_mtu)
{
	struct net_backend *be;

	if (!in_netns())
		return;
	REQUIRE(system("ip tuntap add terntap1 mode tap") == 0);
	REQUIRE(tap_open(&be, "terntap1", 9000, err, sizeof(err)) == 0);
	CHECK(sysfs_long("terntap1", "mtu", 10) == 9000);
	/* An existing interface is its owner's to bring up. */
	CHECK(!(sysfs_long("terntap1", "flags", 16) & IFF_UP));
	net_backend_close(be);
	CHECK(if_exists("terntap1")); /* persistent: it stays */
	CHECK(system("ip tuntap del terntap1 mode tap") == 0);
	/* Something that is not a tap. */
	CHECK(tap_open(&be, "lo", 0, err, sizeof(err)) == -EINVAL);
	CHECK(strstr(err, "tap=lo") && strstr(err, "not a tap"));
	REQUIRE(system("ip tuntap add terntun0 mode tun") == 0);
	CHECK(tap_open(&be, "terntun0", 0, err, sizeof(err)) == -EINVAL);
	CHECK(strstr(err, "not a tap"));
	CHECK(system("ip tuntap del terntun0 mode tun") == 0);
}

TEST(net_tap_frames_both_ways)
{
	struct net_backend *be;
	static uint8_t buf[70000], f[1600];
	uint8_t tag;

	if (!in_netns())
		return;
	REQUIRE(tap_open(&be, "terntap2", 0, err, sizeof(err)) == 0);
	/* Quiet the interface: no IPv6 autoconfiguration chatter. */
	if (system("sysctl -qw net.ipv6.conf.terntap2.disable_ipv6=1 2>/dev/null") != 0)
		printf("  note: IPv6 stays on\n");
	int ps = packet_socket("terntap2");
	REQUIRE(ps >= 0);

	/* Guest to host: header + frame written to the tap, seen on the interface. */
	tag = 1;
	test_frame(f, 200, tag);
	uint8_t hdr[NET_HDR_LEN] = { 0 };
	struct iovec iov[3] = { { hdr, NET_HDR_LEN }, { f, 100 }, { f + 100, 100 } };
	CHECK(net_backend_send(be, iov, 3) == 0);
	ssize_t n = packet_wait(ps, buf, sizeof(buf), tag);
	CHECK(n == 200 && !memcmp(buf, f, 200));

	/* Host to guest: a frame sent on the interface arrives with a virtio-net header. */
	tag = 2;
	test_frame(f, 300, tag);
	struct sockaddr_ll to = { .sll_family = AF_PACKET,
				  .sll_ifindex = (int)if_nametoindex("terntap2"),
				  .sll_halen = 6 };
	memset(to.sll_addr, 0xff, 6);
	CHECK(sendto(ps, f, 300, 0, (struct sockaddr *)&to, sizeof(to)) == 300);
	n = backend_wait(be, buf, sizeof(buf), match_tag, &tag);
	CHECK(n == NET_HDR_LEN + 300);
	CHECK(n > 0 && !memcmp(buf + NET_HDR_LEN, f, 300));
	CHECK(n > 0 && buf[1] == VIRTIO_NET_HDR_GSO_NONE);
	/* Nothing more waiting: -EAGAIN, not a block. */
	while (net_backend_recv(be, buf, sizeof(buf)) >= 0)
		;
	CHECK(net_backend_recv(be, buf, sizeof(buf)) == -EAGAIN);
	close(ps);
	net_backend_close(be);
}

/* A UDP datagram to 10.99.0.2:9 (ours: the kernel sends it out of the tap). */
struct udp_match {
	uint16_t port;
};

static bool match_udp(const uint8_t *f, size_t n, void *arg)
{
	struct udp_match *m = arg;

	return n >= 42 && f[12] == 0x08 && f[13] == 0x00 && f[23] == 17 &&
	       f[36] == (uint8_t)(m->port >> 8) && f[37] == (uint8_t)m->port;
}

static void udp_send(uint16_t port, size_t len)
{
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };
	static char payload[4000];

	inet_pton(AF_INET, "10.99.0.2", &a.sin_addr);
	if (s < 0 || sendto(s, payload, len, 0, (struct sockaddr *)&a, sizeof(a)) < 0)
		printf("  note: udp send failed: %s\n", strerror(errno));
	if (s >= 0)
		close(s);
}

TEST(net_tap_receive_offloads)
{
	struct net_backend *be;
	static uint8_t buf[70000];
	struct net_hdr h;

	if (!in_netns())
		return;
	REQUIRE(tap_open(&be, "terntap3", 0, err, sizeof(err)) == 0);
	REQUIRE(system("sysctl -qw net.ipv6.conf.terntap3.disable_ipv6=1 2>/dev/null; "
		       "ip addr add 10.99.0.1/24 dev terntap3 && "
		       "ip neigh add 10.99.0.2 lladdr 52:54:00:00:00:02 dev terntap3") == 0);
	/* No offloads negotiated: the host finishes checksums, the header says nothing. */
	struct udp_match m = { 4001 };
	udp_send(m.port, 100);
	ssize_t n = backend_wait(be, buf, sizeof(buf), match_udp, &m);
	REQUIRE(n > 0);
	net_hdr_decode(buf, &h);
	CHECK(h.flags == 0 && h.gso_type == 0);
	/* GUEST_CSUM accepted: the host leaves UDP checksums partial for the guest. */
	CHECK(net_backend_set_offloads(be, NET_F(VIRTIO_NET_F_GUEST_CSUM)) == 0);
	m.port = 4002;
	udp_send(m.port, 100);
	n = backend_wait(be, buf, sizeof(buf), match_udp, &m);
	REQUIRE(n > 0);
	net_hdr_decode(buf, &h);
	CHECK(h.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM);
	CHECK(h.csum_start == 34 && h.csum_offset == 6);
	/* net_hdr_fix_rx can finish it for a driver without GUEST_CSUM. */
	CHECK(net_hdr_fix_rx(&h, buf + NET_HDR_LEN, (size_t)n - NET_HDR_LEN, 0) == 0);
	CHECK(h.flags == 0);
	net_backend_close(be);
}

TEST(net_tap_transmit_gso)
{
	struct net_backend *be;
	static uint8_t f[3054], buf[70000];

	if (!in_netns())
		return;
	REQUIRE(tap_open(&be, "terntap4", 0, err, sizeof(err)) == 0);
	if (system("sysctl -qw net.ipv6.conf.terntap4.disable_ipv6=1 2>/dev/null") != 0)
		printf("  note: IPv6 stays on\n");
	int ps = packet_socket("terntap4");
	REQUIRE(ps >= 0);
	/* One TCP/IPv4 segment of 3000 bytes for the host to cut at 1000 (HOST_TSO4). */
	memset(f, 0, sizeof(f));
	memcpy(f, "\xff\xff\xff\xff\xff\xff\x52\x54\x00\x00\x00\x10\x08\x00", 14);
	uint8_t *ip = f + 14, *tcp = ip + 20;
	ip[0] = 0x45;
	ip[2] = (3040 >> 8) & 0xff;
	ip[3] = 3040 & 0xff;
	ip[8] = 64;
	ip[9] = 6;
	memcpy(ip + 12, "\x0a\x63\x00\x02\x0a\x63\x00\x01", 8);
	tcp[0] = 0x30, tcp[1] = 0x39, tcp[2] = 0x00, tcp[3] = 0x50;
	tcp[12] = 0x50;
	tcp[13] = 0x18;
	tcp[14] = 0xff;
	struct net_hdr h = { .flags = VIRTIO_NET_HDR_F_NEEDS_CSUM,
			     .gso_type = VIRTIO_NET_HDR_GSO_TCPV4,
			     .hdr_len = 54,
			     .gso_size = 1000,
			     .csum_start = 34,
			     .csum_offset = 16 };
	uint8_t hdr[NET_HDR_LEN];
	net_hdr_encode(&h, hdr);
	struct iovec iov[2] = { { hdr, NET_HDR_LEN }, { f, sizeof(f) } };
	CHECK(net_backend_send(be, iov, 2) == 0);
	/* The host took it as one GSO packet (or its segments): something of ours arrives. */
	ssize_t got = -1;
	for (int tries = 0; tries < 100 && got < 0; tries++) {
		struct pollfd p = { ps, POLLIN, 0 };
		if (poll(&p, 1, 10) <= 0)
			continue;
		ssize_t n = recv(ps, buf, sizeof(buf), 0);
		if (n > 54 && buf[12] == 0x08 && buf[23] == 6 && buf[34] == 0x30)
			got = n;
	}
	CHECK(got >= 1054);
	/* A GSO header the kernel cannot take is refused, not a crash. */
	h.gso_size = 0;
	h.csum_start = 60000;
	net_hdr_encode(&h, hdr);
	CHECK(net_backend_send(be, iov, 2) < 0);
	close(ps);
	net_backend_close(be);
}

TEST(net_tap_fd_passed_in)
{
	struct net_backend *be;
	struct ifreq ifr;

	if (!in_netns())
		return;
	int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
	REQUIRE(fd >= 0);
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, IFNAMSIZ, "terntap5");
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
	REQUIRE(ioctl(fd, TUNSETIFF, &ifr) == 0);
	REQUIRE(tap_open_fd(&be, fd, 1400, err, sizeof(err)) == 0);
	CHECK(be->vnet_hdr && be->poll_fd == fd);
	CHECK(fcntl(fd, F_GETFL) & O_NONBLOCK);
	CHECK(sysfs_long("terntap5", "mtu", 10) == 1400);
	CHECK(be->features & NET_F(VIRTIO_NET_F_GUEST_CSUM));
	net_backend_close(be); /* closes fd: the interface goes */
	CHECK(!if_exists("terntap5"));

	/* Without IFF_VNET_HDR: usable, no offloads. */
	fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
	REQUIRE(fd >= 0 && ioctl(fd, TUNSETIFF, &ifr) == 0);
	REQUIRE(tap_open_fd(&be, fd, 0, err, sizeof(err)) == 0);
	CHECK(!be->vnet_hdr && be->features == 0);
	net_backend_close(be);

	/* With packet information: refused (frames would carry 4 extra bytes). */
	fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
	ifr.ifr_flags = IFF_TAP;
	REQUIRE(fd >= 0 && ioctl(fd, TUNSETIFF, &ifr) == 0);
	CHECK(tap_open_fd(&be, fd, 0, err, sizeof(err)) == -EINVAL);
	CHECK(strstr(err, "IFF_NO_PI") && strstr(err, "tap-fd="));
	close(fd);

	/* A tun (layer 3) fd. */
	fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
	ifr.ifr_flags = IFF_TUN | IFF_NO_PI;
	REQUIRE(fd >= 0 && ioctl(fd, TUNSETIFF, &ifr) == 0);
	CHECK(tap_open_fd(&be, fd, 0, err, sizeof(err)) == -EINVAL);
	CHECK(strstr(err, "tun (layer 3)"));
	close(fd);

	/* Not attached yet, not a tun fd at all, not open. */
	fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
	CHECK(tap_open_fd(&be, fd, 0, err, sizeof(err)) < 0 && strstr(err, "not a tap"));
	close(fd);
	fd = open("/dev/null", O_RDWR | O_CLOEXEC);
	CHECK(tap_open_fd(&be, fd, 0, err, sizeof(err)) < 0 && strstr(err, "not a tap"));
	close(fd);
	CHECK(tap_open_fd(&be, 999, 0, err, sizeof(err)) == -EBADF);
	CHECK(strstr(err, "tap-fd=999") && strstr(err, "not an open file descriptor"));
}

TEST(net_tap_unprivileged)
{
	int pipefd[2];

	if (!in_netns())
		return;
	/* terntap6 has no owner: anyone may attach; terntap7 is root's. */
	REQUIRE(system("ip tuntap add terntap6 mode tap") == 0);
	REQUIRE(system("ip tuntap add terntap7 mode tap user 0") == 0);
	REQUIRE(pipe(pipefd) == 0);
	pid_t pid = fork();
	REQUIRE(pid >= 0);
	if (pid == 0) {
		/* As nobody: no CAP_NET_ADMIN. */
		struct net_backend *be;
		char out[1024];
		int r1, r2;
		if (setgroups(0, NULL) || setresgid(65534, 65534, 65534) ||
		    setresuid(65534, 65534, 65534))
			_exit(99);
		r1 = tap_open(&be, "ternnope0", 0, err, sizeof(err));
		snprintf(out, sizeof(out), "%d|%s|", r1, err);
		r2 = tap_open(&be, "terntap6", 0, err, sizeof(err));
		snprintf(out + strlen(out), sizeof(out) - strlen(out), "%d|", r2);
		if (r2 == 0) {
			/* Usable without privileges: a frame goes out. */
			uint8_t frame[NET_HDR_LEN + 60] = { 0 };
			struct iovec iov = { frame, sizeof(frame) };
			snprintf(out + strlen(out), sizeof(out) - strlen(out), "%d|",
				 net_backend_send(be, &iov, 1));
			net_backend_close(be);
		}
		r2 = tap_open(&be, "terntap7", 0, err, sizeof(err));
		snprintf(out + strlen(out), sizeof(out) - strlen(out), "%d|%s", r2, err);
		if (write(pipefd[1], out, strlen(out)) < 0)
			_exit(98);
		_exit(0);
	}
	close(pipefd[1]);
	char got[1024] = { 0 };
	ssize_t n = read(pipefd[0], got, sizeof(got) - 1);
	int status;
	waitpid(pid, &status, 0);
	close(pipefd[0]);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	CHECK(n > 0);
	/* A missing tap: says it does not exist and what creating one needs. */
	CHECK(!strncmp(got, "-1|", 3));
	CHECK(strstr(got, "tap=ternnope0: the interface does not exist") != NULL);
	CHECK(strstr(got, "CAP_NET_ADMIN") != NULL);
	CHECK(!if_exists("ternnope0"));
	/* An ownerless tap works unprivileged (sending to a down tap fails: -EIO). */
	CHECK(strstr(got, "|0|-5|-1|") != NULL);
	/* Someone else's tap: says it exists but is not ours. */
	CHECK(strstr(got, "tap=terntap7: the interface exists but this user may not") != NULL);
	CHECK(system("ip tuntap del terntap6 mode tap") == 0);
	CHECK(system("ip tuntap del terntap7 mode tap") == 0);
	if (unit_case_failed)
		printf("  child said: %s\n", got);
}
