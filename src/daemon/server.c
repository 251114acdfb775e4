/* ternd's API sockets: an accepting thread per socket, a thread per connection. */
#include "daemon/server.h"

#include "api/http.h"
#include "core/log.h"
#include "core/util.h"

#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

/* A connection idle this long between requests is closed (not one waiting for an answer). */
#define IDLE_S 30

struct listener {
	struct mgmt_listener *l;
	int fd;
	sem_t slots;
};

struct conn {
	struct listener *ls;
	int fd;
};

static bool write_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return false;
		p += w;
		n -= (size_t)w;
	}
	return true;
}

static void *conn_thread(void *arg)
{
	struct conn *c = arg;
	struct http_conn *h = http_conn_new(mgmt_handle, c->ls->l);
	struct timeval idle = { .tv_sec = IDLE_S };
	char buf[16384];

	setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &idle, sizeof(idle));
	while (h) {
		ssize_t n = recv(c->fd, buf, sizeof(buf), 0);
		int r;
		if (n < 0 && errno == EINTR)
			continue;
		r = n > 0 ? http_conn_feed(h, buf, (size_t)n) : (http_conn_eof(h), -1);
		size_t len;
		const char *out = http_conn_output(h, &len);
		if (len && !write_all(c->fd, out, len))
			break;
		http_conn_consume(h, len);
		if (r < 0)
			break;
	}
	http_conn_free(h);
	close(c->fd);
	sem_post(&c->ls->slots);
	free(c);
	return NULL;
}

static void *accept_thread(void *arg)
{
	struct listener *ls = arg;

	for (;;) {
		sem_wait(&ls->slots);
		int fd = accept4(ls->fd, NULL, NULL, SOCK_CLOEXEC);
		struct conn *c = fd >= 0 ? malloc(sizeof(*c)) : NULL;
		pthread_t th;
		if (c) {
			*c = (struct conn){ ls, fd };
			if (!pthread_create(&th, NULL, conn_thread, c)) {
				pthread_detach(th);
				continue;
			}
			free(c);
		}
		if (fd >= 0)
			close(fd);
		else
			usleep(10000); /* EMFILE and the like: do not spin */
		sem_post(&ls->slots);
	}
	return NULL;
}

int server_start(struct mgmt_listener *l, const char *path, mode_t mode, gid_t gid, char *err,
		 size_t errlen)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	struct listener *ls;
	struct stat st;
	pthread_t th;
	int fd;

	if (strlen(path) >= sizeof(a.sun_path))
		return fail_msg(err, errlen, -ENAMETOOLONG, "%s: longer than a socket path may be",
				path);
	strcpy(a.sun_path, path);
	if (!lstat(path, &st)) {
		if (!S_ISSOCK(st.st_mode))
			return fail_msg(err, errlen, -EEXIST, "%s exists and is not a socket",
					path);
		unlink(path); /* ours, from a ternd that ended: the state lock says none runs */
	}
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		return fail_msg(err, errlen, -errno, "socket: %s", strerror(errno));
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) || chmod(path, mode) ||
	    (gid != (gid_t)-1 && chown(path, (uid_t)-1, gid)) || listen(fd, 128)) {
		int e = errno;
		close(fd);
		return fail_msg(err, errlen, -e, "%s: %s", path, strerror(e));
	}
	if (!(ls = calloc(1, sizeof(*ls)))) {
		close(fd);
		return -ENOMEM;
	}
	ls->l = l;
	ls->fd = fd;
	sem_init(&ls->slots, 0, SERVER_MAX_CONNS);
	if (pthread_create(&th, NULL, accept_thread, ls)) {
		close(fd);
		free(ls);
		return fail_msg(err, errlen, -EAGAIN, "cannot start a thread");
	}
	pthread_detach(th);
	return 0;
}
