/* Parsing of `--net` specs. Every rejected value names the field and what it accepts. */
#include "vmm/net_opts.h"
#include "core/util.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#define KEYS "tap, tap-fd, user, mac, mtu, hostfwd"
#define MAC_EXAMPLE "52:54:00:12:34:56"

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = (char)tolower((unsigned char)c);
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

int net_mac_parse(const char *s, uint8_t mac[6])
{
	uint8_t m[6];

	if (strlen(s) != 17)
		return -EINVAL;
	for (int i = 0; i < 6; i++) {
		int hi = hexval(s[3 * i]), lo = hexval(s[3 * i + 1]);
		if (hi < 0 || lo < 0 || (i < 5 && s[3 * i + 2] != ':'))
			return -EINVAL;
		m[i] = (uint8_t)(hi << 4 | lo);
	}
	memcpy(mac, m, 6);
	return 0;
}

void net_mac_random(uint8_t mac[6])
{
	size_t got = 0;

	while (got < 6) {
		ssize_t r = getrandom(mac + got, 6 - got, 0);
		if (r > 0)
			got += (size_t)r;
		else if (r < 0 && errno != EINTR)
			break;
	}
	if (got < 6) {
		/* No entropy source at all: still unique enough between NICs of one VM. */
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		uint64_t x = (uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 20) ^ (uintptr_t)mac;
		for (int i = 0; i < 6; i++)
			mac[i] = (uint8_t)(x >> (8 * i));
	}
	mac[0] = (uint8_t)((mac[0] & 0xfc) | 0x02); /* unicast, locally administered */
}

static bool port_parse(const char *s, uint16_t *port)
{
	uint64_t v;

	if (!parse_u64(s, 1, 65535, &v))
		return false;
	*port = (uint16_t)v;
	return true;
}

/* "[ADDR]:PORT" with ADDR optional; s is modified. */
static bool addr_port(char *s, struct in_addr *addr, bool *addr_given, uint16_t *port)
{
	char *colon = strrchr(s, ':');

	if (!colon)
		return false;
	*colon = 0;
	*addr_given = *s != 0;
	if (*addr_given && inet_pton(AF_INET, s, addr) != 1)
		return false;
	return port_parse(colon + 1, port);
}

int net_hostfwd_parse(const char *s, struct slirp_hostfwd *f, char *err, size_t errlen)
{
	char buf[128], *host, *guest, *dash;
	bool given;

	memset(f, 0, sizeof(*f));
	if (strlen(s) >= sizeof(buf))
		goto bad;
	snprintf(buf, sizeof(buf), "%s", s);
	if (!strncmp(buf, "tcp:", 4))
		f->udp = false;
	else if (!strncmp(buf, "udp:", 4))
		f->udp = true;
	else
		goto bad;
	host = buf + 3; /* keeps the ':' that ends "tcp": it is the one before HOSTPORT */
	dash = strchr(host, '-');
	if (!dash)
		goto bad;
	*dash = 0;
	guest = dash + 1;
	/* host is ":[ADDR]:PORT": skip the protocol's colon. */
	host++;
	if (!strchr(host, ':')) {
		/* "tcp:PORT-..." is not accepted: QEMU's form always has the colon. */
		goto bad;
	}
	f->host_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (!addr_port(host, &f->host_addr, &given, &f->host_port))
		goto bad;
	if (!given)
		f->host_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (!addr_port(guest, &f->guest_addr, &given, &f->guest_port))
		goto bad;
	if (!given) {
		f->guest_addr.s_addr = 0;
	} else if ((ntohl(f->guest_addr.s_addr) & 0xffffff00u) != 0x0a000200u) {
		snprintf(err, errlen, "hostfwd='%s': the guest address must be in 10.0.2.0/24", s);
		return -EINVAL;
	}
	return 0;
bad:
	snprintf(err, errlen,
		 "hostfwd='%s' is not tcp:[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT (or udp:...; "
		 "ports 1 to 65535, IPv4 addresses; e.g. tcp::2222-:22)",
		 s);
	return -EINVAL;
}

/* What Linux accepts as an interface name (dev_valid_name), minus the length. */
static bool ifname_ok(const char *s)
{
	if (!strcmp(s, ".") || !strcmp(s, ".."))
		return false;
	for (; *s; s++)
		if (*s == '/' || *s == ':' || isspace((unsigned char)*s))
			return false;
	return true;
}

static int kind_set(struct net_config *c, bool *have, enum net_kind k, char *err, size_t errlen)
{
	if (*have) {
		snprintf(err, errlen, "tap=, tap-fd= and user exclude each other: give one");
		return -EINVAL;
	}
	*have = true;
	c->kind = k;
	return 0;
}

