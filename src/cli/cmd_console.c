/*
 * `tern console NAME [--ro] [--log]`: the monitor's console socket (console.sock:
 * "ATTACH rw|ro\n", then "OK\n" or "BUSY\n", then raw bytes both ways), or the log.
 */
#include "cli/cli.h"
#include "cli/term_raw.h"
#include "core/util.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define ESCAPE 0x1d /* Ctrl-]: detaches, as in virsh */
#define HANDSHAKE_MS 10000
#define LOG_KEEP_MAX 100 /* the monitor keeps at most console.log.1 .. .100 */

/* Copies one file to stdout; -errno when it cannot be opened. */
static int cat_file(const char *path)
{
	char buf[65536];
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	while ((n = read(fd, buf, sizeof(buf))) > 0 || (n < 0 && errno == EINTR))
		if (n > 0 && fd_write_all(STDOUT_FILENO, buf, (size_t)n)) {
			close(fd);
			return -EPIPE;
		}
	close(fd);
	return 0;
}

/* The log's i-th rotated predecessor (console.log.i), or the log itself for 0. */
static const char *log_file(const char *log, int i, char *buf, size_t n)
{
	int len = i ? snprintf(buf, n, "%s.%d", log, i) : snprintf(buf, n, "%s", log);

	return len >= 0 && (size_t)len < n ? buf : NULL;
}

/* console.log.N .. console.log.1, then console.log: oldest first, as one stream. */
static int print_log(const char *log, const char *name)
{
	char path[4200];
	int last = 0, r, shown = 0;

	if (!log_file(log, LOG_KEEP_MAX, path, sizeof(path))) {
		cli_error("%s: the path is too long", log);
		return CLI_FAILED;
	}
	for (int i = 1; i <= LOG_KEEP_MAX; i++) {
		if (access(log_file(log, i, path, sizeof(path)), F_OK))
			break;
		last = i;
	}
	for (int i = last; i >= 0; i--) {
		log_file(log, i, path, sizeof(path));
		r = cat_file(path);
		if (r == -ENOENT) /* rotated away meanwhile, or no run yet */
			continue;
		if (r == -EPIPE)
			return CLI_FAILED;
		if (r) {
			cli_error("%s: %s", path, strerror(-r));
			return CLI_FAILED;
		}
		shown++;
	}
	if (!shown) {
		cli_error("%s has no console log yet (%s)", name, log);
		return CLI_FAILED;
	}
	return CLI_OK;
}

/* Connects and asks; the connected socket, or -1 with the error printed. */
static int attach(const char *sock, const char *name, bool ro)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	char line[256];
	size_t len = 0;
	int fd;

	if (strlen(sock) >= sizeof(a.sun_path)) {
		cli_error("%s: the path is too long", sock);
		return -1;
	}
	strcpy(a.sun_path, sock);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
	    connect(fd, (struct sockaddr *)&a, sizeof(a))) {
		cli_error("%s's console %s: %s", name, sock, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	const char *hello = ro ? "ATTACH ro\n" : "ATTACH rw\n";
	if (fd_write_all(fd, hello, strlen(hello)))
		goto broken;
	/* Byte by byte: what follows the answer's newline is console output already. */
	while (len + 1 < sizeof(line)) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		int r = poll(&p, 1, HANDSHAKE_MS);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0 || read(fd, line + len, 1) != 1)
			goto broken;
		if (line[len++] == '\n')
			break;
	}
	line[len] = 0;
	line[strcspn(line, "\n")] = 0;
	if (!strcmp(line, "OK"))
		return fd;
	close(fd);
	if (!strcmp(line, "BUSY"))
		cli_error("%s's console has a read-write client already: `tern console --ro %s` "
			  "watches it",
			  name, name);
	else
		cli_error("%s's console refused to attach: %s", name, line);
	return -1;
broken:
	cli_error("%s's console %s did not answer the attach", name, sock);
	close(fd);
	return -1;
}

/*
 * Bytes both ways until the console closes, stdin ends (read-only, or no terminal and
 * nothing left to wait for) or Ctrl-] on a terminal. Input waits in pending while the
 * monitor does not take it; stdin is not read meanwhile.
 */
