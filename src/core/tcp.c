/* TCP endpoints: HOST:PORT, listening, connecting with a deadline (tcp.h). */
#include "core/tcp.h"

#include "core/util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define ACCEPTS "%s (an IPv4 address, a [bracketed] IPv6 address%s, then a port 1 to 65535)"

static bool is_ip(const char *s)
{
	unsigned char b[16];

	return inet_pton(AF_INET, s, b) == 1 || inet_pton(AF_INET6, s, b) == 1;
}

/* A DNS name: labels of letters, digits and hyphens joined by dots. */
static bool is_dns_name(const char *s)
{
	size_t len = strlen(s);

	if (!len || len > 253 || s[0] == '.' || s[0] == '-')
		return false;
	for (const char *p = s; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '-' || *p == '.'))
			return false;
	return !strstr(s, "..");
}

int hostport_parse(const char *s, bool ip_only, struct hostport *out, char *err, size_t errlen)
{
	const char *form = ip_only ? "ADDR:PORT" : "HOST:PORT",
		   *what = ip_only ? "" : " or a host name";
	const char *host = s, *colon;
	size_t hlen;
	uint64_t port;

	memset(out, 0, sizeof(*out));
	if (s[0] == '[') {
		const char *close = strchr(s, ']');
		if (!close || close[1] != ':')
			return fail_msg(err, errlen, -EINVAL, "'%s' is not " ACCEPTS, s, form,
					what);
		host = s + 1;
		hlen = (size_t)(close - host);
		colon = close + 1;
	} else {
		colon = strrchr(s, ':');
		if (!colon)
			return fail_msg(err, errlen, -EINVAL, "'%s' is not " ACCEPTS, s, form,
					what);
		hlen = (size_t)(colon - s);
		if (memchr(s, ':', hlen))
			return fail_msg(err, errlen, -EINVAL,
					"'%s': an IPv6 address goes in brackets, as in [::1]:PORT",
					s);
	}
	if (!hlen || hlen >= sizeof(out->host))
		return fail_msg(err, errlen, -EINVAL, "'%s' is not " ACCEPTS, s, form, what);
	memcpy(out->host, host, hlen);
	out->host[hlen] = 0;
	out->ip = is_ip(out->host);
	if (s[0] == '[' && (!out->ip || !strchr(out->host, ':')))
		return fail_msg(err, errlen, -EINVAL,
				"'%s': '%s' in brackets is not an IPv6 address", s, out->host);
	if (!out->ip && (ip_only || !is_dns_name(out->host)))
		return fail_msg(
			err, errlen, -EINVAL, "'%s': '%s' is not an IP address%s", s, out->host,
			ip_only ? " (this takes an address, not a name)" : " or a host name");
	if (!parse_u64(colon + 1, 1, 65535, &port))
		return fail_msg(err, errlen, -EINVAL, "'%s': the port '%s' must be 1 to 65535", s,
				colon + 1);
	out->port = (uint16_t)port;
	return 0;
}

const char *hostport_text(const struct hostport *hp, char *buf, size_t n)
{
	bool v6 = hp->ip && strchr(hp->host, ':');

	snprintf(buf, n, "%s%s%s:%u", v6 ? "[" : "", hp->host, v6 ? "]" : "", hp->port);
	return buf;
}

int tcp_listen(const struct hostport *hp, int backlog, char *err, size_t errlen)
{
	struct sockaddr_storage ss = { 0 };
	struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
	socklen_t len;
	char text[300];
	int fd, one = 1;

	hostport_text(hp, text, sizeof(text));
	if (inet_pton(AF_INET, hp->host, &a4->sin_addr) == 1) {
		a4->sin_family = AF_INET;
		a4->sin_port = htons(hp->port);
		len = sizeof(*a4);
	} else if (inet_pton(AF_INET6, hp->host, &a6->sin6_addr) == 1) {
		a6->sin6_family = AF_INET6;
		a6->sin6_port = htons(hp->port);
		len = sizeof(*a6);
	} else {
		return fail_msg(err, errlen, -EINVAL, "%s: not an IP address", text);
	}
	if ((fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		return fail_msg(err, errlen, -errno, "%s: socket: %s", text, strerror(errno));
	/* A restarted ternd must not wait for the old connections' TIME_WAIT to end. */
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&ss, len) || listen(fd, backlog)) {
		int e = errno;
		close(fd);
		return fail_msg(err, errlen, -e, "%s: %s", text, strerror(e));
	}
	return fd;
}

static long long ms_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

/* One address: 0 connected, or -errno (-ETIMEDOUT past the deadline). */
static int connect_one(int fd, const struct addrinfo *ai, long long deadline)
{
	int e = 0;
	socklen_t elen = sizeof(e);

	if (!connect(fd, ai->ai_addr, ai->ai_addrlen))
		return 0;
	if (errno != EINPROGRESS)
		return -errno;
	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLOUT };
		long long left = deadline - ms_now();
		if (left <= 0)
			return -ETIMEDOUT;
		int r = poll(&p, 1, (int)left);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r > 0)
			break;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &elen))
		return -errno;
	return -e;
}

int tcp_connect(const struct hostport *hp, int timeout_ms, char *err, size_t errlen)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV }, *res,
			*ai;
	long long deadline = ms_now() + timeout_ms;
	char port[8], text[300];
	int r, fd = -1, one = 1;

	hostport_text(hp, text, sizeof(text));
	snprintf(port, sizeof(port), "%u", hp->port);
	if (hp->ip)
		hints.ai_flags |= AI_NUMERICHOST;
	if ((r = getaddrinfo(hp->host, port, &hints, &res)))
		return fail_msg(err, errlen, -EHOSTUNREACH, "%s: %s", text,
				r == EAI_SYSTEM ? strerror(errno) : gai_strerror(r));
	r = -EHOSTUNREACH;
	for (ai = res; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
		if (fd < 0) {
			r = -errno;
			continue;
		}
		if (!(r = connect_one(fd, ai, deadline)))
			break;
		close(fd);
		fd = -1;
		if (r == -ETIMEDOUT)
			break;
	}
	freeaddrinfo(res);
	if (fd < 0)
		return r == -ETIMEDOUT ? fail_msg(err, errlen, r, "%s: no connection within %d ms",
						  text, timeout_ms) :
					 fail_msg(err, errlen, r, "%s: %s", text, strerror(-r));
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
	/* Requests and answers are small records: Nagle would hold each for an ACK. */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

const char *tcp_peer_text(const struct sockaddr *sa, socklen_t len, char *buf, size_t n)
{
	char addr[INET6_ADDRSTRLEN] = "?";

	if (sa->sa_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
		const struct sockaddr_in *a = (const struct sockaddr_in *)sa;
		inet_ntop(AF_INET, &a->sin_addr, addr, sizeof(addr));
		snprintf(buf, n, "%s:%u", addr, ntohs(a->sin_port));
	} else if (sa->sa_family == AF_INET6 && len >= sizeof(struct sockaddr_in6)) {
		const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)sa;
		inet_ntop(AF_INET6, &a->sin6_addr, addr, sizeof(addr));
		snprintf(buf, n, "[%s]:%u", addr, ntohs(a->sin6_port));
	} else {
		snprintf(buf, n, "?");
	}
	return buf;
}
