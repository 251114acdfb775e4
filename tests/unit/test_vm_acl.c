/*
 * ternd's ACL entries for a jailed VM's backing files (daemon/vm_acl.c): granted and taken
 * back to the exact mode, others' entries kept, the uid really reading, bad ACLs refused.
 */
#include "daemon/vm_acl.h"
#include "tmpfile.h"
#include "unit.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#define ACL "system.posix_acl_access"
#define U1 4100001u
#define U2 4100002u
#define UNDEF 0xffffffffu

/*
 * vm_acl.c's xattr calls land here (this binary's definitions come before libc's): a
 * value the kernel would never store can be fed to it, and its writes are counted.
 */
static const uint8_t *fake;
static size_t fake_len;
static int writes;

ssize_t getxattr(const char *path, const char *name, void *value, size_t size)
{
	if (fake && !strcmp(name, ACL)) {
		if (fake_len > size) {
			errno = ERANGE;
			return -1;
		}
		memcpy(value, fake, fake_len);
		return (ssize_t)fake_len;
	}
	return syscall(SYS_getxattr, path, name, value, size);
}

int setxattr(const char *path, const char *name, const void *value, size_t size, int flags)
{
	writes++;
	return (int)syscall(SYS_setxattr, path, name, value, size, flags);
}

int removexattr(const char *path, const char *name)
{
	writes++;
	return (int)syscall(SYS_removexattr, path, name);
}

struct ent {
	unsigned int tag, perm, id;
};

