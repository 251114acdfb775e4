/*
 * One thread kind's allow-list (seccomp_lists.c) turned into a BPF program with
 * libseccomp. tern-vmm's build runs it ahead of time (tools/seccomp_gen.c writes the
 * programs into a header) so that no VM pays for it at start-up; tern-vmm itself runs it
 * only for --seccomp log, whose programs differ in their default action.
 */
#ifndef TERN_JAIL_SECCOMP_FILTER_H
#define TERN_JAIL_SECCOMP_FILTER_H

#include <linux/filter.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "jail/seccomp.h"

/*
 * kind's program: action (SCMP_ACT_TRAP or SCMP_ACT_LOG) for every call not on the list;
 * restart adds what --on-reboot restart needs to the main thread's. out->filter is
 * malloc'd. 0, or -errno with err set.
 */
int seccomp_filter_build(enum seccomp_thread kind, uint32_t action, bool restart,
			 struct sock_fprog *out, char *err, size_t n);

#endif
