/* Builds one kind's BPF program with libseccomp (seccomp_filter.h). */
#include "jail/seccomp_filter.h"

#include "core/util.h"
#include "jail/sanitizer.h"
#include "jail/seccomp_lists.h"

#include <errno.h>
#include <linux/sched.h>
#include <seccomp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

static int allow(scmp_filter_ctx ctx, const char *name, const struct seccomp_list *list)
{
	int nr = seccomp_syscall_resolve_name(name), r = 0;

	if (nr == __NR_SCMP_ERROR)
		return 0; /* not a call on this architecture */
	if (!strcmp(name, "ioctl")) {
		/* The kernel reads the request as 32 bits: so does the filter. */
		for (const unsigned int *t = list->ioctl_types; *t && !r; t++)
			r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 1,
					     SCMP_A1(SCMP_CMP_MASKED_EQ, 0xff00, *t << 8));
		for (const unsigned long *q = list->ioctls; *q && !r; q++)
			r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 1,
					     SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffff, *q));
		return r;
	}
	if (!strcmp(name, "socket") || !strcmp(name, "socketpair")) {
		for (const int *f = list->families; *f >= 0 && !r; f++) {
			if (nr == SCMP_SYS(socketpair) && *f != AF_UNIX)
				continue;
			r = seccomp_rule_add(
				ctx, SCMP_ACT_ALLOW, nr, 1,
				SCMP_A0(SCMP_CMP_MASKED_EQ, 0xffffffff, (scmp_datum_t)*f));
		}
		return r;
	}
#ifndef TERN_SANITIZER
	if (!strcmp(name, "clone")) /* threads only, never a new process */
		return seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 1,
					SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_THREAD, CLONE_THREAD));
#endif
	return seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 0);
}

static int add_all(scmp_filter_ctx ctx, const char *const *names, const struct seccomp_list *list)
{
	int r = 0;

	for (; *names && !r; names++)
		r = allow(ctx, *names, list);
	return r;
}

int seccomp_filter_build(enum seccomp_thread kind, uint32_t action, bool restart,
			 struct sock_fprog *out, char *err, size_t n)
{
	const struct seccomp_list *list = &seccomp_lists[kind];
	scmp_filter_ctx ctx = seccomp_init(action);
	int r, fd = -1;
	off_t len = 0;

	out->filter = NULL;
	out->len = 0;
	if (!ctx)
		return fail_msg(err, n, -ENOMEM, "seccomp_init failed");
	/* A call made as another architecture (int 0x80) is refused, and named, like any. */
	r = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, action);
	if (!r)
		r = add_all(ctx, seccomp_common_calls(), list);
	if (!r)
		r = add_all(ctx, list->calls, list);
	if (!r && kind == SECCOMP_VMM && restart)
		r = add_all(ctx, seccomp_restart_calls(), list);
#ifdef TERN_SANITIZER
	if (!r)
		r = add_all(ctx, seccomp_sanitizer_calls(), list);
#endif
	/* glibc tries clone3 first and falls back to clone, whose flags can be checked. */
	if (!r)
		r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
	/* libseccomp 2.5 writes the program to a file descriptor: a memfd, read back. */
	if (!r && (fd = memfd_create("tern-seccomp", MFD_CLOEXEC)) < 0)
		r = -errno;
	if (!r)
		r = seccomp_export_bpf(ctx, fd);
	if (!r)
		len = lseek(fd, 0, SEEK_END);
	if (!r && (len <= 0 || len % (off_t)sizeof(struct sock_filter) ||
		   len / (off_t)sizeof(struct sock_filter) > BPF_MAXINSNS))
		r = -E2BIG;
	if (!r && !(out->filter = malloc((size_t)len)))
		r = -ENOMEM;
	if (!r && pread(fd, out->filter, (size_t)len, 0) != len)
		r = -EIO;
	out->len = (unsigned short)(len / (off_t)sizeof(struct sock_filter));
	if (fd >= 0)
		close(fd);
	seccomp_release(ctx);
	if (r) {
		free(out->filter);
		out->filter = NULL;
		return fail_msg(err, n, r, "cannot build the %s thread's seccomp filter: %s",
				list->name, strerror(-r));
	}
	return 0;
}
