/*
 * user:UID:r entries in a file's access ACL (vm_acl.h). Linux keeps the ACL in the
 * system.posix_acl_access xattr: a little-endian u32 version (2), then 8-byte entries
 * {u16 tag, u16 perm, u32 id} sorted by tag, then id. A file without the xattr has the
 * minimal ACL its mode says; with named entries a MASK is needed, and the group mode bits
 * show it. The xattr is the host's, but read as bounded input all the same.
 */
#include "daemon/vm_acl.h"

#include "core/le.h"
#include "core/util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#define ACL_XATTR "system.posix_acl_access"
#define ACL_VERSION 2u
#define ACL_HDR 4
#define ACL_ENT 8
#define ACL_MAX_BYTES 65536 /* XATTR_SIZE_MAX: no xattr value is larger */
#define ACL_MAX_ENTRIES ((ACL_MAX_BYTES - ACL_HDR) / ACL_ENT)
#define UNDEF_ID 0xffffffffu

enum {
	T_USER_OBJ = 0x01,
	T_USER = 0x02,
	T_GROUP_OBJ = 0x04,
	T_GROUP = 0x08,
	T_MASK = 0x10,
	T_OTHER = 0x20,
};

struct ace {
	uint16_t tag, perm;
	uint32_t id;
};

struct acl {
	struct ace e[ACL_MAX_ENTRIES + 2]; /* room for a USER and a MASK entry more */
	size_t n;
	bool stored; /* the xattr is there; else the ACL is the mode's */
};

/* The file, held open (O_PATH) so that every step is on the same one; the xattr calls
 * go through its /proc/self/fd link. */
struct file {
	int fd;
	char at[40];
	struct stat st;
};

static int file_open(const char *path, struct file *f)
{
	int r;

	if ((f->fd = open(path, O_PATH | O_CLOEXEC)) < 0)
		return -errno;
	if (fstat(f->fd, &f->st))
		r = -errno;
	else if (!S_ISREG(f->st.st_mode) && !S_ISBLK(f->st.st_mode))
		r = -EINVAL; /* an image is a regular file or a block device */
	else {
		snprintf(f->at, sizeof(f->at), "/proc/self/fd/%d", f->fd);
		return 0;
	}
	close(f->fd);
	f->fd = -1;
	return r;
}

/* Checks the xattr as the kernel would and more: version 2, whole entries, each known tag
 * in order, the one-of-a-kind ones once, named ids strictly increasing, a mask when there
 * are named entries. */
static int acl_parse(const uint8_t *b, size_t len, struct acl *a)
{
	unsigned int seen = 0, last_tag = 0;
	uint32_t last_id = 0;
	bool named = false;

	if (len < ACL_HDR + 3 * ACL_ENT || len > ACL_MAX_BYTES || (len - ACL_HDR) % ACL_ENT ||
	    le_get32(b) != ACL_VERSION)
		return -EINVAL;
	a->n = (len - ACL_HDR) / ACL_ENT;
	for (size_t i = 0; i < a->n; i++) {
		const uint8_t *p = b + ACL_HDR + i * ACL_ENT;
		struct ace *x = &a->e[i];
		x->tag = le_get16(p);
		x->perm = le_get16(p + 2);
		x->id = le_get32(p + 4);
		if (x->perm & ~7u || x->tag < last_tag)
			return -EINVAL;
		switch (x->tag) {
		case T_USER_OBJ:
		case T_GROUP_OBJ:
		case T_MASK:
		case T_OTHER:
			if (seen & x->tag)
				return -EINVAL;
			x->id = UNDEF_ID;
			break;
		case T_USER:
		case T_GROUP:
			if ((last_tag == x->tag && x->id <= last_id) || x->id == UNDEF_ID)
				return -EINVAL;
			named = true;
			break;
		default:
			return -EINVAL;
		}
		seen |= x->tag;
		last_tag = x->tag;
		last_id = x->id;
	}
	if (!(seen & T_USER_OBJ) || !(seen & T_GROUP_OBJ) || !(seen & T_OTHER) ||
	    (named && !(seen & T_MASK)))
		return -EINVAL;
	return 0;
}

