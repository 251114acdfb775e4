/*
 * tern img resize FILE [+]SIZE [--shrink]: a raw or qcow2 image's virtual size, as
 * qemu-img resize. Only images no VM is using (each tern-vmm holds a lock on its disks);
 * the guest sees the new size at its next boot. An image shrinks only with --shrink,
 * since what lies past the new end is lost.
 */
#include "cli/cli.h"
#include "cli/img.h"

#include "backend/qcow2.h"
#include "core/log.h"
#include "core/util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int resize_raw(const char *path, uint64_t size, char *err, size_t n)
{
	struct stat st;
	int fd = image_open_locked(path, true, err, n), r = 0;

	if (fd < 0)
		return fd;
	if (fstat(fd, &st))
		r = fail_msg(err, n, -errno, "%s: %s", path, strerror(errno));
	else if (!S_ISREG(st.st_mode))
		r = fail_msg(err, n, -EINVAL,
			     "%s is not a regular file: a device's size is its own", path);
	else if (ftruncate(fd, (off_t)size) || fsync(fd))
		r = fail_msg(err, n, -errno, "%s: %s", path, strerror(errno));
	close(fd);
	return r;
}

static int resize_qcow2(const char *path, uint64_t size, char *err, size_t n)
{
	struct qcow2_open_args a = { 0 };
	struct qcow2 *q;
	char why[512];
	int fd, r;

	if ((r = image_open_qcow2(path, &a, &fd, &q, err, n)))
		return r;
	r = size < qcow2_size(q) ? qcow2_shrink(q, size, why, sizeof(why)) :
				   qcow2_resize(q, size, why, sizeof(why));
	if (r)
		fail_msg(err, n, r, "%s", why);
	qcow2_close(q);
	close(fd);
	return r;
}

int cmd_img_resize(struct cli *c, int argc, char **argv)
{
	bool shrink = false;
	const struct cli_opt opts[] = {
		{ .name = "shrink", .kind = CLI_OPT_FLAG, .out = &shrink }
	};
	const char *pos[2];
	struct qcow2_chain_entry *chain = calloc(QCOW2_CHAIN_MAX + 1, sizeof(*chain));
	uint64_t size = 0, grow = 0;
	char err[768];
	int r;

	if (!chain)
		die("out of memory");
	if (cli_args(c, argc, argv, opts, 1, pos, 2))
		return CLI_OK;
	img_refuse_remote(c, "img resize");
	bool relative = pos[1][0] == '+';
	if (!img_parse_size(pos[1] + relative, relative ? &grow : &size) || size % 512 ||
	    grow % 512 || (!relative && !size))
		die_usage("img resize: SIZE '%s' must be a non-zero multiple of 512 bytes, or "
			  "+SIZE to grow by that much (K, M, G, T suffixes: 20G, +1G)",
			  pos[1]);
	int k = img_describe(pos[0], chain, QCOW2_CHAIN_MAX + 1, err, sizeof(err));
	if (k < 0) {
		cli_error("img resize: %s: %s", pos[0], err);
		free(chain);
		return k == -ENOENT || k == -EACCES ? CLI_FAILED : CLI_USAGE;
	}
	uint64_t old = chain[0].size;
	bool qcow2 = !strcmp(chain[0].format, "qcow2"), raw = !strcmp(chain[0].format, "raw");
	char format[sizeof(chain[0].format)];
	snprintf(format, sizeof(format), "%s", chain[0].format);
	free(chain);
	if (!qcow2 && !raw)
		die_usage("img resize: %s is a %s image: only raw and qcow2 images are resized",
			  pos[0], format);
	if (relative && grow > UINT64_MAX - old)
		die_usage("img resize: +SIZE '%s' is too large", pos[1]);
	if (relative)
		size = old + grow;
	if (size < old && !shrink)
		die_usage("img resize: %s: %llu bytes is smaller than its %llu: give --shrink "
			  "to drop what lies past the new end",
			  pos[0], (unsigned long long)size, (unsigned long long)old);
	if ((r = qcow2 ? resize_qcow2(pos[0], size, err, sizeof(err)) :
			 resize_raw(pos[0], size, err, sizeof(err)))) {
		cli_error("img resize: %s", err);
		return r == -EINVAL || r == -ENOTSUP ? CLI_USAGE : CLI_FAILED;
	}
	if (c->json) {
		struct json_object *o = json_object_new_object();
		json_object_object_add(o, "path", json_object_new_string(pos[0]));
		json_object_object_add(o, "old_size", json_object_new_int64((int64_t)old));
		json_object_object_add(o, "new_size", json_object_new_int64((int64_t)size));
		cli_print_json(o);
		json_object_put(o);
	} else {
		printf("Resized %s from %llu to %llu bytes\n", pos[0], (unsigned long long)old,
		       (unsigned long long)size);
	}
	return CLI_OK;
}
