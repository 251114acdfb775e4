/* tern-monitor's run (monitor.h). */
#include "monitor/monitor.h"
#include "core/util.h"
#include "monitor/console_server.h"
#include "monitor/line_tail.h"
#include "monitor/pid_file.h"
#include "monitor/rotlog.h"
#include "monitor/run_status.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* How long clients get to take the last output once PROGRAM is gone. */
#define FINAL_FLUSH_MS 1000

struct monitor {
	const struct monitor_opts *o;
	struct loop *loop;
	struct console_server con;
	struct rotlog console_log, vmm_log;
	struct line_tail console_tail, vmm_tail;
	int out_fd, err_fd, sig_fd;
	pid_t pid;
	bool reaped;
	int wait_status;
	double ended_at;
	int console_log_err, vmm_log_err; /* the last error reported, to report each once */
	char *status_path, *status_vmm_path, *pid_path, *sock_path;
};

/* One monitor per process: note() needs it without an argument (console_server.h). */
static struct monitor mon;

static void note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The monitor's own remarks go to its stderr and, where ternd will look, into vmm.log. */
static void note(const char *fmt, ...)
{
	char line[512];
	va_list ap;
	int n = snprintf(line, sizeof(line), "tern-monitor: ");

	va_start(ap, fmt);
	vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	strcat(line, "\n");
	if (write(STDERR_FILENO, line, strlen(line)) < 0) {
		/* nowhere else to say it */
	}
	if (mon.vmm_log.fd >= 0)
		rotlog_write(&mon.vmm_log, line, strlen(line));
}

static char *path_in(const char *dir, const char *name)
{
	size_t len = strlen(dir) + strlen(name) + 2;
	char *p = malloc(len);

	if (p)
		snprintf(p, len, "%s/%s", dir, name);
	return p;
}

static void log_to(struct rotlog *l, int *last_err, const char *what, const char *buf, size_t n)
{
	int r = rotlog_write(l, buf, n);

	if (r && r != *last_err)
		note("%s: %s (output is being dropped)", what, strerror(-r));
	*last_err = r;
}

static void console_out(struct monitor *m, const char *buf, size_t n)
{
	log_to(&m->console_log, &m->console_log_err, "console.log", buf, n);
	line_tail_feed(&m->console_tail, buf, n);
	console_server_output(&m->con, buf, n);
}

static void vmm_err(struct monitor *m, const char *buf, size_t n)
{
	log_to(&m->vmm_log, &m->vmm_log_err, "vmm.log", buf, n);
	line_tail_feed(&m->vmm_tail, buf, n);
}

enum pump { PUMP_MORE, PUMP_EMPTY, PUMP_END };

/*
 * Reads a pipe of PROGRAM's into sink: until it is empty, at its end (closes it: PROGRAM
 * may still run), or after a bounded amount, so the other fds get their turn.
 */
