/*
 * Tests for the API's socket server (src/api/http_server.c): real Unix sockets in a
 * temporary directory, the event loop run by hand between client steps. Checks the
 * socket file rules, keep-alive over the socket, the connection limit, the idle timeout
 * (TERN_API_IDLE_MS), and that a client that stalls or does not read blocks nobody.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "api/http.h"
#include "core/loop.h"
#include "unit.h"

/* One loop for every case: there is no loop_destroy, and a static pointer is not a leak. */
static struct loop *test_loop;

static struct loop *the_loop(void)
{
	if (!test_loop)
		test_loop = loop_create();
	return test_loop;
}

static void handler(void *opaque, const struct http_request *req, struct http_response *resp)
{
	int *n = opaque;
	char body[64];

	(*n)++;
	snprintf(body, sizeof(body), "{\"path\":\"%s\",\"n\":%d}", req->path, *n);
	resp->status = 200;
	resp->body = strdup(body);
}

struct env {
	char dir[40], path[96];
	struct http_server *s;
	int handled;
};

static int env_up(struct env *e, const char *idle_ms)
{
	char err[256];

	snprintf(e->dir, sizeof(e->dir), "/tmp/tern-http-XXXXXX");
	if (!mkdtemp(e->dir))
		return -1;
	snprintf(e->path, sizeof(e->path), "%s/api.sock", e->dir);
	e->handled = 0;
	if (idle_ms)
		setenv("TERN_API_IDLE_MS", idle_ms, 1);
	int r = http_server_create(&e->s, the_loop(), e->path, handler, &e->handled, err,
				   sizeof(err));
	unsetenv("TERN_API_IDLE_MS");
	if (r < 0)
		printf("  http_server_create: %s\n", err);
	return r;
}

static void env_down(struct env *e)
{
	http_server_destroy(e->s);
	rmdir(e->dir);
}

static int client(const struct env *e)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	snprintf(a.sun_path, sizeof(a.sun_path), "%s", e->path);
	if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static long long ms_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

/* Complete responses at the start of buf (each with a Content-Length body). */
static int responses(const char *buf, size_t len)
{
	int n = 0;
	const char *p = buf, *end = buf + len;

	for (;;) {
		const char *hdr_end = memmem(p, (size_t)(end - p), "\r\n\r\n", 4);
		if (!hdr_end)
			return n;
		const char *cl = memmem(p, (size_t)(hdr_end - p), "Content-Length: ", 16);
		size_t body = cl ? strtoul(cl + 16, NULL, 10) : 0;
		if ((size_t)(end - (hdr_end + 4)) < body)
			return n;
		p = hdr_end + 4 + body;
		n++;
	}
}

/*
 * Runs the loop and reads fd until want responses arrived (or EOF when want < 0), for
 * at most timeout_ms. Returns the bytes read into buf (NUL-terminated); *eof says if the
 * server closed the connection.
 */
static size_t drive(int fd, char *buf, size_t cap, int want, int timeout_ms, bool *eof)
{
	size_t len = 0;
	long long end = ms_now() + timeout_ms;

	*eof = false;
	while (ms_now() < end) {
		loop_run_once(the_loop(), 5);
		ssize_t n = recv(fd, buf + len, cap - 1 - len, MSG_DONTWAIT);
		if (n == 0 || (n < 0 && errno == ECONNRESET)) {
			*eof = true;
			break;
		}
		if (n > 0)
			len += (size_t)n;
		buf[len] = '\0';
		if (want >= 0 && responses(buf, len) >= want)
			break;
	}
	buf[len] = '\0';
	return len;
}

static void spin(int ms)
{
	long long end = ms_now() + ms;

	while (ms_now() < end)
		loop_run_once(the_loop(), 5);
}

static bool send_all(int fd, const char *s)
{
	return send(fd, s, strlen(s), MSG_NOSIGNAL) == (ssize_t)strlen(s);
}

TEST(http_server_round_trip)
{
	struct env e;
	char buf[4096];
	bool eof;
	struct stat st;

	REQUIRE(env_up(&e, NULL) == 0);
	REQUIRE(stat(e.path, &st) == 0 && S_ISSOCK(st.st_mode));
	int fd = client(&e);
	REQUIRE(fd >= 0);
	/* Keep-alive: two requests on one connection, then a pipelined pair. */
	CHECK(send_all(fd, "GET /a HTTP/1.1\r\nHost: localhost\r\n\r\n"));
	drive(fd, buf, sizeof(buf), 1, 2000, &eof);
	CHECK(!eof && strstr(buf, "HTTP/1.1 200 OK\r\n") &&
	      strstr(buf, "{\"path\":\"/a\",\"n\":1}"));
	CHECK(send_all(fd, "PUT /b HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}"
			   "GET /c?x=1 HTTP/1.1\r\nConnection: close\r\n\r\n"));
	size_t len = drive(fd, buf, sizeof(buf), -1, 2000, &eof);
	CHECK(eof && responses(buf, len) == 2);
	CHECK(strstr(buf, "{\"path\":\"/b\",\"n\":2}") && strstr(buf, "{\"path\":\"/c\",\"n\":3}"));
	close(fd);
	env_down(&e);
	CHECK(stat(e.path, &st) < 0 && errno == ENOENT);
}