static int relay(int sock, bool ro, bool tty)
{
	char buf[65536], pending[4096];
	size_t npending = 0, off = 0;
	bool in_open = tty || !ro;

	for (;;) {
		struct pollfd p[2] = {
			{ .fd = sock, .events = POLLIN | (npending ? POLLOUT : 0) },
			{ .fd = in_open && !npending ? STDIN_FILENO : -1, .events = POLLIN },
		};
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (p[0].revents & (POLLIN | POLLHUP | POLLERR)) {
			ssize_t n = read(sock, buf, sizeof(buf));
			if (n < 0 && (errno == EINTR || errno == EAGAIN))
				continue;
			if (n <= 0)
				return 1; /* the console closed: the VM ended */
			if (fd_write_all(STDOUT_FILENO, buf, (size_t)n))
				return -EPIPE;
		}
		if (npending && (p[0].revents & POLLOUT)) {
			ssize_t w = send(sock, pending + off, npending - off,
					 MSG_NOSIGNAL | MSG_DONTWAIT);
			if (w < 0 && errno != EAGAIN && errno != EINTR)
				return 1;
			if (w > 0 && (off += (size_t)w) == npending)
				npending = off = 0;
		}
		if (p[1].revents & (POLLIN | POLLHUP | POLLERR)) {
			ssize_t n = read(STDIN_FILENO, pending, sizeof(pending));
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0) {
				in_open = false;
				continue;
			}
			char *esc = tty ? memchr(pending, ESCAPE, (size_t)n) : NULL;
			size_t keep = esc ? (size_t)(esc - pending) : (size_t)n;
			if (!ro && keep) {
				/* The bytes before Ctrl-] still go, then we leave. */
				if (esc && send(sock, pending, keep, MSG_NOSIGNAL) < 0)
					return 1;
				npending = esc ? 0 : keep;
			}
			if (esc)
				return 0;
		}
	}
}

int cmd_console(struct cli *c, int argc, char **argv)
{
	bool ro = false, log = false;
	const struct cli_opt opts[] = {
		{ .name = "ro", .kind = CLI_OPT_FLAG, .out = &ro },
		{ .name = "log", .kind = CLI_OPT_FLAG, .out = &log },
	};
	const char *name, *state;
	struct json_object *vm;
	char path[160], sock[4200];
	bool tty = isatty(STDIN_FILENO);
	int e, fd;

	if (cli_args(c, argc, argv, opts, 2, &name, 1))
		return CLI_OK;
	/* The console is the monitor's Unix socket and its log a file, on ternd's host. */
	if (c->remote) {
		cli_error("console needs a local ternd: %s's console is a socket on %s's host "
			  "(run tern console there)",
			  name, c->url);
		return CLI_USAGE;
	}
	if ((e = cli_call(c, "GET", cli_vm_path(name, NULL, path, sizeof(path)), NULL,
			  CLI_GET_TIMEOUT_MS, &vm)))
		return e;
	if (log) {
		snprintf(sock, sizeof(sock), "%s", cli_str(vm, "console_log", ""));
		json_object_put(vm);
		return print_log(sock, name);
	}
	state = cli_str(vm, "state", "");
	if (strcmp(state, "running") && strcmp(state, "paused")) {
		cli_error(
			"%s is %s: no console to attach to (tern console --log %s prints its log)",
			name, state, name);
		json_object_put(vm);
		return CLI_FAILED;
	}
	snprintf(sock, sizeof(sock), "%s", cli_str(vm, "console_socket", ""));
	json_object_put(vm);
	if ((fd = attach(sock, name, ro)) < 0)
		return CLI_FAILED;
	if (tty) {
		fprintf(stderr, "Connected to %s's console%s (Ctrl-] detaches)\n", name,
			ro ? ", read-only" : "");
		if ((e = term_raw_enter(STDIN_FILENO))) {
			cli_error("cannot put the terminal in raw mode: %s", strerror(-e));
			close(fd);
			return CLI_FAILED;
		}
	}
	e = relay(fd, ro, tty);
	term_raw_restore();
	close(fd);
	if (tty)
		fprintf(stderr, "\n");
	if (e == 1)
		fprintf(stderr, "tern: %s's console closed (the VM stopped)\n", name);
	else if (e < 0 && e != -EPIPE)
		cli_error("console: %s", strerror(-e));
	return e < 0 ? CLI_FAILED : CLI_OK;
}