static void put(uint8_t *p, uint32_t v, int bytes)
{
	for (int i = 0; i < bytes; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* The xattr value of n entries. */
static size_t encode(uint8_t *buf, const struct ent *e, size_t n)
{
	put(buf, 2, 4);
	for (size_t i = 0; i < n; i++) {
		put(buf + 4 + 8 * i, e[i].tag, 2);
		put(buf + 6 + 8 * i, e[i].perm, 2);
		put(buf + 8 + 8 * i, e[i].id, 4);
	}
	return 4 + 8 * n;
}

/* The file's xattr, decoded into e (up to max): how many entries; -1 when none. */
static int decode(const char *path, struct ent *e, int max)
{
	uint8_t buf[1024];
	ssize_t got = syscall(SYS_getxattr, path, ACL, buf, sizeof(buf));

	if (got < 4)
		return -1;
	int n = (int)(got - 4) / 8;
	for (int i = 0; i < n && i < max; i++) {
		const uint8_t *p = buf + 4 + 8 * i;
		e[i].tag = p[0] | p[1] << 8;
		e[i].perm = p[2] | p[3] << 8;
		e[i].id = (unsigned int)(p[4] | p[5] << 8 | p[6] << 16 | (uint32_t)p[7] << 24);
	}
	return n;
}

/* uid's own entry's perm in the file's ACL, or -1. */
static int user_perm(const char *path, unsigned int uid)
{
	struct ent e[32];
	int n = decode(path, e, 32);

	for (int i = 0; i < n && i < 32; i++)
		if (e[i].tag == 2 && e[i].id == uid)
			return (int)e[i].perm;
	return -1;
}

static bool has_xattr(const char *path)
{
	return syscall(SYS_getxattr, path, ACL, NULL, 0) >= 0 || errno != ENODATA;
}

static mode_t mode_of(const char *path)
{
	struct stat st;

	return stat(path, &st) ? (mode_t)-1 : st.st_mode & 07777;
}

/* A root file of mode in a directory others may pass through. */
static bool make_file(struct tmp *t, mode_t mode)
{
	if (!tmp_make(t, "base.img"))
		return false;
	int fd = open(t->path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	bool ok = fd >= 0 && write(fd, "base", 4) == 4;
	if (fd >= 0)
		close(fd);
	return ok && !chmod(t->dir, 0711) && !chmod(t->path, mode);
}

/* Whether uid (gid the same, no other groups) can open path read-only: 1, 0, or -1. */
static int uid_reads(const char *path, uid_t uid)
{
	pid_t pid = fork();
	int status;

	if (pid == 0) {
		if (setgroups(0, NULL) || setresgid(uid, uid, uid) || setresuid(uid, uid, uid))
			_exit(3);
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		_exit(fd >= 0 ? 0 : errno == EACCES ? 1 : 2);
	}
	if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
		return -1;
	return WEXITSTATUS(status) == 0 ? 1 : WEXITSTATUS(status) == 1 ? 0 : -1;
}

TEST(vm_acl_grant_revoke_exact_mode)
{
	char err[256];

	for (int k = 0; k < 2; k++) {
		mode_t mode = k ? 0600 : 0640;
		struct tmp t;
		REQUIRE(make_file(&t, mode));
		CHECK(vmacl_lookup(t.path, U1) == -ENOENT);
		CHECK(vmacl_grant_read(t.path, U1, err, sizeof(err)) == 0);
		CHECK(user_perm(t.path, U1) == 4);
		CHECK(vmacl_lookup(t.path, U1) == 4);
		/* The group bits show the mask (r); owner and others as they were. */
		CHECK(mode_of(t.path) == ((mode & 0707) | 0040));
		CHECK(vmacl_grant_read(t.path, U1, err, sizeof(err)) == 0); /* again: the same */
		CHECK(user_perm(t.path, U1) == 4);
		CHECK(vmacl_revoke(t.path, U1) == 0);
		CHECK(!has_xattr(t.path));
		CHECK(mode_of(t.path) == mode);
		CHECK(vmacl_revoke(t.path, U1) == 0); /* nothing left to take off */
		CHECK(mode_of(t.path) == mode);
		tmp_remove(&t);
	}
}

TEST(vm_acl_two_uids_either_order)
{
	char err[256];

	for (int k = 0; k < 2; k++) {
		struct tmp t;
		REQUIRE(make_file(&t, 0640));
		/* Granted in one order, the entries sorted all the same. */
		CHECK(vmacl_grant_read(t.path, k ? U2 : U1, err, sizeof(err)) == 0);
		CHECK(vmacl_grant_read(t.path, k ? U1 : U2, err, sizeof(err)) == 0);
		struct ent e[8];
		int n = decode(t.path, e, 8);
		CHECK(n == 6 && e[1].tag == 2 && e[1].id == U1 && e[2].tag == 2 && e[2].id == U2);
		CHECK(user_perm(t.path, U1) == 4 && user_perm(t.path, U2) == 4);
		uid_t first = k ? U2 : U1, second = k ? U1 : U2;
		CHECK(vmacl_revoke(t.path, first) == 0);
		CHECK(user_perm(t.path, first) == -1 && user_perm(t.path, second) == 4);
		CHECK(mode_of(t.path) == 0640);
		CHECK(vmacl_revoke(t.path, second) == 0);
		CHECK(!has_xattr(t.path));
		CHECK(mode_of(t.path) == 0640);
		tmp_remove(&t);
	}
}

TEST(vm_acl_keeps_other_entries)
{
	struct tmp t;
	char err[256];
	uint8_t before[256], after[256];
	const struct ent e[] = {
		{ 0x01, 6, UNDEF }, { 0x02, 6, 4242 },	{ 0x04, 4, UNDEF },
		{ 0x08, 5, 4343 },  { 0x10, 7, UNDEF }, { 0x20, 0, UNDEF },
	};
	size_t len = encode(before, e, 6);

	REQUIRE(make_file(&t, 0640));
	REQUIRE(syscall(SYS_setxattr, t.path, ACL, before, len, 0) == 0);
	mode_t mode = mode_of(t.path); /* 0670: the mask's rwx as the group bits */
	CHECK(vmacl_grant_read(t.path, U1, err, sizeof(err)) == 0);
	struct ent got[8];
	int n = decode(t.path, got, 8);
	CHECK(n == 7 && got[1].id == 4242 && got[1].perm == 6 && got[2].id == U1 &&
	      got[2].perm == 4 && got[4].tag == 0x08 && got[4].id == 4343 && got[4].perm == 5);
	CHECK(vmacl_revoke(t.path, U1) == 0);
	/* Exactly the ACL it had, and the mode. */
	CHECK(syscall(SYS_getxattr, t.path, ACL, after, sizeof(after)) == (long)len &&
	      !memcmp(before, after, len));
	CHECK(mode_of(t.path) == mode);
	/* A mask without r is not widened (bob would read too): refused, nothing written. */
	const struct ent narrow[] = {
		{ 0x01, 6, UNDEF }, { 0x02, 6, 4242 },	{ 0x04, 4, UNDEF },
		{ 0x10, 2, UNDEF }, { 0x20, 0, UNDEF },
	};
	len = encode(before, narrow, 5);
	REQUIRE(syscall(SYS_setxattr, t.path, ACL, before, len, 0) == 0);
	writes = 0;
	CHECK(vmacl_grant_read(t.path, U1, err, sizeof(err)) == -EACCES && writes == 0);
	CHECK(syscall(SYS_getxattr, t.path, ACL, after, sizeof(after)) == (long)len &&
	      !memcmp(before, after, len));
	tmp_remove(&t);
}

TEST(vm_acl_uid_really_reads)
{
	struct tmp t;
	char err[256];

	if (geteuid() != 0) {
		printf("  (not root: the read as another uid is not tried)\n");
		return;
	}
	REQUIRE(make_file(&t, 0640));
	CHECK(uid_reads(t.path, U1) == 0);
	CHECK(vmacl_grant_read(t.path, U1, err, sizeof(err)) == 0);
	CHECK(uid_reads(t.path, U1) == 1);
	CHECK(uid_reads(t.path, U2) == 0); /* only that uid */
	CHECK(vmacl_revoke(t.path, U1) == 0);
	CHECK(uid_reads(t.path, U1) == 0);
	tmp_remove(&t);
}

TEST(vm_acl_bad_xattr_refused)
{
	struct tmp t;
	char err[256];
	uint8_t buf[512];
	const struct ent good[] = { { 0x01, 6, UNDEF }, { 0x04, 4, UNDEF }, { 0x20, 0, UNDEF } };
	const struct ent unsorted[] = {
		{ 0x01, 6, UNDEF }, { 0x02, 4, 9 },	{ 0x02, 4, 8 },
		{ 0x04, 4, UNDEF }, { 0x10, 4, UNDEF }, { 0x20, 0, UNDEF }
	};
	const struct ent twice[] = {
		{ 0x01, 6, UNDEF }, { 0x04, 4, UNDEF }, { 0x04, 4, UNDEF }, { 0x20, 0, UNDEF }
	};
	const struct ent no_mask[] = {
		{ 0x01, 6, UNDEF }, { 0x02, 4, 9 }, { 0x04, 4, UNDEF }, { 0x20, 0, UNDEF }
	};
	const struct ent bad_tag[] = {
		{ 0x01, 6, UNDEF }, { 0x04, 4, UNDEF }, { 0x40, 4, 1 }, { 0x20, 0, UNDEF }
	};
	const struct ent bad_perm[] = { { 0x01, 6, UNDEF },
					{ 0x04, 0x14, UNDEF },
					{ 0x20, 0, UNDEF } };

	REQUIRE(make_file(&t, 0640));
	for (int k = 0; k < 9; k++) {
		size_t len = encode(buf, good, 3);
		switch (k) {
		case 0:
			put(buf, 1, 4); /* wrong version */
			break;
		case 1:
			len -= 3; /* not whole entries */
			break;
		case 2:
			len = 4 + 8 * 2; /* too few entries */
			break;
		case 3:
			len = encode(buf, unsorted, 6);
			break;
		case 4:
			len = encode(buf, twice, 4);
			break;
		case 5:
			len = encode(buf, no_mask, 4);
			break;
		case 6:
			len = encode(buf, bad_tag, 4);
			break;
		case 7:
			len = encode(buf, bad_perm, 3);
			break;
		case 8:
			len = 2; /* shorter than the header */
			break;
		}
		fake = buf;
		fake_len = len;
		writes = 0;
		err[0] = 0;
		CHECK(vmacl_grant_read(t.path, U1, err, sizeof(err)) == -EINVAL);
		CHECK(strstr(err, t.path) != NULL);
		CHECK(vmacl_revoke(t.path, U1) == -EINVAL);
		CHECK(vmacl_lookup(t.path, U1) == -EINVAL);
		CHECK(writes == 0);
		fake = NULL;
		CHECK(!has_xattr(t.path) && mode_of(t.path) == 0640);
	}
	/* Larger than any xattr value: refused too. */
	static uint8_t huge[70000];
	fake = huge;
	fake_len = sizeof(huge);
	writes = 0;
	CHECK(vmacl_grant_read(t.path, U1, err, sizeof(err)) == -EINVAL);
	CHECK(writes == 0);
	fake = NULL;
	/* And the good one is taken. */
	CHECK(vmacl_grant_read(t.path, U1, err, sizeof(err)) == 0 && writes == 1);
	CHECK(vmacl_revoke(t.path, U1) == 0 && !has_xattr(t.path) && mode_of(t.path) == 0640);
	tmp_remove(&t);
}

TEST(vm_acl_not_a_file)
{
	char err[256];

	CHECK(vmacl_grant_read("/nonexistent/tern-acl", U1, err, sizeof(err)) == -ENOENT);
	CHECK(vmacl_revoke("/nonexistent/tern-acl", U1) == 0);
	CHECK(vmacl_grant_read("/tmp", U1, err, sizeof(err)) == -EINVAL);
}
