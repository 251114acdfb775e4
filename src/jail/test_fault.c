/* Test-only fault hooks (test_fault.h). */
#include "jail/test_fault.h"

#ifdef TERN_TEST_HOOKS
#include "core/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <stdio.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static void log_try(const char *what, const char *target, int r)
{
	log_warn("test fault hook: %s %s: %s", what, target, r < 0 ? strerror(errno) : "ok");
}

/* Reaching out of the jail to another VM: its disk, its API socket, its process. */
static void jail_escape(void)
{
	const char *arg = getenv("TERN_TEST_FAULT_ARG");
	char spec[512], *save = NULL;

	snprintf(spec, sizeof(spec), "%s", arg ? arg : "");
	for (char *kv = strtok_r(spec, ",", &save); kv; kv = strtok_r(NULL, ",", &save)) {
		char *v = strchr(kv, '=');
		int r = -1;
		if (!v)
			continue;
		*v++ = 0;
		if (!strcmp(kv, "open")) {
			r = open(v, O_RDWR | O_CLOEXEC);
		} else if (!strcmp(kv, "connect")) {
			struct sockaddr_un a = { .sun_family = AF_UNIX };
			snprintf(a.sun_path, sizeof(a.sun_path), "%s", v);
			int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
			r = s < 0 ? -1 : connect(s, (struct sockaddr *)&a, sizeof(a));
			if (s >= 0) {
				int e = errno;
				close(s);
				errno = e;
			}
		} else if (!strcmp(kv, "ptrace")) {
			r = (int)ptrace(PTRACE_ATTACH, (pid_t)atoi(v), NULL, NULL);
		} else if (!strcmp(kv, "kill")) {
			r = kill((pid_t)atoi(v), 0);
		} else {
			continue;
		}
		log_try(kv, v, r);
		if (r >= 0 && !strcmp(kv, "open"))
			close(r);
	}
}

void test_fault_supervisor(void)
{
	const char *f = getenv("TERN_TEST_FAULT");

	/* On no list of the supervisor's, the sanitizers' (which have openat) included. */
	if (f && !strcmp(f, "supervisor-socket")) {
		int r = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (r >= 0)
			close(r);
	}
}

void test_fault_vcpu(unsigned int vcpu_id)
{
	const char *f = getenv("TERN_TEST_FAULT");
	int r = 0;

	if (!f || vcpu_id != 0 || !strncmp(f, "supervisor-", 11))
		return;
	log_warn("test fault hook: vCPU 0 tries %s", f);
	if (!strcmp(f, "jail-escape")) {
		jail_escape();
		return;
	}
	if (!strcmp(f, "vcpu-openat"))
		r = openat(AT_FDCWD, "/etc/hostname", O_RDONLY | O_CLOEXEC);
	else if (!strcmp(f, "vcpu-socket"))
		r = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	else if (!strcmp(f, "vcpu-execve"))
		r = execl("/bin/true", "true", (char *)NULL);
	else if (!strcmp(f, "vcpu-compat")) { /* i386's getpid, through int 0x80 */
		long ret = 20;
		__asm__ volatile("int $0x80" : "+a"(ret) : : "memory");
		r = (int)ret;
	} else
		return;
	/* Reached only when the filter let the call through (--seccomp log or off). */
	log_warn("test fault hook: %s returned %d (%s)", f, r, r < 0 ? strerror(errno) : "ok");
	if (r >= 0 && strcmp(f, "vcpu-execve"))
		close(r);
}
#else
/* ISO C wants something in a translation unit. */
typedef int test_fault_disabled;
#endif
