/*
 * ternd --vm-uids: every VM's tern-vmm runs jailed (tern-vmm --jail) under a uid of its
 * own, and the files it must write are handed to that uid while it runs and taken back
 * after: the sVirt promise in plain Unix terms (docs/security.md, "ternd's VMs").
 *
 * In the VM's directory (root's, 0700):
 *   uid     the VM's uid (its gid is the same number), kept while the VM is defined
 *   owners  {"uid": N, "files": [{"path", "uid", "gid", "mode": "0640"}]}: who owned each
 *           writable disk before it was handed over; and {"path", "acl_uid": N} for each
 *           backing file given an ACL entry user:N:r for the run (vm_acl.c); written
 *           before the first chown or ACL entry, so that a ternd that dies meanwhile gives
 *           them back (takes them off) when it starts again
 *   vmm/    the VM's own (its uid's, 0700): sockets, status, saved state on their way
 */
#include "daemon/vm_jail.h"
#include "daemon/vm_acl.h"

#include "api/json_in.h"
#include "backend/disk_chain.h"
#include "backend/qcow2.h"

#include "core/log.h"
#include "core/util.h"
#include "monitor/run_status.h"

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Whether uid, not in group 0 nor in any supplementary group, may read (want 4) or
 * read and write (6) the file st describes; ACLs aside (the open in the jail decides). */
static bool uid_may(const struct stat *st, uid_t uid, unsigned int want)
{
	unsigned int bits = st->st_uid == uid ? (st->st_mode >> 6) & 7 :
			    st->st_gid == uid ? (st->st_mode >> 3) & 7 :
						st->st_mode & 7;
	return (bits & want) == want;
}

static uid_t read_uid_file(const char *path)
{
	char buf[32] = "";
	unsigned long long v;
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	ssize_t got = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;

	if (fd >= 0)
		close(fd);
	if (got <= 0 || sscanf(buf, "%llu", &v) != 1 || v == 0 || v >= 4294967295ULL)
		return 0;
	return (uid_t)v;
}

void vmjail_load(struct ternd *t, struct vm_entry *e)
{
	char path[4200];

	e->jail_uid = read_uid_file(ternd_vm_dir(t, e, "uid", path, sizeof(path)));
	/* The owners file is there from a jailed start until that run's end. */
	e->jailed = e->jail_uid && ternd_is_active(e) &&
		    !access(ternd_vm_dir(t, e, "owners", path, sizeof(path)), F_OK);
}

bool vmjail_in_range(const struct ternd *t, uid_t uid)
{
	return t->uid_count && uid >= t->uid_first && uid - t->uid_first < t->uid_count;
}

/* The VM's uid: the one it had if still in range and no other VM's, else the lowest free. */
static int pick_uid(struct ternd *t, struct vm_entry *e, char *err, size_t n)
{
	uid_t want = e->jail_uid, got = 0;
	char path[4200], text[32];

	pthread_mutex_lock(&t->lock);
	for (unsigned int k = 0; !got && k <= t->uid_count; k++) {
		uid_t u = k == 0 ? want : t->uid_first + (k - 1);
		bool taken = !vmjail_in_range(t, u);
		for (struct vm_entry *o = t->vms; !taken && o; o = o->next)
			taken = o != e && o->jail_uid == u;
		if (!taken)
			got = u;
	}
	if (got)
		e->jail_uid = got;
	pthread_mutex_unlock(&t->lock);
	if (!got)
		return fail_msg(err, n, -EBUSY,
				"every uid of ternd --vm-uids %u-%u is some VM's: define fewer VMs "
				"or give ternd a larger range",
				(unsigned int)t->uid_first,
				(unsigned int)(t->uid_first + t->uid_count - 1));
	if (got != want) {
		snprintf(text, sizeof(text), "%u\n", (unsigned int)got);
		int r = run_status_write_file(ternd_vm_dir(t, e, "uid", path, sizeof(path)), text);
		if (r)
			return fail_msg(err, n, r, "%s: %s", path, strerror(-r));
	}
	return 0;
}

