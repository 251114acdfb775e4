/*
 * ternd --vm-uids: every VM's tern-vmm runs jailed (tern-vmm --jail) under a uid of its
 * own, and the files it must write are handed to that uid while it runs and taken back
 * after: the sVirt promise in plain Unix terms (docs/security.md, "ternd's VMs").
 *
 * In the VM's directory (root's, 0700):
 *   uid     the VM's uid (its gid is the same number), kept while the VM is defined
 *   owners  {"uid": N, "files": [{"path", "uid", "gid", "mode": "0640"}]}: who owned each
 *           writable disk before it was handed over; written before the first chown, so
 *           that a ternd that dies meanwhile gives them back when it starts again
 *   vmm/    the VM's own (its uid's, 0700): sockets, status, saved state on their way
 */
#include "daemon/vm_jail.h"

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

/* Files tern-vmm only reads must be readable by the VM's uid as they are. */
static int check_readable(const char *what, const char *path, uid_t uid, char *err, size_t n)
{
	struct stat st;

	if (!path || stat(path, &st))
		return 0; /* tern-vmm's own open reports it */
	if (uid_may(&st, uid, 4))
		return 0;
	return fail_msg(err, n, -EACCES,
			"%s %s cannot be read by the VM's uid %u (ternd --vm-uids): make it "
			"readable by others (chmod o+r) or give it to that uid",
			what, path, (unsigned int)uid);
}

/*
 * The files below a disk (an overlay's base, a qcow2's backing chain) are shared with
 * other VMs (a clone's source): read by this VM's uid, never handed over to it.
 */
static int check_chain_readable(const struct vmdef_disk *k, uid_t uid, char *err, size_t n)
{
	char(*below)[DISK_CHAIN_PATH_MAX] = NULL;
	char why[320];
	int r = 0;

	if (k->format == DISK_FORMAT_RAW)
		return 0;
	if (!(below = calloc(QCOW2_CHAIN_MAX, sizeof(*below))))
		return fail_msg(err, n, -ENOMEM, "out of memory");
	/* A bad image is tern-vmm's own open's to report. */
	int nb = disk_chain(k->path, k->format, below, QCOW2_CHAIN_MAX, why, sizeof(why));
	for (int b = 0; !r && b < nb && b < QCOW2_CHAIN_MAX; b++)
		r = check_readable("backing file", below[b], uid, err, n);
	free(below);
	return r;
}

/* The owners file's records, or an empty array. */
static struct json_object *owners_read(const char *path, uid_t *uid)
{
	struct json_object *o = json_object_from_file(path), *a = NULL, *u;

	*uid = 0;
	if (o && json_object_object_get_ex(o, "uid", &u))
		*uid = (uid_t)json_object_get_int64(u);
	if (o && json_object_object_get_ex(o, "files", &a) &&
	    json_object_is_type(a, json_type_array))
		json_object_get(a);
	else
		a = json_object_new_array();
	json_object_put(o);
	return a;
}

static bool owners_has(struct json_object *files, const char *path)
{
	for (size_t i = 0; i < json_object_array_length(files); i++) {
		struct json_object *p;
		if (json_object_object_get_ex(json_object_array_get_idx(files, i), "path", &p) &&
		    !strcmp(json_object_get_string(p), path))
			return true;
	}
	return false;
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
	r = run_status_write_file(
		path, json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
								JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(o);
	return r;
}

/*
 * A migration's destination (incoming): a disk still held by the source's uid (mig_uid,
 * shared storage) is no conflict, and a disk that is not here yet (copy_storage) is made,
 * empty and the uid's, since the jailed tern-vmm cannot create it; recorded as "made", it
 * is removed again if the VM never arrives.
 */
static int give_disks(struct ternd *t, struct vm_entry *e, uid_t uid, bool incoming, char *err,
		      size_t n)
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
		else if (st.st_uid != uid && !owners_has(files, p))
			json_object_array_add(files, record(p, st.st_uid, st.st_gid, st.st_mode));
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
	for (unsigned int i = 0; i < e->def.ndisks; i++)
		if ((e->def.disks[i].readonly &&
		     (r = check_readable("read-only disk", e->def.disks[i].path, uid, err, n))) ||
		    (r = check_chain_readable(&e->def.disks[i], uid, err, n)))
			return r;
	if ((r = give_disks(t, e, uid, incoming, err, n)))
		vmjail_release(t, e, false);
	else
		e->jailed = true;
	return r;
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
		struct json_object *f = json_object_array_get_idx(files, i), *p, *u, *g, *m, *made;
		struct stat st;
		if (!json_object_object_get_ex(f, "path", &p) ||
		    !json_object_object_get_ex(f, "uid", &u) ||
		    !json_object_object_get_ex(f, "gid", &g) ||
		    !json_object_object_get_ex(f, "mode", &m))
			continue;
		const char *path = json_object_get_string(p);
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
		mode_t mode = (mode_t)strtoul(json_object_get_string(m), NULL, 8) & 07777;
		if (chown(path, (uid_t)json_object_get_int64(u), (gid_t)json_object_get_int64(g)) ||
		    chmod(path, mode)) {
			log_warn("%s: cannot give disk %s back to uid %lld: %s", e->def.name, path,
				 (long long)json_object_get_int64(u), strerror(errno));
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

static bool writable_disk(const struct vm_entry *e, const char *path)
{
	for (unsigned int i = 0; i < e->def.ndisks; i++)
		if (!e->def.disks[i].readonly && !strcmp(e->def.disks[i].path, path))
			return true;
	return false;
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
			if (!json_object_object_get_ex(f, "path", &p) ||
			    !json_object_object_get_ex(f, "uid", &u) ||
			    !json_object_object_get_ex(f, "gid", &g) ||
			    !json_object_object_get_ex(f, "mode", &m) ||
			    !json_object_is_type(p, json_type_string) ||
			    !json_object_is_type(u, json_type_int) ||
			    !json_object_is_type(g, json_type_int) ||
			    !json_object_is_type(m, json_type_string) ||
			    !writable_disk(e, json_object_get_string(p)) ||
			    owners_has(files, json_object_get_string(p)))
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
