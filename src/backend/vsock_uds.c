/* Unix sockets behind virtio-vsock: the listener at PATH, connects to PATH_P, the handshake. */
#include "backend/vsock_uds.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

static const char prefix[] = "CONNECT ";
#define PREFIX_LEN (sizeof(prefix) - 1)
#define PORT_DIGITS_MAX 10

_Static_assert(VSOCK_UDS_PATH_MAX + 1 + PORT_DIGITS_MAX <
		       sizeof(((struct sockaddr_un *)0)->sun_path),
	       "PATH_PORT must fit sun_path");

static int make_addr(struct sockaddr_un *a, const char *path)
{
	size_t n = strlen(path);

	memset(a, 0, sizeof(*a));
	a->sun_family = AF_UNIX;
	if (n == 0 || n >= sizeof(a->sun_path))
		return -ENAMETOOLONG;
	memcpy(a->sun_path, path, n);
	return 0;
}

static int new_socket(void)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	return fd < 0 ? -errno : fd;
}

/* Is a socket at path still listened on? */
static bool in_use(const struct sockaddr_un *a)
{
	/* Non-blocking: a live listener with a full backlog answers EAGAIN, not a wait. */
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	bool live;

	if (fd < 0)
		return true; /* cannot tell: do not remove it */
	live = connect(fd, (const struct sockaddr *)a, sizeof(*a)) == 0 || errno != ECONNREFUSED;
	close(fd);
	return live;
}

int vsock_uds_check_path(const char *path, char *err, size_t errlen)
{
	struct stat st;
	size_t n = strlen(path);

	if (n == 0) {
		snprintf(err, errlen, "uds= needs a path for the Unix socket");
		return -EINVAL;
	}
	if (n > VSOCK_UDS_PATH_MAX) {
		snprintf(err, errlen,
			 "uds='%s' is %zu bytes; at most %d (PATH_PORT must fit a Unix socket "
			 "address)",
			 path, n, VSOCK_UDS_PATH_MAX);
		return -ENAMETOOLONG;
	}
	if (path[n - 1] == '/') {
		snprintf(err, errlen, "uds='%s' names a directory, not a socket file", path);
		return -EISDIR;
	}
	/* The directory must exist: bind() would fail later with a vaguer message. */
	char dir[VSOCK_UDS_PATH_MAX + 1];
	const char *slash = strrchr(path, '/');
	if (slash) {
		size_t dn = slash == path ? 1 : (size_t)(slash - path);
		memcpy(dir, path, dn);
		dir[dn] = 0;
		if (stat(dir, &st) < 0) {
			int e = errno;
			snprintf(err, errlen, "uds='%s': directory '%s': %s", path, dir,
				 strerror(e));
			return -e;
		}
		if (!S_ISDIR(st.st_mode)) {
			snprintf(err, errlen, "uds='%s': '%s' is not a directory", path, dir);
			return -ENOTDIR;
		}
	}
	if (lstat(path, &st) < 0) {
		if (errno == ENOENT)
			return 0;
		int e = errno;
		snprintf(err, errlen, "uds='%s': %s", path, strerror(e));
		return -e;
	}
	if (!S_ISSOCK(st.st_mode)) {
		snprintf(err, errlen,
			 "uds='%s' exists and is not a socket; tern only replaces a stale socket",
			 path);
		return -EEXIST;
	}
	struct sockaddr_un a;
	if (make_addr(&a, path) == 0 && in_use(&a)) {
		snprintf(err, errlen, "uds='%s' is a socket another process listens on", path);
		return -EADDRINUSE;
	}
	return 0;
}

int vsock_uds_listen(const char *path, const char **why)
{
	struct sockaddr_un a;
	struct stat st;
	int fd, r;

	*why = "bad path";
	if ((r = make_addr(&a, path)))
		return r;
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			*why = "exists and is not a socket";
			return -EEXIST;
		}
		if (in_use(&a)) {
			*why = "is a socket another process listens on";
			return -EADDRINUSE;
		}
		if (unlink(path) < 0 && errno != ENOENT) {
			*why = "cannot remove the stale socket";
			return -errno;
		}
	}
	if ((fd = new_socket()) < 0) {
		*why = "cannot create a Unix socket";
		return fd;
	}
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		r = -errno;
		*why = "cannot bind";
		close(fd);
		return r;
	}
	if (listen(fd, 128) < 0) {
		r = -errno;
		*why = "cannot listen";
		close(fd);
		unlink(path);
		return r;
	}
	return fd;
}

int vsock_uds_accept(int listen_fd)
{
	int fd = accept4(listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

	return fd < 0 ? -errno : fd;
}

int vsock_uds_connect(const char *path, uint32_t port)
{
	char name[sizeof(((struct sockaddr_un *)0)->sun_path)];
	struct sockaddr_un a;
	int fd, r;

	if ((size_t)snprintf(name, sizeof(name), "%s_%u", path, port) >= sizeof(name))
		return -ENAMETOOLONG;
	if ((r = make_addr(&a, name)))
		return r;
	if ((fd = new_socket()) < 0)
		return fd;
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		r = -errno;
		close(fd);
		/* Unix connects do not go on in the background; EINPROGRESS would be news. */
		return r == -EINPROGRESS ? -EAGAIN : r;
	}
	return fd;
}

int vsock_uds_parse_connect(const char *buf, size_t len, uint32_t *port)
{
	uint64_t v = 0;
	size_t i, digits = 0;

	for (i = 0; i < len && i < VSOCK_UDS_LINE_MAX; i++) {
		char ch = buf[i];
		if (i < PREFIX_LEN) {
			if (ch != prefix[i])
				return -EINVAL;
			continue;
		}
		if (ch == '\n') {
			if (digits == 0)
				return -EINVAL;
			*port = (uint32_t)v;
			return (int)i + 1;
		}
		if (ch < '0' || ch > '9' || ++digits > PORT_DIGITS_MAX)
			return -EINVAL;
		v = v * 10 + (uint64_t)(ch - '0');
		if (v > UINT32_MAX)
			return -EINVAL;
	}
	return i >= VSOCK_UDS_LINE_MAX ? -EINVAL : 0;
}

int vsock_uds_read_connect(int fd, uint32_t *port)
{
	char buf[VSOCK_UDS_LINE_MAX];
	ssize_t n;
	int r;

	/* Peek, so that bytes sent right after the line stay for the guest. */
	do
		n = recv(fd, buf, sizeof(buf), MSG_PEEK | MSG_DONTWAIT);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -errno;
	if (n == 0)
		return -ECONNRESET;
	r = vsock_uds_parse_connect(buf, (size_t)n, port);
	if (r <= 0)
		return r;
	do
		n = recv(fd, buf, (size_t)r, MSG_DONTWAIT);
	while (n < 0 && errno == EINTR);
	return n == r ? 1 : -EIO;
}

int vsock_uds_send_ok(int fd, uint32_t host_port)
{
	char line[32];
	int len = snprintf(line, sizeof(line), "OK %u\n", host_port);
	ssize_t n;

	do
		n = send(fd, line, (size_t)len, MSG_NOSIGNAL | MSG_DONTWAIT);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	return n == len ? 0 : -EAGAIN;
}
