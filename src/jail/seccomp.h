/*
 * seccomp allow-lists, one per kind of thread in tern-vmm (docs/security.md).
 *
 * Each thread installs its own list on itself, once its set-up is over: a vCPU thread
 * before its first KVM_RUN, a disk worker before its first request, the main thread (the
 * event loop, which also serves the API) once the VM runs. Threads the event loop starts
 * later (migration, throttle) inherit its list. A call outside the list kills the whole
 * process after one log line naming the call and the thread (SECCOMP_KILL), or is let
 * through and logged by the kernel (SECCOMP_LOG: dmesg, audit type 1326).
 */
#ifndef TERN_JAIL_SECCOMP_H
#define TERN_JAIL_SECCOMP_H

#include <stdbool.h>
#include <stddef.h>

enum seccomp_mode {
	SECCOMP_KILL, /* the default */
	SECCOMP_LOG,
	SECCOMP_OFF,
};

enum seccomp_thread {
	SECCOMP_VMM,  /* the main thread: event loop, API, devices' backends, snapshots */
	SECCOMP_VCPU, /* KVM_RUN and the exits it hands to the devices */
	SECCOMP_IO,   /* disk workers: reads, writes, flushes of the images */
	SECCOMP_THREAD_KINDS
};

/* "kill", "log", "off" -> mode; -1 if none of them. */
int seccomp_mode_parse(const char *s);
const char *seccomp_mode_name(enum seccomp_mode mode);

/*
 * Once, in the main thread before any other thread starts: the mode, whether the main
 * thread's list lets tern-vmm re-execute itself (--on-reboot restart), and the SIGSYS
 * handler that names a refused call. 0, or -errno with err set.
 */
int seccomp_init_process(enum seccomp_mode mode, bool restart, char *err, size_t n);

/*
 * Just before --on-reboot restart re-executes tern-vmm: filters outlive execve, so the new
 * image starts under the main thread's list and keeps it rather than stacking another.
 */
void seccomp_before_restart(void);

/* The calling thread's list. 0 (also when the mode is off), or -errno with err set. */
int seccomp_enter(enum seccomp_thread kind, char *err, size_t n);

/* As seccomp_enter, but a failure ends the process: a thread must never run unfiltered. */
void seccomp_enter_or_die(enum seccomp_thread kind);

/* How many calls each kind allows (for `tern info` and the docs). */
unsigned int seccomp_list_size(enum seccomp_thread kind);

#endif
