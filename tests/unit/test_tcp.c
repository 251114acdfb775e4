/* HOST:PORT as ternd --listen-tls and tern --connect take it (core/tcp.c). */
#include "core/tcp.h"
#include "unit.h"

#include <errno.h>
#include <string.h>

static bool parses(const char *s, bool ip_only, const char *host, unsigned int port, bool ip)
{
	struct hostport hp;
	char err[256];

	return !hostport_parse(s, ip_only, &hp, err, sizeof(err)) && !strcmp(hp.host, host) &&
	       hp.port == port && hp.ip == ip;
}

/* Refused, with a message that has want in it. */
static bool refused(const char *s, bool ip_only, const char *want)
{
	struct hostport hp;
	char err[256] = "";

	return hostport_parse(s, ip_only, &hp, err, sizeof(err)) == -EINVAL && strstr(err, want);
}

TEST(hostport_parse_accepts)
{
	CHECK(parses("127.0.0.1:16514", true, "127.0.0.1", 16514, true));
	CHECK(parses("0.0.0.0:1", true, "0.0.0.0", 1, true));
	CHECK(parses("[::1]:65535", true, "::1", 65535, true));
	CHECK(parses("[::]:443", true, "::", 443, true));
	CHECK(parses("[fe80::1:2]:9", false, "fe80::1:2", 9, true));
	CHECK(parses("localhost:80", false, "localhost", 80, false));
	CHECK(parses("lab2.example-net.org:7", false, "lab2.example-net.org", 7, false));
}

TEST(hostport_parse_refuses)
{
	CHECK(refused("nonsense", true, "is not ADDR:PORT"));
	CHECK(refused("nonsense", false, "is not HOST:PORT"));
	CHECK(refused("127.0.0.1", true, "port 1 to 65535"));
	CHECK(refused("127.0.0.1:0", true, "the port '0' must be 1 to 65535"));
	CHECK(refused("127.0.0.1:65536", true, "must be 1 to 65535"));
	CHECK(refused("127.0.0.1:-1", true, "must be 1 to 65535"));
	CHECK(refused("127.0.0.1:8x", true, "must be 1 to 65535"));
	CHECK(refused("127.0.0.1:", true, "must be 1 to 65535"));
	CHECK(refused(":80", false, "is not HOST:PORT"));
	CHECK(refused("::1:80", true, "goes in brackets"));
	CHECK(refused("[::1:80", true, "is not ADDR:PORT"));
	CHECK(refused("[::1]80", true, "is not ADDR:PORT"));
	CHECK(refused("[1.2.3.4]:80", true, "not an IPv6 address"));
	CHECK(refused("[host]:80", false, "not an IPv6 address"));
	CHECK(refused("localhost:80", true, "not a name"));
	CHECK(refused("bad_name:80", false, "not an IP address or a host name"));
	CHECK(refused("a..b:80", false, "not an IP address or a host name"));
	CHECK(refused("-a:80", false, "not an IP address or a host name"));
}

TEST(hostport_text_brackets_ipv6)
{
	struct hostport hp;
	char err[256], buf[300];

	REQUIRE(!hostport_parse("[::1]:7", true, &hp, err, sizeof(err)));
	CHECK(!strcmp(hostport_text(&hp, buf, sizeof(buf)), "[::1]:7"));
	REQUIRE(!hostport_parse("10.0.0.1:8", true, &hp, err, sizeof(err)));
	CHECK(!strcmp(hostport_text(&hp, buf, sizeof(buf)), "10.0.0.1:8"));
}
