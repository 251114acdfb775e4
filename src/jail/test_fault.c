/* Test-only fault hooks (test_fault.h). */
#include "jail/test_fault.h"

#ifdef TERN_TEST_HOOKS
#include "core/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

void test_fault_vcpu(unsigned int vcpu_id)
{
	const char *f = getenv("TERN_TEST_FAULT");
	int r = 0;

	if (!f || vcpu_id != 0)
		return;
	log_warn("test fault hook: vCPU 0 tries %s", f);
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
