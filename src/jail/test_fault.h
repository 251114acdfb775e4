/*
 * Test-only fault hooks: what a guest that took over a tern-vmm thread would try, on
 * demand (TERN_TEST_FAULT), so that the tests can show the walls hold. Compiled in only
 * with TERN_TEST_HOOKS (make's default; the Debian package builds with TEST_HOOKS=0).
 */
#ifndef TERN_JAIL_TEST_FAULT_H
#define TERN_JAIL_TEST_FAULT_H

#ifdef TERN_TEST_HOOKS
/*
 * TERN_TEST_FAULT=vcpu-openat|vcpu-socket|vcpu-execve|vcpu-compat (i386's getpid through
 * int 0x80): vCPU 0 makes that call once its list is on (none of them is on it).
 * TERN_TEST_FAULT=jail-escape with TERN_TEST_FAULT_ARG="open=PATH,connect=PATH,ptrace=PID,
 * kill=PID" (any of them, each at most once): vCPU 0 tries each and logs how it ended, to
 * be run with --seccomp log so that only the jail stands in the way.
 */
void test_fault_vcpu(unsigned int vcpu_id);
/* TERN_TEST_FAULT=supervisor-socket: a jail's supervisor makes that call once filtered. */
void test_fault_supervisor(void);
#else
static inline void test_fault_vcpu(unsigned int vcpu_id)
{
	(void)vcpu_id;
}
static inline void test_fault_supervisor(void)
{
}
#endif

#endif
