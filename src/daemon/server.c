/* ternd's API sockets: an accepting thread per socket, a thread per connection (which a
 * migration's stream turns into a byte tunnel after its answer). */
#include "daemon/server.h"

#include "api/http.h"
#include "core/log.h"
#include "core/tcp.h"
#include "core/tls.h"
#include "core/util.h"
#include "daemon/relay.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
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
/* A TLS client gets this long for its handshake, and an answer this long to be taken. */
#define TLS_HANDSHAKE_MS 10000
#define TLS_SEND_MS 60000

struct listener {
	struct mgmt_listener *l;
	int fd;
	struct tls_creds *tls; /* NULL: a Unix socket */
	sem_t slots;
};

struct conn {
	struct listener *ls;
	int fd;
	struct tls_conn *tls;
	char peer[80]; /* "client ADDR:PORT", for the log */
};

/* The bytes of one connection, over TLS or not: > 0, 0 at the end, -1 on failure. */
static ssize_t conn_recv(struct conn *c, char *buf, size_t n)
{
	if (c->tls) {
		ssize_t r = tls_read(c->tls, buf, n, IDLE_S * 1000);
		if (r < 0 && r != -ETIMEDOUT && r != -ECONNRESET)
			log_info("TLS: %s", tls_error(c->tls));
		return r < 0 ? -1 : r;
	}
	for (;;) {
		ssize_t r = recv(c->fd, buf, n, 0);
		if (r >= 0 || errno != EINTR)
			return r;
	}
}

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

static bool conn_send(struct conn *c, const char *p, size_t n)
{
	return c->tls ? !tls_write_all(c->tls, p, n, TLS_SEND_MS) : write_all(c->fd, p, n);
}

/* The TLS handshake, on the connection's own thread: a slow client holds up no other. */
static bool tls_accept(struct conn *c)
{
	char err[1024];
	int fd = c->fd, one = 1;

	c->fd = -1; /* the TLS connection owns it from here, also when refused */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	int r = tls_handshake(&c->tls, c->ls->tls, fd, NULL, c->peer, TLS_HANDSHAKE_MS, err,
			      sizeof(err));
	/* A refused certificate is worth a warning; a port probe that hangs up is not. */
	if (r) {
		log_msg(r == -EACCES ? LOG_WARN : LOG_INFO, "TLS: %s", err);
		return false;
	}
	/* debug: tern's progress line alone makes two connections a second */
	log_debug("TLS: %s connected as %s", c->peer, tls_peer_subject(c->tls));
	return true;
}

/* Set by a handler on this connection's thread (server_tunnel_after_reply). */
static __thread int tunnel_fd = -1;
static __thread char tunnel_label[160];

void server_tunnel_after_reply(int fd, const char *label)
{
	tunnel_fd = fd;
	snprintf(tunnel_label, sizeof(tunnel_label), "%s", label);
}

/* The connection as a byte tunnel to fd until either end closes; both are closed after. */
static void tunnel(struct conn *c, int fd)
{
	struct relay_end peer = { .fd = c->fd,
				  .tls = c->tls,
				  .name = c->peer[0] ? c->peer : "client" };
	struct relay_end local = { .fd = fd, .name = tunnel_label };
	char why[1024];

	log_info("%s: tunnel to %s open", tunnel_label, peer.name);
	relay_run(&peer, &local, -1, -1, why, sizeof(why));
	log_info("%s: tunnel ended (%llu bytes in, %llu out): %s", tunnel_label,
		 (unsigned long long)peer.bytes_in, (unsigned long long)local.bytes_in, why);
	c->fd = -1;
	c->tls = NULL;
}

static void *conn_thread(void *arg)
{
	struct conn *c = arg;
	struct http_conn *h = NULL;
	struct timeval idle = { .tv_sec = IDLE_S };
	char buf[16384];

	if (!c->ls->tls || tls_accept(c))
		h = http_conn_new(mgmt_handle, c->ls->l);
	if (!c->tls && c->fd >= 0)
		setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &idle, sizeof(idle));
	while (h) {
		ssize_t n = conn_recv(c, buf, sizeof(buf));
		int r = n > 0 ? http_conn_feed(h, buf, (size_t)n) : (http_conn_eof(h), -1);
		size_t len;
		const char *out = http_conn_output(h, &len);
		bool sent = !len || conn_send(c, out, len);
		http_conn_consume(h, len);
		if (tunnel_fd >= 0) {
			int fd = tunnel_fd;
			tunnel_fd = -1;
			if (sent)
				tunnel(c, fd);
			else
				close(fd);
			break;
		}
		if (!sent || r < 0)
			break;
	}
	http_conn_free(h);
	if (c->tls)
		tls_close(c->tls);
	else if (c->fd >= 0)
		close(c->fd);
	sem_post(&c->ls->slots);
	free(c);
	return NULL;
}

static void *accept_thread(void *arg)
{
	struct listener *ls = arg;

	for (;;) {
		struct sockaddr_storage peer;
		socklen_t plen = sizeof(peer);
		sem_wait(&ls->slots);
		int fd = accept4(ls->fd, (struct sockaddr *)&peer, &plen, SOCK_CLOEXEC);
		struct conn *c = fd >= 0 ? calloc(1, sizeof(*c)) : NULL;
		pthread_t th;
		if (c) {
			c->ls = ls;
			c->fd = fd;
			if (ls->tls) {
				char addr[64];
				tcp_peer_text((struct sockaddr *)&peer, plen, addr, sizeof(addr));
				snprintf(c->peer, sizeof(c->peer), "client %s", addr);
			}
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

/* Serves the listening socket fd (which it takes) on an accepting thread. */
static int serve(struct mgmt_listener *l, int fd, struct tls_creds *tls, char *err, size_t errlen)
{
	struct listener *ls;
	pthread_t th;

	if (!(ls = calloc(1, sizeof(*ls)))) {
		close(fd);
		return -ENOMEM;
	}
	ls->l = l;
	ls->fd = fd;
	ls->tls = tls;
	sem_init(&ls->slots, 0, SERVER_MAX_CONNS);
	if (pthread_create(&th, NULL, accept_thread, ls)) {
		close(fd);
		free(ls);
		return fail_msg(err, errlen, -EAGAIN, "cannot start a thread");
	}
	pthread_detach(th);
	return 0;
}

int server_start(struct mgmt_listener *l, const char *path, mode_t mode, gid_t gid, char *err,
		 size_t errlen)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	struct stat st;
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
	return serve(l, fd, NULL, err, errlen);
}

int server_start_tls(struct mgmt_listener *l, const struct hostport *addr, struct tls_creds *creds,
		     char *err, size_t errlen)
{
	int fd = tcp_listen(addr, 128, err, errlen);

	return fd < 0 ? fd : serve(l, fd, creds, err, errlen);
}