/* DIR/vmm, made if missing, owned by uid (0: root) and 0700. */
static int make_vmm_dir(struct ternd *t, struct vm_entry *e, uid_t uid, char *err, size_t n)
{
	char dir[4200];
	struct stat st;

	ternd_vm_dir(t, e, "vmm", dir, sizeof(dir));
	if (mkdir(dir, 0700) && errno != EEXIST)
		return fail_msg(err, n, -errno, "%s: %s", dir, strerror(errno));
	if (lstat(dir, &st) || !S_ISDIR(st.st_mode))
		return fail_msg(err, n, -ENOTDIR, "%s is not a directory", dir);
	if (lchown(dir, uid, uid) || chmod(dir, 0700))
		return fail_msg(err, n, -errno, "%s: %s", dir, strerror(errno));
	return 0;
}

/* What a refusal of a file the VM only reads says; why, when given, after it. */
static int unreadable(const char *what, const char *path, uid_t uid, const char *why, char *err,
		      size_t n)
{
	return fail_msg(err, n, -EACCES,
			"%s %s cannot be read by the VM's uid %u (ternd --vm-uids): make it "
			"readable by others (chmod o+r) or give it to that uid%s%s",
			what, path, (unsigned int)uid, why ? ": " : "", why ? why : "");
}

/* Files tern-vmm only reads must be readable by the VM's uid as they are. */
static int check_readable(const char *what, const char *path, uid_t uid, char *err, size_t n)
{
	struct stat st;

	if (!path || stat(path, &st))
		return 0; /* tern-vmm's own open reports it */
	if (uid_may(&st, uid, 4))
		return 0;
	return unreadable(what, path, uid, NULL, err, n);
}

/* The files below disk k, top first (*below: calloc'd, the caller frees it): how many. */
/* Whether a and b, both there, are in the same directory (symlinks resolved). */
static bool same_dir(const char *a, const char *b)
{
	char *ra = realpath(a, NULL), *rb = realpath(b, NULL);
	char *sa = ra ? strrchr(ra, '/') : NULL, *sb = rb ? strrchr(rb, '/') : NULL;
	bool same = sa && sb && sa - ra == sb - rb && !strncmp(ra, rb, (size_t)(sa - ra));

	free(ra);
	free(rb);
	return same;
}

/*
 * Whether ternd may give the VM's uid read access by ACL to the backing file path (st)
 * below its disk top. The top is the VM's own while it runs, so the name of the file below
 * it is the VM's to write: ternd gives read access only to a regular file in the top's own
 * directory (where a clone's base is) that no VM of the range holds and that is no other
 * VM's disk. 0 when it may; 1 when it is a writable disk of this VM (handed over anyway);
 * else -EACCES with why.
 */
static int may_share(struct ternd *t, struct vm_entry *e, const char *top, const char *path,
		     const struct stat *st, const char **why)
{
	int r = 0;

	*why = "ternd gives read access (an ACL entry) only to a regular file in the disk's "
	       "own directory that is no other VM's disk";
	if (!S_ISREG(st->st_mode) || vmjail_in_range(t, st->st_uid) || !same_dir(top, path))
		return -EACCES;
	pthread_mutex_lock(&t->lock);
	for (struct vm_entry *o = t->vms; !r && o; o = o->next)
		for (unsigned int i = 0; !r && i < o->def.ndisks; i++) {
			struct stat ds;
			if (!o->def.disks[i].path || stat(o->def.disks[i].path, &ds) ||
			    ds.st_dev != st->st_dev || ds.st_ino != st->st_ino)
				continue;
			r = o == e && !o->def.disks[i].readonly ? 1 : o == e ? 0 : -EACCES;
		}
	pthread_mutex_unlock(&t->lock);
	return r;
}

