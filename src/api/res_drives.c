/* /drives/{drive_id}: virtio-blk disks (Firecracker's Drive). */
#include "api/api.h"
#include "api/http.h"
#include "api/json_in.h"
#include "backend/disk_chain.h"
#include "backend/image_fds.h"
#include "vmm/disk_resize.h"
#include "vmm/disk_swap.h"
#include "vmm/vm.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define PATH_LEN_MAX 4095

static const char *const put_keys[] = {
	"drive_id",   "path_on_host", "is_root_device", "partuuid", "is_read_only",
	"cache_type", "rate_limiter", "io_engine",	"socket",   "tern_format",
	NULL
};
static const char *const patch_keys[] = { "drive_id",  "path_on_host", "rate_limiter",
					  "tern_size", "tern_format",  NULL };
/* In enum disk_format's order. */
static const char *const formats[] = { "Raw", "Overlay", "Qcow2", "Auto", NULL };

/* Can the drive open path as it would (for writing unless read-only)? 0, or a 400. */
static int openable(const char *path, bool readonly, char *err, size_t n)
{
	struct stat st;

	if (image_fds_has(path))
		return 0; /* handed in open (PUT /files), checked then */
	int fd = open(path, (readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC);

	if (fd < 0)
		return api_fail(err, n, "'path_on_host': cannot open '%s'%s: %s", path,
				readonly ? "" : " for writing", strerror(errno));
	int r = fstat(fd, &st);
	close(fd);
	if (r < 0 || !(S_ISREG(st.st_mode) || S_ISBLK(st.st_mode)))
		return api_fail(err, n, "'path_on_host': '%s' is not a file or block device", path);
	return 0;
}

/* Checked now, so that a wrong path is a 400 here rather than a failed InstanceStart. */
static int usable(const char *path, bool readonly, enum disk_format format, char *err, size_t n)
{
	char why[256];
	int r;

	if ((r = openable(path, readonly, err, n)))
		return r;
	/* Said to be qcow2 (not probed): a file without the header would fail at start. */
	enum disk_format found;
	if (format == DISK_FORMAT_QCOW2 && !disk_probe_path(path, &found) &&
	    found != DISK_FORMAT_QCOW2)
		return api_fail(err, n, "'path_on_host': '%s' is not a qcow2 image ('tern_format')",
				path);
	if (disk_chain(path, format, NULL, 0, why, sizeof(why)) < 0)
		return api_fail(err, n, "'path_on_host': '%s': %s", path, why);
	return 0;
}

/* The drive's io_engine can serve format: 0, or a 400. */
static int engine_fits(enum disk_engine engine, enum disk_format format, char *err, size_t n)
{
	if ((format == DISK_FORMAT_OVERLAY || format == DISK_FORMAT_QCOW2) &&
	    engine == DISK_ENGINE_IO_URING)
		return api_fail(err, n,
				"'io_engine' Async (io_uring) serves raw images only; "
				"'tern_format' %s needs Sync",
				formats[format]);
	return 0;
}

static int check_id(const char *id, struct json_object *o, char *err, size_t n)
{
	const char *body_id;
	int r = jin_string(o, "drive_id", 4096, &body_id, err, n);

	if (r < 0)
		return r;
	if (!r)
		return api_fail(err, n, "'drive_id' is required");
	if (strcmp(body_id, id))
		return api_fail(err, n, "'drive_id' (\"%.64s\") differs from the path's id",
				body_id);
	/* The id is the disk's virtio-blk serial (GET_ID), which holds 20 bytes. */
	if (!*id || strlen(id) > DISK_ID_MAX)
		return api_fail(err, n, "'drive_id' must be 1 to %d bytes", DISK_ID_MAX);
	return 0;
}

static int put(struct api *a, const char *id, struct json_object *o, char *err, size_t n)
{
	static const char *const caches[] = { "Unsafe", "Writeback", NULL };
	static const char *const engines[] = { "Sync", "Async", NULL };
	struct disk_config d = { .cache = DISK_CACHE_WRITEBACK,
				 .engine = DISK_ENGINE_AUTO,
				 .format = DISK_FORMAT_AUTO };
	const char *path, *partuuid = NULL;
	unsigned int idx;
	int r, at = config_drive_index(&a->cfg, id);

	if ((r = api_not_implemented(o, "socket", "a drive (vhost-user-blk)", err, n)) ||
	    (r = api_not_implemented(o, "rate_limiter", "a drive", err, n)))
		return r;
	if ((r = jin_string(o, "path_on_host", PATH_LEN_MAX, &path, err, n)) < 0)
		return r;
	if (!r || !*path)
		return api_fail(err, n, "'path_on_host' is required (a file or block device)");
	if ((r = jin_bool(o, "is_root_device", &d.root, err, n)) < 0)
		return r;
	if (!r)
		return api_fail(err, n, "'is_root_device' is required (true or false)");
	if ((r = jin_bool(o, "is_read_only", &d.readonly, err, n)) < 0)
		return r;
	if ((r = jin_string(o, "partuuid", DISK_PARTUUID_MAX, &partuuid, err, n)) < 0)
		return r;
	/* Unsafe and Writeback both offer FLUSH: tern never drops one (docs/api.md). */
	if ((r = jin_enum(o, "cache_type", caches, &idx, err, n)) < 0)
		return r;
	if ((r = jin_enum(o, "io_engine", engines, &idx, err, n)) < 0)
		return r;
	if (r)
		d.engine = idx == 0 ? DISK_ENGINE_THREADS : DISK_ENGINE_IO_URING;
	if ((r = jin_enum(o, "tern_format", formats, &idx, err, n)) < 0)
		return r;
	if (r)
		d.format = (enum disk_format)idx;
	if ((r = engine_fits(d.engine, d.format, err, n)))
		return r;
	for (unsigned int i = 0; i < a->cfg.ndisks; i++)
		if (d.root && a->cfg.disks[i].root && (int)i != at)
			return api_fail(err, n, "drive '%s' is already the root device",
					a->cfg.disks[i].id);
	if (at < 0 && a->cfg.ndisks == VMM_MAX_DISKS)
		return api_fail(err, n, "at most %d drives", VMM_MAX_DISKS);
	if ((r = usable(path, d.readonly, d.format, err, n)))
		return r;
	d.path = strdup(path);
	if (!d.path)
		return api_fail(err, n, "out of memory");
	strcpy(d.id, id);
	if (partuuid)
		strcpy(d.partuuid, partuuid);
	if (at < 0) {
		at = (int)a->cfg.ndisks++;
	} else {
		free(a->cfg.disks[at].path);
	}
	a->cfg.disks[at] = d;
	return 0;
}

/* Do a and b name the same file (the same inode, however they are spelt)? */
static bool same_file(const char *a, const char *b)
{
	struct stat sa, sb;

	return !strcmp(a, b) ||
	       (!stat(a, &sa) && !stat(b, &sb) && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino);
}

static int patch(struct api *a, const char *id, struct json_object *o, char *err, size_t n)
{
	const char *path;
	int r, at = config_drive_index(&a->cfg, id);

	if ((r = jin_only(o, patch_keys, "PATCH /drives", err, n)))
		return r;
	if ((r = api_not_implemented(o, "rate_limiter", "a drive", err, n)))
		return r;
	if (at < 0)
		return api_fail(err, n, "no drive '%s' (PUT /drives/%s first)", id, id);
	uint64_t size = 0;
	int has_path, has_size;
	if ((has_path = jin_string(o, "path_on_host", PATH_LEN_MAX, &path, err, n)) < 0)
		return has_path;
	if ((has_size = jin_u64(o, "tern_size", 512, VM_DISK_SIZE_MAX, &size, err, n)) < 0)
		return has_size;
	unsigned int fi;
	int has_format = jin_enum(o, "tern_format", formats, &fi, err, n);
	if (has_format < 0)
		return has_format;
	struct disk_config *d = &a->cfg.disks[at];
	if (a->started) {
		if (!a->vm)
			return api_fail(err, n, "the VM is not running: its drives do not change");
		/*
		 * The drive's own file, which may have grown (Firecracker's way to resize a
		 * running VM's drive), or tern_size (tern grows it); another file is a swap.
		 */
		if (has_path && (has_format || !same_file(path, d->path))) {
			if (has_size)
				return api_fail(err, n,
						"'tern_size' grows the drive's own image: swap "
						"to '%s' first, then grow it",
						path);
			enum disk_format f = has_format ? (enum disk_format)fi : d->format;
			/*
			 * A file that is not there is refused before the guest is paused; its
			 * chain is read by the swap (it may hold the drive's image, which this
			 * process's lock keeps from a check's second open).
			 */
			if ((r = openable(path, d->readonly, err, n)))
				return r;
			r = vm_disk_swap(a->vm, (unsigned int)at, path, f, err, n);
			/* The VM's configuration took the new path and format. */
			*d = a->vm->cfg.disks[at];
			return r;
		}
		if (has_format)
			return api_fail(err, n,
					"'tern_format' goes with the 'path_on_host' of the image "
					"the drive moves to");
		if (!has_path && !has_size)
			return 0; /* nothing to change, as Firecracker */
		return vm_disk_grow(a->vm, (unsigned int)at, size, err, n);
	}
	if (has_size)
		return api_fail(err, n,
				"'tern_size' grows a running VM's drive; before boot, grow the "
				"image itself (truncate, tern img resize)");
	/* Before boot tern_format changes how the drive's image (new or not) is opened. */
	enum disk_format f = has_format ? (enum disk_format)fi : d->format;
	if ((r = engine_fits(d->engine, f, err, n)))
		return r;
	if (!has_path && !has_format)
		return 0;
	if ((r = usable(has_path ? path : d->path, d->readonly, f, err, n)))
		return r;
	d->format = f;
	if (!has_path)
		return 0;
	char *p = strdup(path);
	if (!p)
		return api_fail(err, n, "out of memory");
	free(d->path);
	d->path = p;
	return 0;
}

int res_drive(struct api *a, const char *id, struct json_object *o, bool is_patch, char *err,
	      size_t n)
{
	int r;

	if (!is_patch && (r = api_preboot(a, err, n)))
		return r;
	if (!is_patch && (r = jin_only(o, put_keys, "/drives", err, n)))
		return r;
	if ((r = check_id(id, o, err, n)))
		return r;
	return is_patch ? patch(a, id, o, err, n) : put(a, id, o, err, n);
}

int res_files(struct api *a, struct json_object *o, int *fds, unsigned int nfds, char *err,
	      size_t n)
{
	static const char *const keys[] = { "paths", NULL };
	struct json_object *paths;
	int r;

	(void)a;
	if ((r = jin_only(o, keys, "/files", err, n)))
		return r;
	if (!json_object_object_get_ex(o, "paths", &paths) ||
	    !json_object_is_type(paths, json_type_array) || !json_object_array_length(paths))
		return api_fail(err, n,
				"'paths': required, the absolute paths of the files sent with the "
				"request (SCM_RIGHTS on the API socket), one for each, in order");
	size_t k = json_object_array_length(paths);
	if (k != nfds)
		return api_fail(
			err, n,
			"'paths' names %zu file%s but %u descriptor%s came with the request "
			"(SCM_RIGHTS on the API's Unix socket, at most %d)",
			k, k == 1 ? "" : "s", nfds, nfds == 1 ? "" : "s", HTTP_MAX_FDS);
	for (size_t i = 0; i < k; i++) {
		struct json_object *p = json_object_array_get_idx(paths, i);
		const char *s =
			json_object_is_type(p, json_type_string) ? json_object_get_string(p) : NULL;
		if (!s || s[0] != '/' || strlen(s) > PATH_LEN_MAX)
			return api_fail(err, n,
					"'paths'[%zu]: an absolute path of at most %d bytes", i,
					PATH_LEN_MAX);
	}
	image_fds_clear(); /* what the last hand-over left: its move is over */
	for (size_t i = 0; i < k; i++) {
		char why[256];
		int fd = fds[i];
		fds[i] = -1; /* taken, or closed by image_fds_add */
		if (image_fds_add(json_object_get_string(json_object_array_get_idx(paths, i)), fd,
				  why, sizeof(why))) {
			image_fds_clear(); /* all of a hand-over, or none of it */
			return api_fail(err, n, "'paths'[%zu]: %s", i, why);
		}
	}
	return 0;
}
