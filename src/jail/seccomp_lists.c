/*
 * What each kind of tern-vmm thread may call (docs/security.md says why, list by list).
 * Arguments are checked where a call would otherwise open a door: ioctl by the request's
 * type (KVM's, the block layer's, userfaultfd's) or by the exact request (TUN's, the
 * terminal's), socket by address family, clone by its flags.
 */
#include "jail/seccomp_lists.h"

#include <linux/fs.h>
#include <linux/if_tun.h>
#include <linux/kvm.h>
#include <linux/userfaultfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <termios.h>

/* A few names a line, grouped by what they serve. */
/* clang-format off */

/* Every thread: the C library's own needs (memory, locks, signals, time, logging). */
static const char *const common[] = {
	"read", "write", "writev", "close", "lseek", "fstat", "newfstatat",
	"mmap", "munmap", "mprotect", "madvise", "mremap", "brk",	/* malloc */
	"futex", "set_robust_list", "rseq",				/* locks, thread start */
	"rt_sigprocmask", "rt_sigreturn", "tgkill",			/* the vCPU kick */
	"clock_gettime", "clock_nanosleep", "nanosleep", "sched_yield", "restart_syscall",
	"gettid", "getpid", "getrandom", "prctl", "exit", "exit_group",
	NULL,
};

/*
 * vCPU threads: KVM_RUN, and the devices' work that an exit starts (a queue notify
 * without an ioeventfd, a device's activation or reset, the serial port's output).
 */
static const char *const vcpu[] = {
	"ioctl",							/* KVM's only */
	"pread64", "pwrite64", "preadv", "pwritev", "preadv2", "pwritev2", "readv",
	"fsync", "fdatasync", "fallocate", "io_uring_enter",		/* a disk request */
	"eventfd2", "epoll_ctl", "timerfd_settime",			/* a device's activation */
	"sendmsg", "sendto", "recvmsg", "recvfrom", "poll", "ppoll",	/* net and vsock */
	NULL,
};

/* Disk workers (aio=threads): the image's reads, writes, flushes and discards. */
static const char *const io[] = {
	"ioctl",							/* the block layer's only */
	"pread64", "pwrite64", "preadv", "pwritev", "preadv2", "pwritev2",
	"fsync", "fdatasync", "fallocate",
	NULL,
};

/*
 * The main thread: the event loop (API socket, backends, timers), snapshots and their
 * files, the migration and the threads it starts (which inherit this list).
 */
static const char *const vmm[] = {
	"ioctl",			/* KVM, TUN, terminal, block, userfaultfd, FICLONE */
	"pread64", "pwrite64", "preadv", "pwritev", "preadv2", "pwritev2", "readv",
	"fsync", "fdatasync", "fallocate", "ftruncate", "copy_file_range", "sendfile",
	"openat", "unlink", "unlinkat", "rename", "renameat", "renameat2", "readlink", "statx",
	"fcntl", "dup", "fchmod", "umask", "memfd_create", "pipe2", "fstatfs", /* files */
	"eventfd2", "epoll_create1", "epoll_ctl", "epoll_wait", "epoll_pwait", "poll", "ppoll",
	"timerfd_create", "timerfd_settime", "timerfd_gettime",		/* the loop */
	"io_uring_setup", "io_uring_enter", "io_uring_register",
	"socket", "socketpair", "bind", "listen", "accept", "accept4", "connect", "shutdown",
	"getsockopt", "setsockopt", "getsockname", "getpeername",
	"sendmsg", "sendto", "recvmsg", "recvfrom",			/* API, net, migration */
	"clone",							/* threads only */
	"userfaultfd",							/* post-copy */
	"rt_sigaction", "uname", "getuid", "geteuid", "getgid", "getegid", "sched_getaffinity",
	NULL,
};

/*
 * --on-reboot restart only: tern-vmm re-executes itself, and the new image starts under
 * the main thread's list (filters and no_new_privs outlive execve), so its loader and its
 * set-up must pass it too. An exec cannot widen anything: whatever runs keeps this list.
 */
static const char *const restart[] = {
	"execve", "execveat", "seccomp", "arch_prctl", "set_tid_address", "prlimit64",
	"access",
	NULL,
};

/*
 * The ASan+UBSan test build only: the leak checker stops the world at exit (a clone that
 * ptraces every thread, reading /proc), and the sanitizers' reports read /proc and the
 * binary. A release build never has these.
 */
static const char *const sanitizer[] = {
	"ptrace", "wait4", "kill", "getppid", "process_vm_readv", "sigaltstack", "rt_sigaction",
	"open", "openat", "stat", "access", "readlink", "getdents64", "pipe2", "dup2",
	"setrlimit", "getrlimit", "prlimit64", "sched_getaffinity", "getuid", "geteuid", "uname",
	NULL,
};

/* The request types (the byte _IOC_TYPE reads) whose every request a kind may use. */
static const unsigned int vcpu_ioctl_types[] = { KVMIO, 0 };
static const unsigned int io_ioctl_types[] = { 0x12 /* BLK*: discard, zero-out, size */, 0 };
static const unsigned int vmm_ioctl_types[] = { KVMIO, 0x12, UFFDIO /* post-copy */, 0 };

/*
 * Single requests of types that also hold dangerous ones: the terminal's type 'T' has
 * TIOCSTI (typing into the host's terminal), so only these, never the whole type.
 */
static const unsigned long vcpu_ioctls[] = {
	TUNSETOFFLOAD, /* virtio-net's features, set when the guest's driver starts it */
	0,
};
static const unsigned long vmm_ioctls[] = {
	TUNSETOFFLOAD, TUNSETVNETHDRSZ, TUNGETIFF,			/* a TAP NIC */
	TCGETS, TCSETS, TCSETSW, TCSETSF, TIOCGWINSZ, FIONBIO, FIONREAD,	/* the console */
	FICLONE,							/* disk copies */
	0,
};

/* clang-format on */

/* socket(): the API and vsock (Unix), migration and user-mode networking (IP). */
static const int vmm_families[] = { AF_UNIX, AF_INET, AF_INET6, -1 };
static const int no_families[] = { -1 };
static const unsigned long no_ioctls[] = { 0 };

const struct seccomp_list seccomp_lists[SECCOMP_THREAD_KINDS] = {
	[SECCOMP_VMM] = { "vmm", vmm, vmm_ioctl_types, vmm_ioctls, vmm_families },
	[SECCOMP_VCPU] = { "vcpu", vcpu, vcpu_ioctl_types, vcpu_ioctls, no_families },
	[SECCOMP_IO] = { "io", io, io_ioctl_types, no_ioctls, no_families },
};

const char *const *seccomp_common_calls(void)
{
	return common;
}

const char *const *seccomp_restart_calls(void)
{
	return restart;
}

const char *const *seccomp_sanitizer_calls(void)
{
	return sanitizer;
}