static bool strings_have(struct json_object *a, const char *s)
{
	for (size_t i = 0; i < json_object_array_length(a); i++)
		if (!strcmp(json_object_get_string(json_object_array_get_idx(a, i)), s))
			return true;
	return false;
}

/*
 * The files below a disk (an overlay's base, a qcow2's backing chain) are shared with
 * other VMs (a clone's source): never handed over to this VM's uid, but read by it. One it
 * cannot read as it is gets an ACL entry user:UID:r for the run (vm_acl.c): its path goes
 * into grants, given by give_disks once recorded. A file system without ACLs, or a file
 * that may_share() rules out: refused as before.
 */
static int chain_grants(struct ternd *t, struct vm_entry *e, const struct vmdef_disk *k, uid_t uid,
			struct json_object *grants, char *err, size_t n)
{
	char(*below)[DISK_CHAIN_PATH_MAX];
	int nb = disk_chain_list(k->path, k->format, &below), r = 0;

	if (nb == -ENOMEM)
		return fail_msg(err, n, -ENOMEM, "out of memory");
	for (int b = 0; !r && b < nb; b++) {
		const char *p = below[b], *why = NULL;
		struct stat st;
		if (stat(p, &st) || uid_may(&st, uid, 4))
			continue; /* missing: tern-vmm's own open reports it */
		int has = vmacl_lookup(p, uid);
		if (has >= 0 && (has & 4))
			continue; /* an entry ternd did not make now (a migration's source's) */
		if (has >= 0)
			r = unreadable("backing file", p, uid, "an ACL entry denies it", err, n);
		else if (has != -ENOENT)
			r = unreadable("backing file", p, uid,
				       has == -EOPNOTSUPP ? NULL : "its ACL cannot be read", err,
				       n);
		else if ((r = may_share(t, e, k->path, p, &st, &why)) < 0)
			r = unreadable("backing file", p, uid, why, err, n);
		else if (r == 0 && !strings_have(grants, p))
			json_object_array_add(grants, json_object_new_string(p));
		r = r < 0 ? r : 0;
	}
	free(below);
	return r;
}

/* The owners file's records, or an empty array. */
static struct json_object *owners_read(const char *path, uid_t *uid)
{
	struct json_object *o = json_object_from_file(path), *a = jin_array_or_empty(o, "files"),
			   *u;

	*uid = 0;
	if (o && json_object_object_get_ex(o, "uid", &u))
		*uid = (uid_t)json_object_get_int64(u);
	json_object_put(o);
	return a;
}

/* A record's acl_uid: 0 unless a uid (1 to 2^32 - 2). */
static uid_t acl_uid_of(struct json_object *u)
{
	int64_t v = json_object_is_type(u, json_type_int) ? json_object_get_int64(u) : 0;

	return v > 0 && v < 4294967295LL ? (uid_t)v : 0;
}

/* Whether files has a record of path: a disk's (acl_uid 0), or uid acl_uid's ACL entry. */
static bool owners_has(struct json_object *files, const char *path, uid_t acl_uid)
{
	for (size_t i = 0; i < json_object_array_length(files); i++) {
		struct json_object *f = json_object_array_get_idx(files, i), *p, *a;
		bool acl = json_object_object_get_ex(f, "acl_uid", &a);
		if (json_object_object_get_ex(f, "path", &p) &&
		    !strcmp(json_object_get_string(p), path) && acl == (acl_uid != 0) &&
		    (!acl || acl_uid_of(a) == acl_uid))
			return true;
	}
	return false;
}

/* An ACL entry's record: {"path", "acl_uid"}. */
static struct json_object *acl_record(const char *path, uid_t uid)
{
	struct json_object *f = json_object_new_object();

	json_object_object_add(f, "path", json_object_new_string(path));
	json_object_object_add(f, "acl_uid", json_object_new_int64(uid));
	return f;
}

static struct json_object *record(const char *path, uid_t uid, gid_t gid, mode_t mode)
{
	struct json_object *f = json_object_new_object();
	char text[8];

