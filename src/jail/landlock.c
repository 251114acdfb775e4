/* Landlock rules for the jail's paths (landlock.h). */
#include "jail/landlock.h"
#include "core/util.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/landlock.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef LANDLOCK_ACCESS_FS_REFER
#define LANDLOCK_ACCESS_FS_REFER (1ULL << 13)
#endif
#ifndef LANDLOCK_ACCESS_FS_TRUNCATE
#define LANDLOCK_ACCESS_FS_TRUNCATE (1ULL << 14)
#endif

#define FS_READ (LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_READ_DIR)
#define FS_WRITE (LANDLOCK_ACCESS_FS_WRITE_FILE | LANDLOCK_ACCESS_FS_TRUNCATE)
/* What a file (not a directory) may be given; Landlock refuses the directory-only rights. */
#define FS_FILE_RIGHTS                                                \
	(LANDLOCK_ACCESS_FS_EXECUTE | LANDLOCK_ACCESS_FS_WRITE_FILE | \
	 LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_TRUNCATE)

/* Every right the kernel's Landlock knows, by ABI version: all of them are handled. */
static uint64_t handled_for(int abi)
{
	uint64_t all = (LANDLOCK_ACCESS_FS_MAKE_SYM << 1) - 1; /* ABI 1: bits 0..12 */

	if (abi >= 2)
		all |= LANDLOCK_ACCESS_FS_REFER;
	if (abi >= 3)
		all |= LANDLOCK_ACCESS_FS_TRUNCATE;
	return all;
}

static uint64_t rights_for(enum jail_kind kind, uint64_t handled)
{
	uint64_t r = 0;

	switch (kind) {
	case JAIL_READ:
		r = FS_READ;
		break;
	case JAIL_EXEC:
		r = FS_READ | LANDLOCK_ACCESS_FS_EXECUTE;
		break;
	case JAIL_WRITE:
	case JAIL_DEVICE:
		r = FS_READ | FS_WRITE;
		break;
	case JAIL_DIR: /* everything but executing, and devices, FIFOs, links made there */
		r = handled & ~(LANDLOCK_ACCESS_FS_EXECUTE | LANDLOCK_ACCESS_FS_MAKE_CHAR |
				LANDLOCK_ACCESS_FS_MAKE_BLOCK | LANDLOCK_ACCESS_FS_MAKE_FIFO |
				LANDLOCK_ACCESS_FS_MAKE_SYM);
		break;
	}
	return r & handled;
}

static int add_rule(int ruleset, const char *path, uint64_t rights, char *err, size_t n)
{
	int fd = open(path, O_PATH | O_CLOEXEC);
	struct landlock_path_beneath_attr pb = { .allowed_access = rights };
	struct stat st;

	if (fd < 0) {
		if (errno == ENOENT)
			return 0; /* not in the jail: nothing to allow */
		return fail_msg(err, n, -errno, "landlock: cannot open '%s': %s", path,
				strerror(errno));
	}
	if (fstat(fd, &st) == 0 && !S_ISDIR(st.st_mode))
		pb.allowed_access &= FS_FILE_RIGHTS;
	pb.parent_fd = fd;
	if (syscall(SYS_landlock_add_rule, ruleset, LANDLOCK_RULE_PATH_BENEATH, &pb, 0)) {
		int e = errno;
		close(fd);
		return fail_msg(err, n, -e, "landlock: cannot allow '%s': %s", path, strerror(e));
	}
	close(fd);
	return 0;
}

int landlock_restrict(const struct jail_entries *s, char *err, size_t n)
{
	int abi =
		(int)syscall(SYS_landlock_create_ruleset, NULL, 0, LANDLOCK_CREATE_RULESET_VERSION);
	int r = 0;

	if (abi < 0)
		return errno == ENOSYS || errno == EOPNOTSUPP ?
			       -EOPNOTSUPP :
			       fail_msg(err, n, -errno, "landlock: %s", strerror(errno));
	struct landlock_ruleset_attr attr = { .handled_access_fs = handled_for(abi) };
	int rs = (int)syscall(SYS_landlock_create_ruleset, &attr, sizeof(attr), 0);
	if (rs < 0)
		return fail_msg(err, n, -errno, "landlock: cannot make a ruleset: %s",
				strerror(errno));
	for (unsigned int i = 0; !r && i < s->n; i++)
		r = add_rule(rs, s->e[i].path, rights_for(s->e[i].kind, attr.handled_access_fs),
			     err, n);
	/* Its own /proc: thread names, /proc/self/exe to restart, the sanitizers' maps. */
	if (!r)
		r = add_rule(rs, "/proc", (FS_READ | FS_WRITE) & attr.handled_access_fs, err, n);
	if (!r && syscall(SYS_landlock_restrict_self, rs, 0))
		r = fail_msg(err, n, -errno, "landlock: cannot restrict: %s", strerror(errno));
	close(rs);
	return r ? r : abi;
}