int net_opts_parse(const char *spec, struct net_config *c, char *err, size_t errlen)
{
	char *copy = strdup(spec), *save = NULL;
	bool have_kind = false;
	uint64_t v;
	int r = -EINVAL;

	memset(c, 0, sizeof(*c));
	c->tap_fd = -1;
	if (!copy) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	for (char *kv = strtok_r(copy, ",", &save); kv; kv = strtok_r(NULL, ",", &save)) {
		char *val = strchr(kv, '=');
		if (val)
			*val++ = 0;
		if (!strcmp(kv, "user")) {
			if (val) {
				snprintf(err, errlen, "user takes no value (write 'user')");
				goto out;
			}
			if (kind_set(c, &have_kind, NET_USER, err, errlen))
				goto out;
			continue;
		}
		if (strcmp(kv, "tap") && strcmp(kv, "tap-fd") && strcmp(kv, "mac") &&
		    strcmp(kv, "mtu") && strcmp(kv, "hostfwd")) {
			snprintf(err, errlen, "unknown key '%s' (keys: " KEYS ")", kv);
			goto out;
		}
		if (!val) {
			snprintf(err, errlen, "%s needs a value (%s=...)", kv, kv);
			goto out;
		}
		if (!strcmp(kv, "tap")) {
			if (kind_set(c, &have_kind, NET_TAP, err, errlen))
				goto out;
			if (!*val || strlen(val) >= IFNAMSIZ) {
				snprintf(err, errlen,
					 "tap='%s': an interface name is 1 to %d characters", val,
					 IFNAMSIZ - 1);
				goto out;
			}
			if (!ifname_ok(val)) {
				snprintf(err, errlen,
					 "tap='%s' is not a valid interface name (no '/', ':' or "
					 "spaces)",
					 val);
				goto out;
			}
			snprintf(c->tap_name, sizeof(c->tap_name), "%s", val);
		} else if (!strcmp(kv, "tap-fd")) {
			if (kind_set(c, &have_kind, NET_TAP_FD, err, errlen))
				goto out;
			if (!parse_u64(val, 0, INT_MAX, &v)) {
				snprintf(err, errlen,
					 "tap-fd='%s' is not a file descriptor number (0 to %d)",
					 val, INT_MAX);
				goto out;
			}
			c->tap_fd = (int)v;
		} else if (!strcmp(kv, "mac")) {
			if (net_mac_parse(val, c->mac)) {
				snprintf(err, errlen,
					 "mac='%s' is not a MAC address like " MAC_EXAMPLE
					 " (six hex pairs, ':' between)",
					 val);
				goto out;
			}
			if (c->mac[0] & 1) {
				snprintf(err, errlen,
					 "mac='%s' is a multicast address (the first byte must be "
					 "even), e.g. " MAC_EXAMPLE,
					 val);
				goto out;
			}
			static const uint8_t zero[6];
			if (!memcmp(c->mac, zero, 6)) {
				snprintf(err, errlen, "mac='%s' is the all-zero address", val);
				goto out;
			}
			c->mac_given = true;
		} else if (!strcmp(kv, "mtu")) {
			if (!parse_u64(val, NET_MTU_MIN, NET_MTU_MAX, &v)) {
				snprintf(err, errlen,
					 "mtu='%s' is not a whole number from %d to %d", val,
					 NET_MTU_MIN, NET_MTU_MAX);
				goto out;
			}
			c->mtu = (uint16_t)v;
		} else { /* hostfwd */
			if (c->nhostfwd == NET_MAX_HOSTFWD) {
				snprintf(err, errlen, "at most %d hostfwd= per NIC",
					 NET_MAX_HOSTFWD);
				goto out;
			}
			struct slirp_hostfwd *f = &c->hostfwd[c->nhostfwd];
			if (net_hostfwd_parse(val, f, err, errlen))
				goto out;
			for (unsigned int i = 0; i < c->nhostfwd; i++) {
				const struct slirp_hostfwd *g = &c->hostfwd[i];
				if (g->udp == f->udp && g->host_port == f->host_port &&
				    g->host_addr.s_addr == f->host_addr.s_addr) {
					snprintf(err, errlen,
						 "hostfwd='%s': host port %u is forwarded twice",
						 val, f->host_port);
					goto out;
				}
			}
			c->nhostfwd++;
		}
	}
	if (!have_kind) {
		snprintf(err, errlen, "one of tap=NAME, tap-fd=N or user is required");
		goto out;
	}
	if (c->nhostfwd && c->kind != NET_USER) {
		snprintf(err, errlen, "hostfwd= only applies to user networking");
		goto out;
	}
	if (c->kind == NET_USER && c->mtu > SLIRP_MTU_MAX) {
		snprintf(err, errlen, "mtu=%u: user networking takes 68 to %d", c->mtu,
			 SLIRP_MTU_MAX);
		goto out;
	}
	if (!c->mac_given)
		net_mac_random(c->mac);
	r = 0;
out:
	free(copy);
	return r;
}

int net_opts_check_all(const struct net_config *c, unsigned int n, char *err, size_t errlen)
{
	for (unsigned int i = 0; i < n; i++) {
		for (unsigned int j = 0; j < i; j++) {
			const struct net_config *a = &c[j], *b = &c[i];
			if (!memcmp(a->mac, b->mac, 6)) {
				snprintf(err, errlen,
					 "NICs %u and %u have the same MAC "
					 "%02x:%02x:%02x:%02x:%02x:%02x",
					 j + 1, i + 1, b->mac[0], b->mac[1], b->mac[2], b->mac[3],
					 b->mac[4], b->mac[5]);
				return -EINVAL;
			}
			if (a->kind == NET_TAP && b->kind == NET_TAP &&
			    !strcmp(a->tap_name, b->tap_name)) {
				snprintf(err, errlen, "tap=%s is used by two NICs", b->tap_name);
				return -EINVAL;
			}
			if (a->kind == NET_TAP_FD && b->kind == NET_TAP_FD &&
			    a->tap_fd == b->tap_fd) {
				snprintf(err, errlen, "tap-fd=%d is used by two NICs", b->tap_fd);
				return -EINVAL;
			}
			for (unsigned int x = 0; x < a->nhostfwd; x++)
				for (unsigned int y = 0; y < b->nhostfwd; y++)
					if (a->hostfwd[x].udp == b->hostfwd[y].udp &&
					    a->hostfwd[x].host_port == b->hostfwd[y].host_port &&
					    a->hostfwd[x].host_addr.s_addr ==
						    b->hostfwd[y].host_addr.s_addr) {
						snprintf(err, errlen,
							 "host port %u is forwarded by two NICs",
							 b->hostfwd[y].host_port);
						return -EINVAL;
					}
		}
	}
	return 0;
}