TEST(http_server_socket_path)
{
	struct env e;
	char err[256], longpath[200];
	struct http_server *s = NULL;
	int n = 0;

	memset(longpath, 'x', sizeof(longpath) - 1);
	longpath[0] = '/';
	longpath[sizeof(longpath) - 1] = '\0';
	err[0] = '\0';
	CHECK(http_server_create(&s, the_loop(), longpath, handler, &n, err, sizeof(err)) ==
	      -ENAMETOOLONG);
	CHECK(!s && strstr(err, "too long"));

	/* A stale socket file is replaced; a regular file is refused and left alone. */
	REQUIRE(env_up(&e, NULL) == 0);
	http_server_destroy(e.s);
	int stale = socket(AF_UNIX, SOCK_STREAM, 0);
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	snprintf(a.sun_path, sizeof(a.sun_path), "%s", e.path);
	CHECK(bind(stale, (struct sockaddr *)&a, sizeof(a)) == 0);
	close(stale);
	CHECK(http_server_create(&s, the_loop(), e.path, handler, &n, err, sizeof(err)) == 0);
	http_server_destroy(s);

	int f = open(e.path, O_CREAT | O_WRONLY | O_EXCL, 0600);
	CHECK(f >= 0);
	close(f);
	err[0] = '\0';
	s = NULL;
	CHECK(http_server_create(&s, the_loop(), e.path, handler, &n, err, sizeof(err)) == -EEXIST);
	CHECK(!s && strstr(err, "not a socket"));
	struct stat st;
	CHECK(stat(e.path, &st) == 0 && S_ISREG(st.st_mode));
	unlink(e.path);
	rmdir(e.dir);
}

TEST(http_server_connection_limit)
{
	struct env e;
	int fds[HTTP_MAX_CONNS];
	char buf[1024];
	bool eof;

	REQUIRE(env_up(&e, NULL) == 0);
	for (int i = 0; i < HTTP_MAX_CONNS; i++) {
		fds[i] = client(&e);
		spin(10);
	}
	/* One too many: accepted and closed at once. */
	int extra = client(&e);
	CHECK(extra >= 0);
	drive(extra, buf, sizeof(buf), -1, 2000, &eof);
	CHECK(eof && buf[0] == '\0');
	close(extra);
	/* The others still work; closing one makes room for a new one. */
	for (int i = 0; i < HTTP_MAX_CONNS; i++) {
		CHECK(fds[i] >= 0 && send_all(fds[i], "GET / HTTP/1.1\r\n\r\n"));
		drive(fds[i], buf, sizeof(buf), 1, 2000, &eof);
		CHECK(!eof && responses(buf, strlen(buf)) == 1);
	}
	close(fds[0]);
	spin(20);
	fds[0] = client(&e);
	CHECK(send_all(fds[0], "GET / HTTP/1.1\r\n\r\n"));
	drive(fds[0], buf, sizeof(buf), 1, 2000, &eof);
	CHECK(!eof && responses(buf, strlen(buf)) == 1);
	for (int i = 0; i < HTTP_MAX_CONNS; i++)
		close(fds[i]);
	env_down(&e);
}

TEST(http_server_idle_timeout)
{
	struct env e;
	char buf[1024];
	bool eof;

	REQUIRE(env_up(&e, "300") == 0);
	/* A partial request and an idle keep-alive connection are both closed... */
	int partial = client(&e), idle = client(&e), busy = client(&e);
	REQUIRE(partial >= 0 && idle >= 0 && busy >= 0);
	CHECK(send_all(partial, "GET / HTTP/1.1\r\nHost:"));
	CHECK(send_all(idle, "GET / HTTP/1.1\r\n\r\n"));
	long long t0 = ms_now();
	drive(idle, buf, sizeof(buf), 1, 2000, &eof);
	CHECK(!eof && responses(buf, strlen(buf)) == 1);
	/* ...while the stalled one does not hold up another client. */
	CHECK(send_all(busy, "GET /busy HTTP/1.1\r\n\r\n"));
	drive(busy, buf, sizeof(buf), 1, 2000, &eof);
	CHECK(!eof && strstr(buf, "/busy"));
	CHECK(ms_now() - t0 < 300);
	drive(partial, buf, sizeof(buf), -1, 3000, &eof);
	long long waited = ms_now() - t0;
	CHECK(eof && buf[0] == '\0');
	CHECK(waited >= 250 && waited < 1500);
	drive(idle, buf, sizeof(buf), -1, 3000, &eof);
	CHECK(eof);
	close(partial);
	close(idle);
	close(busy);
	env_down(&e);
}