	snprintf(text, sizeof(text), "%04o", (unsigned int)(mode & 07777));
	json_object_object_add(f, "path", json_object_new_string(path));
	json_object_object_add(f, "uid", json_object_new_int64(uid));
	json_object_object_add(f, "gid", json_object_new_int64(gid));
	json_object_object_add(f, "mode", json_object_new_string(text));
	return f;
}

static int owners_write(const char *path, uid_t uid, struct json_object *files)
{
	struct json_object *o = json_object_new_object();
	int r;

	json_object_object_add(o, "uid", json_object_new_int64(uid));
	json_object_object_add(o, "files", json_object_get(files));
	r = ternd_write_json(path, o);
	json_object_put(o);
	return r;
}

/*
 * A migration's destination (incoming): a disk still held by the source's uid (mig_uid,
 * shared storage) is no conflict, and a disk that is not here yet (copy_storage) is made,
 * empty and the uid's, since the jailed tern-vmm cannot create it; recorded as "made", it
 * is removed again if the VM never arrives.
 */
static int give_disks(struct ternd *t, struct vm_entry *e, uid_t uid, bool incoming,
		      struct json_object *grants, char *err, size_t n)
{
	char opath[4200];
	uid_t was;
	struct json_object *files =
		owners_read(ternd_vm_dir(t, e, "owners", opath, sizeof(opath)), &was);
	struct stat st;
	int r = 0;

