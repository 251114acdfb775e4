/*
 * Tests for the seccomp allow-lists (src/jail/seccomp.c): the modes' names, that every
 * call a list names exists on this architecture (a typo would silently allow nothing),
 * that the vCPU and disk lists leave out what a hijacked thread would want, and, in a
 * child process, that a call outside a thread's list ends the process with SIGSYS and a
 * line naming the call, while listed calls go through.
 */
#include <errno.h>
#include <fcntl.h>
#include <seccomp.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "jail/seccomp.h"
#include "jail/seccomp_lists.h"
#include "unit.h"

static bool listed(const char *const *names, const char *name)
{
	for (; *names; names++)
		if (!strcmp(*names, name))
			return true;
	return false;
}

TEST(seccomp_modes_parse)
{
	CHECK(seccomp_mode_parse("kill") == SECCOMP_KILL);
	CHECK(seccomp_mode_parse("log") == SECCOMP_LOG);
	CHECK(seccomp_mode_parse("off") == SECCOMP_OFF);
	CHECK(seccomp_mode_parse("strict") == -1);
	CHECK(seccomp_mode_parse("") == -1);
	CHECK(!strcmp(seccomp_mode_name(SECCOMP_KILL), "kill"));
}

TEST(seccomp_every_listed_call_exists)
{
	const char *const *lists[SECCOMP_THREAD_KINDS + 3];
	unsigned int k = 0;

	for (unsigned int i = 0; i < SECCOMP_THREAD_KINDS; i++)
		lists[k++] = seccomp_lists[i].calls;
	lists[k++] = seccomp_common_calls();
	lists[k++] = seccomp_sanitizer_calls();
	lists[k++] = seccomp_restart_calls();
	for (unsigned int i = 0; i < k; i++)
		for (const char *const *c = lists[i]; *c; c++) {
			if (seccomp_syscall_resolve_name(*c) == __NR_SCMP_ERROR)
				fprintf(stderr, "no such call: %s\n", *c);
			CHECK(seccomp_syscall_resolve_name(*c) != __NR_SCMP_ERROR);
		}
	/* A call twice in one filter (common and a kind's own) would be a list nobody read. */
	for (unsigned int i = 0; i < SECCOMP_THREAD_KINDS; i++)
		for (const char *const *c = seccomp_lists[i].calls; *c; c++)
			CHECK(!listed(seccomp_common_calls(), *c));
}

TEST(seccomp_vcpu_and_io_lists_leave_out_what_a_hijacker_wants)
{
	static const char *const never[] = { "openat",	 "open",     "socket", "connect", "execve",
					     "execveat", "ptrace",   "clone",  "fork",	  "bind",
					     "accept4",	 "unlinkat", "mount",  "kill",	  NULL };

	for (const char *const *c = never; *c; c++) {
		CHECK(!listed(seccomp_lists[SECCOMP_VCPU].calls, *c));
		CHECK(!listed(seccomp_lists[SECCOMP_IO].calls, *c));
		CHECK(!listed(seccomp_common_calls(), *c));
	}
	/* No thread may type into the host's terminal: never TIOCSTI, never the whole type. */
	for (unsigned int i = 0; i < SECCOMP_THREAD_KINDS; i++) {
		for (const unsigned int *t = seccomp_lists[i].ioctl_types; *t; t++)
			CHECK(*t != 'T');
		for (const unsigned long *q = seccomp_lists[i].ioctls; *q; q++)
			CHECK(*q != TIOCSTI && *q != TIOCSCTTY && *q != TIOCSETD);
	}
	/* Executing is for --on-reboot restart alone. */
	CHECK(!listed(seccomp_lists[SECCOMP_VMM].calls, "execve"));
	CHECK(!listed(seccomp_lists[SECCOMP_VMM].calls, "execveat"));
	CHECK(listed(seccomp_restart_calls(), "execve"));
	CHECK(seccomp_list_size(SECCOMP_VCPU) < seccomp_list_size(SECCOMP_VMM));
	CHECK(seccomp_list_size(SECCOMP_IO) < seccomp_list_size(SECCOMP_VCPU));
}

/* In a child: the disk workers' list, a listed call, then socket(AF_INET). */
static void child_calls_outside(int errfd)
{
	char err[200];
	int fds[2];

	dup2(errfd, STDERR_FILENO);
	if (pipe(fds) < 0 || seccomp_init_process(SECCOMP_KILL, false, err, sizeof(err)) ||
	    seccomp_enter(SECCOMP_IO, err, sizeof(err)))
		_exit(10);
	char b = 'x';
	if (pwrite(fds[1], &b, 1, 0) >= 0 || errno != ESPIPE) /* listed: goes through */
		_exit(11);
	socket(AF_INET, SOCK_STREAM, 0);
	_exit(12); /* not reached: the filter ends the process */
}

/* Runs child_calls_outside in a child: its wait status, and what it wrote in out. */
static int run_child(char *out, size_t n)
{
	int p[2], st = -1;
	ssize_t r, got = 0;

	if (pipe(p) < 0)
		return -1;
	pid_t pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		close(p[0]);
		child_calls_outside(p[1]);
	}
	close(p[1]);
	while ((r = read(p[0], out + got, n - 1 - (size_t)got)) > 0)
		got += r;
	out[got] = 0;
	close(p[0]);
	if (waitpid(pid, &st, 0) != pid)
		return -1;
	if (!WIFSIGNALED(st) || WTERMSIG(st) != SIGSYS)
		fprintf(stderr, "child: status %#x, said: %s\n", st, out);
	return st;
}

TEST(seccomp_a_call_outside_the_list_ends_the_process_naming_it)
{
	char out[512];
	int st = run_child(out, sizeof(out));

	CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGSYS);
	CHECK(strstr(out, "seccomp: thread") != NULL);
	CHECK(strstr(out, "(io list) called socket (41) for address family 2") != NULL);
}
