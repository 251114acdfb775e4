/*
 * Test-only fault hooks: what a guest that took over a tern-vmm thread would try, on
 * demand (TERN_TEST_FAULT), so that the tests can show the walls hold. Compiled in only
 * with TERN_TEST_HOOKS (make's default; the Debian package builds with TEST_HOOKS=0).
 */
#ifndef TERN_JAIL_TEST_FAULT_H
#define TERN_JAIL_TEST_FAULT_H

#ifdef TERN_TEST_HOOKS
/* TERN_TEST_FAULT=vcpu-openat|vcpu-socket|vcpu-execve|vcpu-compat (i386's getpid through
 * int 0x80): vCPU 0 makes that call once its list is on (none of them is on it). */
void test_fault_vcpu(unsigned int vcpu_id);
#else
static inline void test_fault_vcpu(unsigned int vcpu_id)
{
	(void)vcpu_id;
}
#endif

#endif