static enum pump pump(struct monitor *m, int *fd,
		      void (*sink)(struct monitor *, const char *, size_t))
{
	static char buf[64 * 1024];

	for (int i = 0; i < 16; i++) {
		ssize_t n = read(*fd, buf, sizeof(buf));
		if (n > 0) {
			sink(m, buf, (size_t)n);
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return PUMP_EMPTY;
		loop_del(m->loop, *fd);
		close(*fd);
		*fd = -1;
		return PUMP_END;
	}
	return PUMP_MORE;
}

static void on_stdout(void *opaque, uint32_t events)
{
	struct monitor *m = opaque;

	pump(m, &m->out_fd, console_out);
}

static void on_stderr(void *opaque, uint32_t events)
{
	struct monitor *m = opaque;

	pump(m, &m->err_fd, vmm_err);
}

static void on_sigchld(void *opaque, uint32_t events)
{
	struct monitor *m = opaque;
	struct signalfd_siginfo si;
	struct timespec ts;

	while (read(m->sig_fd, &si, sizeof(si)) == sizeof(si))
		;
	if (m->reaped || waitpid(m->pid, &m->wait_status, WNOHANG) != m->pid)
		return;
	m->reaped = true;
	clock_gettime(CLOCK_REALTIME, &ts);
	m->ended_at = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Composes and writes the status file. */
static void write_status(struct monitor *m, bool ran, const char *failure)
{
	const char *tail[LINE_TAIL_LINES], *last[LINE_TAIL_LINES];
	struct run_status_vmm vmm;
	const char *slash = strrchr(m->o->argv[0], '/');
	struct run_status_in in = {
		.ran = ran,
		.wait_status = m->wait_status,
		.ended_at = m->ended_at,
		.program = slash ? slash + 1 : m->o->argv[0],
		.failure = failure,
	};
	/* Read only once PROGRAM ran: the last run's was removed before it started. */
	int r = ran ? run_status_read_vmm(m->status_vmm_path, &vmm) : -ENOENT;

	if (r == 0)
		in.vmm = &vmm;
	else if (r != -ENOENT)
		note("%s: not a status PROGRAM wrote (%s): ignored", m->status_vmm_path,
		     strerror(-r));
	in.ntail = line_tail_get(&m->console_tail, tail, LINE_TAIL_LINES);
	in.tail = tail;
	size_t nlast = line_tail_get(&m->vmm_tail, last, LINE_TAIL_LINES);
	in.last_log_line = nlast ? last[nlast - 1] : NULL;
	if (!in.ended_at) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		in.ended_at = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
	}
	char *text = run_status_compose(&in);
	r = text ? run_status_write_file(m->status_path, text) : -ENOMEM;
	if (r)
		note("cannot write %s: %s", m->status_path, strerror(-r));
	free(text);
}

/* PROGRAM could not be started: the status says why, and the monitor ends with 1. */
static int fail_start(struct monitor *m, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static int fail_start(struct monitor *m, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	note("%s", msg);
	write_status(m, m->reaped, msg);
	if (m->con.listen_fd >= 0)
		console_server_close(&m->con, 0);
	return 1;
}

/*
 * In the child: PROGRAM's stdio on the pipes, default signal handling back (ignored
 * signals and the blocked mask would otherwise pass through exec), then exec. Other
 * fds the caller gave the monitor stay open for PROGRAM (e.g. --net tap-fd=N).
 */
static __attribute__((noreturn)) void child(struct monitor *m, const int fds[3], int report_fd)
{
	sigset_t none;

	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	signal(SIGPIPE, SIG_DFL);
	signal(SIGHUP, SIG_DFL);
	if (dup2(fds[0], STDIN_FILENO) >= 0 && dup2(fds[1], STDOUT_FILENO) >= 0 &&
	    dup2(fds[2], STDERR_FILENO) >= 0)
		execvp(m->o->argv[0], m->o->argv);
	int e = errno;
	/* Exit status 127 says it too, should the report not get through. */
	while (write(report_fd, &e, sizeof(e)) < 0 && errno == EINTR)
		;
	_exit(127);
}

static void close_pair(int p[2])
{
	for (int i = 0; i < 2; i++)
		if (p[i] >= 0)
			close(p[i]);
	p[0] = p[1] = -1;
}

/*
 * Forks and execs PROGRAM. 0, or -errno with why in err (then PROGRAM is not running,
 * and if it was forked it has been reaped).
 */
static int spawn(struct monitor *m, char *err, size_t errlen)
{
	int in[2] = { -1, -1 }, out[2] = { -1, -1 }, errp[2] = { -1, -1 }, rep[2] = { -1, -1 };
	int r = 0;

	if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0 || pipe2(errp, O_CLOEXEC) < 0 ||
	    pipe2(rep, O_CLOEXEC) < 0) {
		r = fail_msg(err, errlen, -errno, "pipe: %s", strerror(errno));
		goto out;
	}
	m->pid = fork();
	if (m->pid < 0) {
		r = fail_msg(err, errlen, -errno, "fork: %s", strerror(errno));
		goto out;
	}
	if (m->pid == 0) {
		const int fds[3] = { in[0], out[1], errp[1] };
		child(m, fds, rep[1]);
	}
	close(rep[1]);
	rep[1] = -1;
	/* The report pipe closes at exec (EOF: it runs) or carries exec's errno. */
	int e = 0;
	ssize_t n;
	while ((n = read(rep[0], &e, sizeof(e))) < 0 && errno == EINTR)
		;
	if (n == sizeof(e)) {
		r = fail_msg(err, errlen, -e, "cannot run '%s': %s", m->o->argv[0], strerror(e));
		while (waitpid(m->pid, &m->wait_status, 0) < 0 && errno == EINTR)
			;
		m->reaped = true;
		goto out;
	}
	/* The monitor's ends never block it: PROGRAM waits on a full pipe, the monitor never. */
	fcntl(in[1], F_SETFL, O_NONBLOCK);
	fcntl(out[0], F_SETFL, O_NONBLOCK);
	fcntl(errp[0], F_SETFL, O_NONBLOCK);
	console_server_set_input(&m->con, in[1]);
	m->out_fd = out[0];
	m->err_fd = errp[0];
	in[1] = out[0] = errp[0] = -1;
out:
	close_pair(in);
	close_pair(out);
	close_pair(errp);
	close_pair(rep);
	return r;
}

/*
 * PROGRAM is gone, but what it wrote last may still be in the pipes. Bounded: a process
 * PROGRAM left behind could hold them open and keep writing.
 */
static void drain(struct monitor *m)
{
	for (int i = 0; i < 64 && m->out_fd >= 0 && pump(m, &m->out_fd, console_out) == PUMP_MORE;
	     i++)
		;
	for (int i = 0; i < 64 && m->err_fd >= 0 && pump(m, &m->err_fd, vmm_err) == PUMP_MORE; i++)
		;
}

static int remove_old(const char *path)
{
	return unlink(path) < 0 && errno != ENOENT ? -errno : 0;
}

int monitor_run(const struct monitor_opts *o)
{
	struct monitor *m = &mon;
	char err[512];
	sigset_t chld;
	int r;

	memset(m, 0, sizeof(*m));
	m->o = o;
	m->out_fd = m->err_fd = m->sig_fd = -1;
	m->console_log.fd = m->vmm_log.fd = -1;
	m->con.listen_fd = -1;
	line_tail_init(&m->console_tail);
	line_tail_init(&m->vmm_tail);
	m->status_path = path_in(o->dir, "status");
	m->status_vmm_path = o->status_vmm ? strdup(o->status_vmm) : path_in(o->dir, "status.vmm");
	m->pid_path = path_in(o->dir, "pid");
	m->sock_path = path_in(o->dir, "console.sock");
	if (!m->status_path || !m->status_vmm_path || !m->pid_path || !m->sock_path) {
		note("out of memory");
		return 1;
	}
	/*
	 * A console client that leaves must not kill the monitor, nor the end of the session
	 * it was started in; SIGCHLD must not be ignored, or PROGRAM's end could not be read.
	 */
	signal(SIGPIPE, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	signal(SIGCHLD, SIG_DFL);
	m->loop = loop_create();
	if (!m->loop)
		return fail_start(m, "cannot create the event loop: %s", strerror(errno));
	r = console_server_open(&m->con, m->loop, m->sock_path, note, err, sizeof(err));
	if (r == -EADDRINUSE) {
		/* DIR belongs to a live run: none of its files are ours to write. */
		note("%s", err);
		return 1;
	}
	if (r)
		return fail_start(m, "%s", err);
	/* What an earlier run left would be taken for this run's end. */
	if ((r = remove_old(m->status_vmm_path)) || (r = remove_old(m->status_path)))
		return fail_start(m, "cannot remove the last run's status: %s", strerror(-r));
	char *log = path_in(o->dir, "vmm.log");
	r = log ? rotlog_open(&m->vmm_log, log, o->log_size, o->log_keep) : -ENOMEM;
	free(log);
	if (r)
		return fail_start(m, "%s/vmm.log: %s", o->dir, strerror(-r));
	log = path_in(o->dir, "console.log");
	r = log ? rotlog_open(&m->console_log, log, o->log_size, o->log_keep) : -ENOMEM;
	free(log);
	if (r)
		return fail_start(m, "%s/console.log: %s", o->dir, strerror(-r));
	/* Blocked before the fork, so that an early end of PROGRAM is not missed. */
	sigemptyset(&chld);
	sigaddset(&chld, SIGCHLD);
	sigprocmask(SIG_BLOCK, &chld, NULL);
	m->sig_fd = signalfd(-1, &chld, SFD_NONBLOCK | SFD_CLOEXEC);
	if (m->sig_fd < 0 || (r = loop_add(m->loop, m->sig_fd, EPOLLIN, on_sigchld, m)) < 0)
		return fail_start(m, "signalfd: %s", strerror(m->sig_fd < 0 ? errno : -r));
	if (spawn(m, err, sizeof(err)))
		return fail_start(m, "%s", err);
	r = pid_file_write(m->pid_path, getpid(), m->pid);
	if (r)
		note("cannot write %s: %s", m->pid_path, strerror(-r));
	if ((r = loop_add(m->loop, m->out_fd, EPOLLIN, on_stdout, m)) < 0 ||
	    (r = loop_add(m->loop, m->err_fd, EPOLLIN, on_stderr, m)) < 0) {
		/* Its console would fill up unread and stall it: better ended than hung. */
		note("cannot watch PROGRAM's output: %s: killing it", strerror(-r));
		kill(m->pid, SIGKILL);
	}
	while (!m->reaped) {
		r = loop_run_once(m->loop, -1);
		console_server_reap(&m->con);
		if (r < 0) {
			note("event loop: %s: waiting for PROGRAM without serving it",
			     strerror(-r));
			while (waitpid(m->pid, &m->wait_status, 0) < 0 && errno == EINTR)
				;
			m->reaped = true;
		}
	}
	drain(m);
	write_status(m, true, NULL);
	console_server_close(&m->con, FINAL_FLUSH_MS);
	rotlog_close(&m->console_log);
	rotlog_close(&m->vmm_log);
	return 0;
}
