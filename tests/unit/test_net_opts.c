/* Tests for `--net` spec parsing (src/vmm/net_opts.c). */
#include <arpa/inet.h>
#include <string.h>

#include "vmm/net_opts.h"
#include "unit.h"

static struct net_config cfg;
static char err[256];

static int parse(const char *s)
{
	err[0] = 0;
	return net_opts_parse(s, &cfg, err, sizeof(err));
}

/* Fails, and the message mentions every word given. */
static bool fails_with(const char *spec, const char *w1, const char *w2)
{
	if (parse(spec) == 0) {
		printf("  '%s' was accepted\n", spec);
		return false;
	}
	if ((w1 && !strstr(err, w1)) || (w2 && !strstr(err, w2))) {
		printf("  '%s': message '%s' lacks '%s' / '%s'\n", spec, err, w1 ? w1 : "",
		       w2 ? w2 : "");
		return false;
	}
	return true;
}

static bool local_unicast(const uint8_t *m)
{
	return (m[0] & 1) == 0 && (m[0] & 2) == 2;
}

TEST(net_opts_tap)
{
	REQUIRE(parse("tap=tap0") == 0);
	CHECK(cfg.kind == NET_TAP);
	CHECK(!strcmp(cfg.tap_name, "tap0"));
	CHECK(!cfg.mac_given && local_unicast(cfg.mac));
	CHECK(cfg.mtu == 0 && cfg.nhostfwd == 0);
	REQUIRE(parse("tap=averyverylongnm,mac=52:54:00:AB:cd:0f,mtu=9000") == 0);
	CHECK(!strcmp(cfg.tap_name, "averyverylongnm")); /* 15 characters: the most */
	CHECK(cfg.mac_given);
	static const uint8_t want[6] = { 0x52, 0x54, 0x00, 0xab, 0xcd, 0x0f };
	CHECK(!memcmp(cfg.mac, want, 6));
	CHECK(cfg.mtu == 9000);
	/* Order does not matter. */
	REQUIRE(parse("mtu=68,tap=t") == 0);
	CHECK(cfg.mtu == 68 && cfg.kind == NET_TAP);
}

TEST(net_opts_tap_fd)
{
	REQUIRE(parse("tap-fd=3") == 0);
	CHECK(cfg.kind == NET_TAP_FD && cfg.tap_fd == 3);
	REQUIRE(parse("tap-fd=0,mtu=65535") == 0);
	CHECK(cfg.tap_fd == 0 && cfg.mtu == 65535);
	CHECK(fails_with("tap-fd=-1", "tap-fd", "file descriptor"));
	CHECK(fails_with("tap-fd=3x", "tap-fd", NULL));
	CHECK(fails_with("tap-fd=99999999999", "tap-fd", NULL));
	CHECK(fails_with("tap-fd=", "tap-fd", NULL));
}

TEST(net_opts_user)
{
	REQUIRE(parse("user") == 0);
	CHECK(cfg.kind == NET_USER && cfg.nhostfwd == 0);
	REQUIRE(parse("user,hostfwd=tcp::2222-:22,hostfwd=tcp:127.0.0.1:8080-10.0.2.15:80,"
		      "hostfwd=udp::5353-:53,hostfwd=tcp:0.0.0.0:2223-:22") == 0);
	REQUIRE(cfg.nhostfwd == 4);
	const struct slirp_hostfwd *f = cfg.hostfwd;
	CHECK(!f[0].udp && f[0].host_port == 2222 && f[0].guest_port == 22);
	CHECK(f[0].host_addr.s_addr == htonl(INADDR_LOOPBACK)); /* loopback unless given */
	CHECK(f[0].guest_addr.s_addr == 0);
	CHECK(f[1].host_port == 8080 && f[1].guest_port == 80);
	CHECK(f[1].guest_addr.s_addr == htonl(0x0a00020f));
	CHECK(f[2].udp && f[2].host_port == 5353 && f[2].guest_port == 53);
	CHECK(f[3].host_addr.s_addr == htonl(INADDR_ANY) && f[3].host_port == 2223);
	REQUIRE(parse("user,mtu=65521") == 0);
	CHECK(cfg.mtu == 65521);
}

TEST(net_opts_hostfwd_errors)
{
	CHECK(fails_with("user,hostfwd=tcp:2222-:22", "hostfwd", "tcp:[HOSTADDR]"));
	CHECK(fails_with("user,hostfwd=tcp::0-:22", "hostfwd", "1 to 65535"));
	CHECK(fails_with("user,hostfwd=tcp::2222-:65536", "hostfwd", NULL));
	CHECK(fails_with("user,hostfwd=sctp::1-:2", "hostfwd", NULL));
	CHECK(fails_with("user,hostfwd=tcp::1:2", "hostfwd", NULL));
	CHECK(fails_with("user,hostfwd=tcp:1.2.3:22-:22", "hostfwd", NULL));
	CHECK(fails_with("user,hostfwd=tcp::22-192.168.1.1:22", "10.0.2.0/24", NULL));
	CHECK(fails_with("user,hostfwd=tcp::22-:22,hostfwd=tcp::22-:23", "twice", NULL));
	/* The same port on udp is a different forward. */
	CHECK(parse("user,hostfwd=tcp::22-:22,hostfwd=udp::22-:22") == 0);
	CHECK(fails_with("tap=t0,hostfwd=tcp::22-:22", "hostfwd", "user"));
	char spec[1024] = "user";
	for (int i = 0; i < NET_MAX_HOSTFWD + 1; i++)
		snprintf(spec + strlen(spec), sizeof(spec) - strlen(spec), ",hostfwd=tcp::%d-:22",
			 1000 + i);
	CHECK(fails_with(spec, "at most", NULL));
}