/* The file's ACL: the xattr's, or the minimal one of its mode when it has none. */
static int acl_read(const char *path, const struct file *f, struct acl *a, char *err, size_t n)
{
	uint8_t *buf = malloc(ACL_MAX_BYTES);
	int r;

	if (!buf)
		return fail_msg(err, n, -ENOMEM, "out of memory");
	ssize_t got = getxattr(f->at, ACL_XATTR, buf, ACL_MAX_BYTES);
	if (got < 0) {
		r = -errno;
		free(buf);
		if (r == -ENODATA) {
			mode_t m = f->st.st_mode;
			a->e[0] = (struct ace){ T_USER_OBJ, (m >> 6) & 7, UNDEF_ID };
			a->e[1] = (struct ace){ T_GROUP_OBJ, (m >> 3) & 7, UNDEF_ID };
			a->e[2] = (struct ace){ T_OTHER, m & 7, UNDEF_ID };
			a->n = 3;
			a->stored = false;
			return 0;
		}
		if (r == -ERANGE || r == -E2BIG)
			return fail_msg(err, n, -EINVAL, "%s: its ACL is larger than %d bytes",
					path, ACL_MAX_BYTES);
		return fail_msg(err, n, r, "%s: %s", path, strerror(-r));
	}
	r = acl_parse(buf, (size_t)got, a);
	free(buf);
	a->stored = true;
	if (r)
		return fail_msg(err, n, r, "%s: its ACL (%zd bytes) is not one this reads", path,
				got);
	return 0;
}

static int acl_write(const char *path, const struct file *f, const struct acl *a, char *err,
		     size_t n)
{
	size_t len = ACL_HDR + a->n * ACL_ENT;
	uint8_t *buf;
	int r = 0;

	if (len > ACL_MAX_BYTES)
		return fail_msg(err, n, -E2BIG, "%s: its ACL would have too many entries", path);
	if (!(buf = malloc(len)))
		return fail_msg(err, n, -ENOMEM, "out of memory");
	le_put32(buf, ACL_VERSION);
	for (size_t i = 0; i < a->n; i++) {
		uint8_t *p = buf + ACL_HDR + i * ACL_ENT;
		le_put16(p, a->e[i].tag);
		le_put16(p + 2, a->e[i].perm);
		le_put32(p + 4, a->e[i].id);
	}
	if (setxattr(f->at, ACL_XATTR, buf, len, 0))
		r = fail_msg(err, n, -errno, "%s: %s", path, strerror(errno));
	free(buf);
	return r;
}

static struct ace *acl_find(struct acl *a, unsigned int tag, uint32_t id)
{
	for (size_t i = 0; i < a->n; i++)
		if (a->e[i].tag == tag && (a->e[i].id == id || id == UNDEF_ID))
			return &a->e[i];
	return NULL;
}

/* Entry x in at i, the ones from i on moved up. */
static void acl_insert(struct acl *a, size_t i, struct ace x)
{
	memmove(&a->e[i + 1], &a->e[i], (a->n - i) * sizeof(a->e[0]));
	a->e[i] = x;
	a->n++;
}

/* Opens path and reads its ACL into a fresh *a (freed by the caller, also on error). */
static int acl_load(const char *path, struct file *f, struct acl **a, char *err, size_t n)
{
	int r;

	*a = NULL;
	f->fd = -1;
	if ((r = file_open(path, f)))
		return fail_msg(err, n, r, "%s: %s", path,
				r == -EINVAL ? "not a regular file nor a block device" :
					       strerror(-r));
	if (!(*a = malloc(sizeof(**a))))
		return fail_msg(err, n, -ENOMEM, "out of memory");
	return acl_read(path, f, *a, err, n);
}

static void acl_done(struct file *f, struct acl *a)
{
	if (f->fd >= 0)
		close(f->fd);
	free(a);
}

int vmacl_lookup(const char *path, uid_t uid)
{
	struct file f;
	struct acl *a;
	int r = acl_load(path, &f, &a, NULL, 0);

	if (!r) {
		struct ace *u = a->stored ? acl_find(a, T_USER, (uint32_t)uid) : NULL;
		struct ace *m = u ? acl_find(a, T_MASK, UNDEF_ID) : NULL;
		r = !u ? -ENOENT : (int)(u->perm & (m ? m->perm : 7));
	}
	acl_done(&f, a);
	return r;
}