	/* First every record, then the chowns: a crash between them leaves nothing unrecorded. */
	for (unsigned int i = 0; !r && i < e->def.ndisks; i++) {
		const char *p = e->def.disks[i].path;
		if (!e->def.disks[i].readonly && incoming && stat(p, &st) && errno == ENOENT) {
			struct json_object *f = record(p, 0, 0, 0600);
			json_object_object_add(f, "made", json_object_new_boolean(true));
			json_object_array_add(files, f);
			continue;
		}
		if (e->def.disks[i].readonly || stat(p, &st))
			continue;
		if (st.st_uid != uid && vmjail_in_range(t, st.st_uid) &&
		    !(incoming && st.st_uid == e->mig_uid))
			r = fail_msg(err, n, -EBUSY,
				     "disk %s belongs to uid %u, another VM's (ternd --vm-uids): "
				     "a disk is written by one VM at a time",
				     p, (unsigned int)st.st_uid);
		else if (st.st_uid != uid && !owners_has(files, p, 0))
			json_object_array_add(files, record(p, st.st_uid, st.st_gid, st.st_mode));
	}
	for (size_t i = 0; !r && i < json_object_array_length(grants); i++) {
		const char *p = json_object_get_string(json_object_array_get_idx(grants, i));
		if (!owners_has(files, p, uid))
			json_object_array_add(files, acl_record(p, uid));
	}
	if (!r && (r = owners_write(opath, uid, files)))
		fail_msg(err, n, r, "%s: %s", opath, strerror(-r));
	for (unsigned int i = 0; !r && i < e->def.ndisks; i++) {
		const char *p = e->def.disks[i].path;
		if (!e->def.disks[i].readonly && incoming && stat(p, &st) && errno == ENOENT) {
			int fd =
				open(p, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
			if (fd < 0 || fchown(fd, uid, uid))
				r = fail_msg(err, n, -errno, "'copy_storage': cannot make %s: %s",
					     p, strerror(errno));
			if (fd >= 0)
				close(fd);
			continue;
		}
		if (e->def.disks[i].readonly || stat(p, &st))
			continue;
		if (chown(p, uid, uid) || chmod(p, (st.st_mode & 07777) | S_IRUSR | S_IWUSR))
			r = fail_msg(err, n, -errno, "cannot give disk %s to the VM's uid %u: %s",
				     p, (unsigned int)uid, strerror(errno));
	}
	for (size_t i = 0; !r && i < json_object_array_length(grants); i++) {
		const char *p = json_object_get_string(json_object_array_get_idx(grants, i));
		char why[320];
		if ((r = vmacl_grant_read(p, uid, why, sizeof(why))))
			r = unreadable("backing file", p, uid, r == -EOPNOTSUPP ? NULL : why, err,
				       n);
	}
	json_object_put(files);
	return r;
}

int vmjail_prepare(struct ternd *t, struct vm_entry *e, const char *restore_state,
		   const char *restore_mem, bool incoming, char *err, size_t n)
{
	int r;

	e->jailed = false;
	if (!t->uid_count)
		return make_vmm_dir(t, e, 0, err, n);
	/* A VM new here that comes from a jailed source keeps its uid when it is free. */
	if (incoming && !vmjail_in_range(t, e->jail_uid) && vmjail_in_range(t, e->mig_uid))
		e->jail_uid = e->mig_uid;
	if ((r = pick_uid(t, e, err, n)))
		return r;
	uid_t uid = e->jail_uid;
	if ((r = make_vmm_dir(t, e, uid, err, n)))
		return r;
	/* The saved state is ternd's, in its directories; this run's uid reads it. */
	const char *restore[] = { restore_state, restore_mem };
	for (unsigned int i = 0; i < 2; i++) {
		struct stat st;
		if (restore[i] && !lstat(restore[i], &st) && S_ISREG(st.st_mode) &&
		    lchown(restore[i], uid, uid))
			return fail_msg(err, n, -errno, "%s: %s", restore[i], strerror(errno));
	}
	/* A destination's tern-vmm takes the machine from the stream, not from the kernel. */
	if (!incoming && ((r = check_readable("kernel", e->def.kernel, uid, err, n)) ||
			  (r = check_readable("initrd", e->def.initrd, uid, err, n))))
		return r;
	struct json_object *grants = json_object_new_array();
	for (unsigned int i = 0; !r && i < e->def.ndisks; i++)
		if (!e->def.disks[i].readonly ||
		    !(r = check_readable("read-only disk", e->def.disks[i].path, uid, err, n)))
			r = chain_grants(t, e, &e->def.disks[i], uid, grants, err, n);
	if (!r && (r = give_disks(t, e, uid, incoming, grants, err, n)))
		vmjail_release(t, e, false);
	else if (!r)
		e->jailed = true;
	json_object_put(grants);
	return r;
}

/* A disk's record (not an ACL entry's): its path and who owned it before. false if it is none. */
static bool owner_record(struct json_object *f, const char **path, uid_t *uid, gid_t *gid,
			 mode_t *mode)
{
	struct json_object *p, *u, *g, *m;

	if (json_object_object_get_ex(f, "acl_uid", &u) ||
	    !json_object_object_get_ex(f, "path", &p) || !json_object_object_get_ex(f, "uid", &u) ||
	    !json_object_object_get_ex(f, "gid", &g) || !json_object_object_get_ex(f, "mode", &m))
		return false;
	*path = json_object_get_string(p);
	*uid = (uid_t)json_object_get_int64(u);
	*gid = (gid_t)json_object_get_int64(g);
	*mode = (mode_t)strtoul(json_object_get_string(m), NULL, 8) & 07777;
	return true;
}

void vmjail_release(struct ternd *t, struct vm_entry *e, bool moved)
{
	char opath[4200];
	uid_t uid;
	struct json_object *files =
		owners_read(ternd_vm_dir(t, e, "owners", opath, sizeof(opath)), &uid);
	bool all = true;

	/* Migrated: the disks are the destination's now, and the records went with the VM. */
	for (size_t i = 0; !moved && i < json_object_array_length(files); i++) {
		struct json_object *f = json_object_array_get_idx(files, i), *p, *u, *made;
		struct stat st;
		/* An ACL entry on a file it read: that uid's entry goes, anyone else's stays. */
		if (json_object_object_get_ex(f, "acl_uid", &u)) {
			uid_t au = acl_uid_of(u);
			int r = json_object_object_get_ex(f, "path", &p) && au ?
					vmacl_revoke(json_object_get_string(p), au) :
					0;
			if (r && r != -EOPNOTSUPP) {
				log_warn("%s: cannot take uid %u's ACL entry off %s: %s",
					 e->def.name, (unsigned int)au, json_object_get_string(p),
					 strerror(-r));
				all = false;
			}
			continue;
		}
		const char *path;
		uid_t ou;
		gid_t og;
		mode_t mode;
		if (!owner_record(f, &path, &ou, &og, &mode))
			continue;
		/* Made for a migration that never arrived: the partial copy goes. */
		if (json_object_object_get_ex(f, "made", &made) && json_object_get_boolean(made)) {
			if (!lstat(path, &st) && S_ISREG(st.st_mode) && st.st_uid == uid &&
			    unlink(path) == 0)
				log_info("%s: removed the partial copy %s", e->def.name, path);
			continue;
		}
		/* Given to someone else meanwhile (by hand): theirs now. */
		if (stat(path, &st) || st.st_uid != uid)
			continue;
		if (chown(path, ou, og) || chmod(path, mode)) {
			log_warn("%s: cannot give disk %s back to uid %u: %s", e->def.name, path,
				 (unsigned int)ou, strerror(errno));
			all = false;
		}
	}
	json_object_put(files);
	if (all)
		unlink(opath);
}

void vmjail_release_stale(struct ternd *t)
{
	for (struct vm_entry *e = t->vms; e; e = e->next)
		if (!ternd_is_active(e))
			vmjail_release(t, e, !strcmp(e->reason, "migrated"));
}

struct json_object *vmjail_records(struct ternd *t, struct vm_entry *e, uid_t *uid)
{
	char opath[4200];

