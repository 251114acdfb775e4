/* The allow-lists themselves (seccomp_lists.c); seccomp.c turns them into filters. */
#ifndef TERN_JAIL_SECCOMP_LISTS_H
#define TERN_JAIL_SECCOMP_LISTS_H

#include "jail/seccomp.h"

struct seccomp_list {
	const char *name;
	const char *const *calls;	 /* NULL-terminated, beside the common ones */
	const unsigned int *ioctl_types; /* 0-terminated: the request types ioctl may use */
	const unsigned long *ioctls;	 /* 0-terminated: single requests beside those */
	const int *families;		 /* -1-terminated: socket()'s address families */
};

extern const struct seccomp_list seccomp_lists[SECCOMP_THREAD_KINDS];

/* What every thread may call (the C library's needs). */
const char *const *seccomp_common_calls(void);

/* What --on-reboot restart adds to the main thread's list. */
const char *const *seccomp_restart_calls(void);

/* What the sanitizer build's runtime adds to the main thread's list. */
const char *const *seccomp_sanitizer_calls(void);

#endif