int vmacl_grant_read(const char *path, uid_t uid, char *err, size_t n)
{
	struct file f;
	struct acl *a;
	bool change = false;
	int r;

	if ((uint32_t)uid == UNDEF_ID)
		return fail_msg(err, n, -EINVAL, "uid %u is no user", (unsigned int)uid);
	if ((r = acl_load(path, &f, &a, err, n)))
		goto out;
	struct ace *u = acl_find(a, T_USER, (uint32_t)uid);
	if (u) {
		change = !(u->perm & 4);
		u->perm |= 4;
	} else {
		size_t i = 0;
		while (i < a->n && (a->e[i].tag < T_USER ||
				    (a->e[i].tag == T_USER && a->e[i].id < (uint32_t)uid)))
			i++;
		acl_insert(a, i, (struct ace){ T_USER, 4, (uint32_t)uid });
		change = true;
	}
	struct ace *m = acl_find(a, T_MASK, UNDEF_ID);
	if (m && !(m->perm & 4)) {
		/* Widened, it would give others read access too, and stay so after. */
		r = fail_msg(err, n, -EACCES,
			     "%s: its ACL's mask takes read access from every named entry; "
			     "ternd does not widen it",
			     path);
		goto out;
	}
	if (!m) {
		/* What the group class holds (as setfacl computes it), r included. */
		uint16_t perm = 4;
		size_t i = 0;
		for (; i < a->n && a->e[i].tag != T_OTHER; i++)
			if (a->e[i].tag == T_USER || a->e[i].tag == T_GROUP_OBJ ||
			    a->e[i].tag == T_GROUP)
				perm |= a->e[i].perm;
		acl_insert(a, i, (struct ace){ T_MASK, perm, UNDEF_ID });
	}
	if (change)
		r = acl_write(path, &f, a, err, n);
out:
	acl_done(&f, a);
	return r;
}

int vmacl_revoke(const char *path, uid_t uid)
{
	struct file f;
	struct acl *a;
	int r = acl_load(path, &f, &a, NULL, 0);
	struct ace *u = !r && a->stored ? acl_find(a, T_USER, (uint32_t)uid) : NULL;

	if (!u)
		goto out;
	size_t i = (size_t)(u - a->e);
	memmove(&a->e[i], &a->e[i + 1], (a->n - i - 1) * sizeof(a->e[0]));
	a->n--;
	bool named = acl_find(a, T_USER, UNDEF_ID) || acl_find(a, T_GROUP, UNDEF_ID);
	if (named) {
		r = acl_write(path, &f, a, NULL, 0);
		goto out;
	}
	/*
	 * Minimal again: USER_OBJ, GROUP_OBJ and OTHER written alone make the kernel set the
	 * mode from them and drop the xattr at once (no moment with the mask's group bits and
	 * no ACL); then whatever a file system kept goes, and the mode is made exact.
	 */
	uint16_t uo = acl_find(a, T_USER_OBJ, UNDEF_ID)->perm;
	uint16_t go = acl_find(a, T_GROUP_OBJ, UNDEF_ID)->perm;
	uint16_t oo = acl_find(a, T_OTHER, UNDEF_ID)->perm;
	a->e[0] = (struct ace){ T_USER_OBJ, uo, UNDEF_ID };
	a->e[1] = (struct ace){ T_GROUP_OBJ, go, UNDEF_ID };
	a->e[2] = (struct ace){ T_OTHER, oo, UNDEF_ID };
	a->n = 3;
	if ((r = acl_write(path, &f, a, NULL, 0)))
		goto out;
	if (removexattr(f.at, ACL_XATTR) && errno != ENODATA) {
		r = -errno;
		goto out;
	}
	if (chmod(f.at, (f.st.st_mode & 07000) | (mode_t)(uo << 6 | go << 3 | oo)))
		r = -errno;
out:
	acl_done(&f, a);
	return r == -ENOENT ? 0 : r;
}