	return owners_read(ternd_vm_dir(t, e, "owners", opath, sizeof(opath)), uid);
}

bool vmjail_owner(struct ternd *t, struct vm_entry *e, const char *path, uid_t *uid, gid_t *gid,
		  mode_t *mode)
{
	uid_t lent;
	struct json_object *files = vmjail_records(t, e, &lent);
	bool found = false;

	for (size_t i = 0; !found && i < json_object_array_length(files); i++) {
		const char *p;
		uid_t u;
		gid_t g;
		mode_t m;
		if ((found = owner_record(json_object_array_get_idx(files, i), &p, &u, &g, &m) &&
			     !strcmp(p, path))) {
			*uid = u;
			*gid = g;
			*mode = m;
		}
	}
	json_object_put(files);
	return found;
}

static bool writable_disk(const struct vm_entry *e, const char *path)
{
	for (unsigned int i = 0; i < e->def.ndisks; i++)
		if (!e->def.disks[i].readonly && !strcmp(e->def.disks[i].path, path))
			return true;
	return false;
}

/* Whether path is below one of e's disks. */
static bool below_disk(const struct vm_entry *e, const char *path)
{
	bool found = false;

	for (unsigned int i = 0; !found && i < e->def.ndisks; i++) {
		char(*below)[DISK_CHAIN_PATH_MAX];
		int nb = disk_chain_list(e->def.disks[i].path, e->def.disks[i].format, &below);
		for (int b = 0; !found && b < nb; b++)
			found = !strcmp(below[b], path);
		free(below);
	}
	return found;
}

/*
 * An ACL entry's record f into files: this host's own as it is; a migration's source's
 * (shared storage: the VM runs on here, and the source leaves its entry for this host to
 * take off) only for the source's uid and a file below one of the VM's disks.
 */
static void acl_taken(const struct vm_entry *e, struct json_object *files, struct json_object *f,
		      bool from_source)
{
	struct json_object *p, *u;

	if (!json_object_object_get_ex(f, "path", &p) ||
	    !json_object_object_get_ex(f, "acl_uid", &u) ||
	    !json_object_is_type(p, json_type_string))
		return;
	const char *path = json_object_get_string(p);
	uid_t uid = acl_uid_of(u);
	if (!uid || (from_source && (uid != e->mig_uid || !below_disk(e, path))) ||
	    owners_has(files, path, uid))
		return;
	json_object_array_add(files, acl_record(path, uid));
}

void vmjail_arrived(struct ternd *t, struct vm_entry *e)
{
	char opath[4200];
	uid_t uid;
	struct json_object *mine =
		owners_read(ternd_vm_dir(t, e, "owners", opath, sizeof(opath)), &uid);
	struct json_object *src = e->mig_owners ? json_tokener_parse(e->mig_owners) : NULL;
	struct json_object *files = json_object_new_array();
	int r;

	if (!json_object_is_type(src, json_type_array)) {
		json_object_put(src);
		src = json_object_new_array();
	}
	/* Who owned each disk before any run held it: the source's record (it held it first),
	 * else this host's; nothing is "made" any more. The source names this VM's writable
	 * disks only: a record of any other path is not taken. */
	for (int pass = 0; pass < 2; pass++) {
		struct json_object *from = pass ? mine : src;
		for (size_t i = 0; i < json_object_array_length(from); i++) {
			struct json_object *f = json_object_array_get_idx(from, i), *p, *u, *g, *m;
			if (json_object_object_get_ex(f, "acl_uid", &u)) {
				acl_taken(e, files, f, !pass);
				continue;
			}
			if (!json_object_object_get_ex(f, "path", &p) ||
			    !json_object_object_get_ex(f, "uid", &u) ||
			    !json_object_object_get_ex(f, "gid", &g) ||
			    !json_object_object_get_ex(f, "mode", &m) ||
			    !json_object_is_type(p, json_type_string) ||
			    !json_object_is_type(u, json_type_int) ||
			    !json_object_is_type(g, json_type_int) ||
			    !json_object_is_type(m, json_type_string) ||
			    !writable_disk(e, json_object_get_string(p)) ||
			    owners_has(files, json_object_get_string(p), 0))
				continue;
			struct json_object *c = json_object_new_object();
			json_object_object_foreach(f, key, val)
			{
				if (strcmp(key, "made"))
					json_object_object_add(c, key, json_object_get(val));
			}
			json_object_array_add(files, c);
		}
	}
	/* Unjailed here, the disks stay the source's uid's until this run ends. */
	if (!e->jailed)
		uid = e->mig_uid;
	if (uid && json_object_array_length(files) && (r = owners_write(opath, uid, files)))
		log_warn("%s: cannot record its disks' owners: %s", e->def.name, strerror(-r));
	json_object_put(files);
	json_object_put(mine);
	json_object_put(src);
}

pid_t vmjail_vmm_pid(const struct vm_entry *e, pid_t pid)
{
	char path[64], buf[64] = "";
	int fd;
	long v;

	if (!e->jailed || pid <= 0)
		return pid;
	snprintf(path, sizeof(path), "/proc/%d/task/%d/children", pid, pid);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return pid;
	ssize_t got = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	return got > 0 && sscanf(buf, "%ld", &v) == 1 && v > 0 ? (pid_t)v : pid;
}

int vmjail_take_file(struct ternd *t, struct vm_entry *e, const char *name, const char *to,
		     char *err, size_t n)
{
	char from[4200];
	struct stat st;

	ternd_vmm_path(t, e, name, from, sizeof(from));
	if (lstat(from, &st))
		return fail_msg(err, n, -errno, "%s: %s", from, strerror(errno));
	if (!S_ISREG(st.st_mode)) {
		unlink(from);
		return fail_msg(err, n, -EIO, "%s is not a regular file: tern-vmm did not write it",
				from);
	}
	/* rename moves the name, never what a symlink would point to; and once in ternd's
	 * directory the file is root's, out of the VM's reach. */
	if (rename(from, to) || lchown(to, 0, 0))
		return fail_msg(err, n, -errno, "%s: %s", to, strerror(errno));
	return 0;
}