TEST(net_opts_errors)
{
	CHECK(fails_with("", "tap=NAME", "user"));
	CHECK(fails_with("mac=52:54:00:12:34:56", "required", NULL));
	CHECK(fails_with("tap=a,user", "exclude", NULL));
	CHECK(fails_with("tap=a,tap=b", "exclude", NULL));
	CHECK(fails_with("user=on", "user", "no value"));
	CHECK(fails_with("tap", "tap", "value"));
	CHECK(fails_with("tap=", "tap", "1 to 15"));
	CHECK(fails_with("tap=sixteencharsxxxx", "tap", "1 to 15"));
	CHECK(fails_with("tap=a/b", "not a valid interface name", NULL));
	CHECK(fails_with("tap=a b", "not a valid interface name", NULL));
	CHECK(fails_with("tap=..", "not a valid interface name", NULL));
	CHECK(fails_with("tap=t,speed=10", "unknown key 'speed'", "hostfwd"));
	CHECK(fails_with("tap=t,mtu=67", "mtu", "68 to 65535"));
	CHECK(fails_with("tap=t,mtu=65536", "mtu", "68 to 65535"));
	CHECK(fails_with("tap=t,mtu=1500x", "mtu", NULL));
	CHECK(fails_with("user,mtu=65522", "mtu", "65521"));
}

TEST(net_opts_mac)
{
	CHECK(fails_with("tap=t,mac=52:54:00:12:34", "mac", "52:54:00:12:34:56"));
	CHECK(fails_with("tap=t,mac=52:54:00:12:34:5g", "mac", NULL));
	CHECK(fails_with("tap=t,mac=52-54-00-12-34-56", "mac", NULL));
	CHECK(fails_with("tap=t,mac=525400123456", "mac", NULL));
	CHECK(fails_with("tap=t,mac=52:54:00:12:34:567", "mac", NULL));
	CHECK(fails_with("tap=t,mac=01:00:5e:00:00:01", "multicast", NULL));
	CHECK(fails_with("tap=t,mac=ff:ff:ff:ff:ff:ff", "multicast", NULL));
	CHECK(fails_with("tap=t,mac=00:00:00:00:00:00", "all-zero", NULL));
	/* A globally administered unicast address is the user's to give. */
	CHECK(parse("tap=t,mac=00:16:3e:00:00:01") == 0 && cfg.mac_given);

	uint8_t a[6], b[6];
	net_mac_random(a);
	net_mac_random(b);
	CHECK(local_unicast(a) && local_unicast(b));
	CHECK(memcmp(a, b, 6) != 0);
}

TEST(net_opts_check_all)
{
	struct net_config c[3];

	REQUIRE(net_opts_parse("tap=t0", &c[0], err, sizeof(err)) == 0);
	REQUIRE(net_opts_parse("user,hostfwd=tcp::2222-:22", &c[1], err, sizeof(err)) == 0);
	REQUIRE(net_opts_parse("tap=t1", &c[2], err, sizeof(err)) == 0);
	CHECK(net_opts_check_all(c, 3, err, sizeof(err)) == 0);
	REQUIRE(net_opts_parse("tap=t0", &c[2], err, sizeof(err)) == 0);
	CHECK(net_opts_check_all(c, 3, err, sizeof(err)) != 0 && strstr(err, "tap=t0"));
	REQUIRE(net_opts_parse("tap=t2,mac=52:54:00:00:00:01", &c[0], err, sizeof(err)) == 0);
	REQUIRE(net_opts_parse("tap=t3,mac=52:54:00:00:00:01", &c[2], err, sizeof(err)) == 0);
	CHECK(net_opts_check_all(c, 3, err, sizeof(err)) != 0 && strstr(err, "same MAC"));
	REQUIRE(net_opts_parse("user,hostfwd=tcp::2222-:80", &c[2], err, sizeof(err)) == 0);
	CHECK(net_opts_check_all(c, 3, err, sizeof(err)) != 0 && strstr(err, "2222"));
	REQUIRE(net_opts_parse("tap-fd=5", &c[0], err, sizeof(err)) == 0);
	REQUIRE(net_opts_parse("tap-fd=5", &c[2], err, sizeof(err)) == 0);
	CHECK(net_opts_check_all(c, 3, err, sizeof(err)) != 0 && strstr(err, "tap-fd=5"));
}