TEST(http_server_slow_reader)
{
	struct env e;
	enum { NREQ = 3000 };
	static const char req[] = "GET /p HTTP/1.1\r\n\r\n";
	static char pipeline[NREQ * (sizeof(req) - 1) + 1];
	static char got[NREQ * 128];
	char buf[1024];
	bool eof;

	for (int i = 0; i < NREQ; i++)
		memcpy(pipeline + i * (sizeof(req) - 1), req, sizeof(req) - 1);
	REQUIRE(env_up(&e, NULL) == 0);
	int slow = client(&e), other = client(&e);
	REQUIRE(slow >= 0 && other >= 0);
	/*
	 * Many pipelined requests from a client that does not read: its answers fill the
	 * socket, the server stops reading it, and the loop still serves another client.
	 */
	fcntl(slow, F_SETFL, O_NONBLOCK);
	size_t sent = 0, total = strlen(pipeline);
	long long end = ms_now() + 2000;
	while (sent < total && ms_now() < end) {
		ssize_t n = send(slow, pipeline + sent, total - sent, MSG_NOSIGNAL);
		if (n > 0)
			sent += (size_t)n;
		loop_run_once(the_loop(), 1);
	}
	CHECK(send_all(other, "GET /other HTTP/1.1\r\n\r\n"));
	drive(other, buf, sizeof(buf), 1, 2000, &eof);
	CHECK(!eof && strstr(buf, "/other"));
	/*
	 * Once the answers fill the socket, the unread connection is not watched for input
	 * either: the loop sleeps.
	 */
	spin(100);
	int woke = 0;
	for (int i = 0; i < 5; i++)
		woke += loop_run_once(the_loop(), 10) > 0;
	CHECK(woke <= 1); /* the idle timer may tick once */
	/* Now read everything: every request is answered, in order. */
	size_t len = 0;
	end = ms_now() + 5000;
	while (ms_now() < end && responses(got, len) < NREQ) {
		if (sent < total) {
			ssize_t n = send(slow, pipeline + sent, total - sent, MSG_NOSIGNAL);
			if (n > 0)
				sent += (size_t)n;
		}
		loop_run_once(the_loop(), 1);
		ssize_t n = recv(slow, got + len, sizeof(got) - 1 - len, MSG_DONTWAIT);
		if (n > 0)
			len += (size_t)n;
	}
	got[len] = '\0';
	CHECK(sent == total);
	CHECK(responses(got, len) == NREQ);
	CHECK(strstr(got, "\"n\":1}") && strstr(got, "\"n\":3001}"));
	close(slow);
	close(other);
	env_down(&e);
}

/* Says how many descriptors came with the request, and keeps the first (closes it itself). */
static void fd_handler(void *opaque, const struct http_request *req, struct http_response *resp)
{
	int *kept = opaque;
	char body[64];

	if (req->nfds) {
		*kept = req->fds[0];
		req->fds[0] = -1;
	}
	snprintf(body, sizeof(body), "{\"nfds\":%u}", req->nfds);
	resp->status = 200;
	resp->body = strdup(body);
}

/* Descriptors sent with a request's first bytes (SCM_RIGHTS) reach its handler, and only it. */
TEST(http_server_passes_descriptors)
{
	struct env e;
	char buf[4096], err[256];
	bool eof;
	int kept = -1, p[2];

	snprintf(e.dir, sizeof(e.dir), "/tmp/tern-http-XXXXXX");
	REQUIRE(mkdtemp(e.dir));
	snprintf(e.path, sizeof(e.path), "%s/api.sock", e.dir);
	REQUIRE(http_server_create(&e.s, the_loop(), e.path, fd_handler, &kept, err, sizeof(err)) ==
		0);
	int fd = client(&e);
	REQUIRE(fd >= 0 && pipe(p) == 0);
	const char *req = "PUT /files HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}";
	union {
		struct cmsghdr h;
		char space[CMSG_SPACE(2 * sizeof(int))];
	} ctl;
	/* The head with both ends of a pipe, the body in a second send. */
	struct iovec iov = { (void *)req, strlen(req) - 2 };
	struct msghdr m = {
		.msg_iov = &iov, .msg_iovlen = 1, .msg_control = &ctl, .msg_controllen = sizeof(ctl)
	};
	struct cmsghdr *h = CMSG_FIRSTHDR(&m);
	h->cmsg_level = SOL_SOCKET;
	h->cmsg_type = SCM_RIGHTS;
	h->cmsg_len = CMSG_LEN(2 * sizeof(int));
	memcpy(CMSG_DATA(h), p, 2 * sizeof(int));
	CHECK(sendmsg(fd, &m, MSG_NOSIGNAL) == (ssize_t)iov.iov_len);
	close(p[0]);
	close(p[1]);
	spin(50);
	CHECK(send_all(fd, "{}"));
	drive(fd, buf, sizeof(buf), 1, 2000, &eof);
	CHECK(strstr(buf, "{\"nfds\":2}") != NULL);
	/* The handler kept the read end; the write end it left was closed after it. */
	REQUIRE(kept >= 0);
	char c;
	fcntl(kept, F_SETFL, O_NONBLOCK); /* a write end still open somewhere: EAGAIN */
	CHECK(read(kept, &c, 1) == 0);
	close(kept);
	/* The next request on the connection gets none. */
	CHECK(send_all(fd, req));
	drive(fd, buf, sizeof(buf), 1, 2000, &eof);
	CHECK(strstr(buf, "{\"nfds\":0}") != NULL);
	close(fd);
	env_down(&e);
}
