/* Where a migration stream goes: parsing tcp:/unix:/fd: URIs, listening and connecting. */
#include "core/util.h"
#include "vmm/migrate.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define FORMS "tcp:HOST:PORT, unix:PATH or fd:N"

int mig_uri_parse(const char *uri, struct mig_uri *u, char *err, size_t n)
{
	memset(u, 0, sizeof(*u));
	u->fd = -1;
	if (!strncmp(uri, "unix:", 5)) {
		const char *p = uri + 5;
		if (!*p || strlen(p) >= sizeof(u->path))
			return fail_msg(err, n, -EINVAL,
					"'%.64s': a unix: path of 1 to %zu bytes is needed", uri,
					sizeof(u->path) - 1);
		u->kind = MIG_UNIX;
		strcpy(u->path, p);
		return 0;
	}
	if (!strncmp(uri, "fd:", 3)) {
		uint64_t fd;
		if (!parse_u64(uri + 3, 0, 65535, &fd) || fcntl((int)fd, F_GETFD) < 0)
			return fail_msg(err, n, -EINVAL,
					"'%.64s': fd: takes an open file descriptor", uri);
		u->kind = MIG_FD;
		u->fd = (int)fd;
		return 0;
	}
	if (!strncmp(uri, "tcp:", 4)) {
		const char *h = uri + 4, *colon = strrchr(h, ':');
		uint64_t port;
		size_t hlen;
		if (!colon || !parse_u64(colon + 1, 1, 65535, &port))
			return fail_msg(err, n, -EINVAL,
					"'%.64s': tcp:HOST:PORT with a port of 1 to 65535", uri);
		hlen = (size_t)(colon - h);
		/* [v6 address] */
		if (hlen >= 2 && h[0] == '[' && h[hlen - 1] == ']') {
			h++;
			hlen -= 2;
		}
		if (hlen >= sizeof(u->host))
			return fail_msg(err, n, -EINVAL, "'%.64s': the host name is too long", uri);
		u->kind = MIG_TCP;
		memcpy(u->host, h, hlen);
		u->host[hlen] = 0;
		snprintf(u->port, sizeof(u->port), "%llu", (unsigned long long)port);
		return 0;
	}
	return fail_msg(err, n, -EINVAL, "'%.64s': the stream's address is one of " FORMS, uri);
}

static int tcp_socket(const struct mig_uri *u, bool listening, char *err, size_t n)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM,
				  .ai_flags = listening ? AI_PASSIVE : 0 };
	struct addrinfo *res, *ai;
	int fd = -1, r, one = 1;

	r = getaddrinfo(u->host[0] ? u->host : NULL, u->port, &hints, &res);
	if (r)
		return fail_msg(err, n, -EINVAL, "tcp:%s:%s: %s", u->host, u->port,
				gai_strerror(r));
	r = -EADDRNOTAVAIL;
	for (ai = res; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
		if (fd < 0) {
			r = -errno;
			continue;
		}
		if (listening)
			setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (listening ? bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, 1) == 0 :
				connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
			break;
		r = -errno;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0)
		return fail_msg(err, n, r, "tcp:%s:%s: cannot %s: %s", u->host, u->port,
				listening ? "listen" : "connect", strerror(-r));
	/* The switchover's short messages must not wait for Nagle. */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

static int unix_socket(const struct mig_uri *u, bool listening, char *err, size_t n)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), r;

	if (fd < 0)
		return fail_msg(err, n, -errno, "socket: %s", strerror(errno));
	strcpy(sa.sun_path, u->path);
	if (listening) {
		struct stat st;
		/* A socket left by an earlier run is replaced; any other file is not touched. */
		if (lstat(u->path, &st) == 0 && S_ISSOCK(st.st_mode))
			unlink(u->path);
		r = bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 && listen(fd, 1) == 0;
	} else {
		r = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
	}
	if (!r) {
		r = -errno;
		close(fd);
		return fail_msg(err, n, r, "unix:%s: cannot %s: %s", u->path,
				listening ? "listen" : "connect", strerror(-r));
	}
	return fd;
}

int mig_uri_listen(const struct mig_uri *u, char *err, size_t n)
{
	if (u->kind == MIG_FD)
		return u->fd;
	return u->kind == MIG_TCP ? tcp_socket(u, true, err, n) : unix_socket(u, true, err, n);
}

int mig_uri_accept(const struct mig_uri *u, int lfd, char *err, size_t n)
{
	int fd;

	if (u->kind == MIG_FD)
		return lfd;
	while ((fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC)) < 0 && errno == EINTR)
		;
	if (fd < 0)
		return fail_msg(err, n, -errno, "accept: %s", strerror(errno));
	if (u->kind == MIG_TCP) {
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	}
	return fd;
}

void mig_uri_unlisten(const struct mig_uri *u, int lfd)
{
	if (u->kind == MIG_FD || lfd < 0)
		return;
	close(lfd);
	/* One stream per listen: nobody else may connect to a VM that is arriving. */
	if (u->kind == MIG_UNIX)
		unlink(u->path);
}

int mig_uri_connect(const struct mig_uri *u, char *err, size_t n)
{
	if (u->kind == MIG_FD)
		return u->fd;
	return u->kind == MIG_TCP ? tcp_socket(u, false, err, n) : unix_socket(u, false, err, n);
}
