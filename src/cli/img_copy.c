/*
 * tern img convert (an image, any format, to a new raw or qcow2 file holding what its
 * guest sees) and commit (a qcow2 overlay's own clusters written into its backing file),
 * and img_describe. Both copy through tern's own disk code, so they read exactly what a VM
 * on the image would.
 */
#include "cli/cli.h"
#include "cli/img.h"

#include "backend/disk.h"
#include "backend/disk_commit.h"
#include "backend/disk_overlay.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CHUNK (1u << 20)   /* bytes copied at a time */
#define SPARSE (64u << 10) /* convert leaves out zeros in pieces of this size */
_Static_assert(SPARSE == 1u << QCOW2_CLUSTER_BITS_DEFAULT, "--compress writes whole clusters");

static bool is_overlay(const char *path)
{
	char magic[sizeof(OVERLAY_MAGIC) - 1];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	bool yes = fd >= 0 && pread(fd, magic, sizeof(magic), 0) == (ssize_t)sizeof(magic) &&
		   !memcmp(magic, OVERLAY_MAGIC, sizeof(magic));

	if (fd >= 0)
		close(fd);
	return yes;
}

static int raw_entry(const char *path, struct qcow2_chain_entry *e, const char *format, char *err,
		     size_t n)
{
	struct stat st;

	if (stat(path, &st))
		return fail_msg(err, n, -errno, "%s", strerror(errno));
	snprintf(e->path, sizeof(e->path), "%s", path);
	snprintf(e->format, sizeof(e->format), "%s", format);
	e->size = (uint64_t)st.st_size;
	e->allocated = (uint64_t)st.st_blocks * 512;
	return 0;
}

int img_describe(const char *path, struct qcow2_chain_entry *chain, int max, char *err, size_t n)
{
	enum disk_format f;
	int r;

	if (max < 2)
		return fail_msg(err, n, -EINVAL, "no room");
	if (is_overlay(path)) {
		struct overlay_header h;
		uint8_t buf[OVERLAY_HEADER_SIZE];
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			return fail_msg(err, n, -errno, "%s", strerror(errno));
		ssize_t k = pread(fd, buf, sizeof(buf), 0);
		close(fd);
		if (k != (ssize_t)sizeof(buf) || overlay_header_parse(buf, sizeof(buf), &h, err, n))
			return k != (ssize_t)sizeof(buf) ? fail_msg(err, n, -EINVAL, "truncated") :
							   -EINVAL;
		if ((r = raw_entry(path, &chain[0], "overlay", err, n)))
			return r;
		chain[0].size = h.size;
		if ((r = raw_entry(h.base_path, &chain[1], "raw", err, n)))
			return fail_msg(err, n, r, "its base %s: %s", h.base_path, strerror(-r));
		return 2;
	}
	if ((r = disk_probe_path(path, &f)))
		return fail_msg(err, n, r, "%s", strerror(-r));
	if (f == DISK_FORMAT_QCOW2)
		return qcow2_describe(path, chain, max, err, n);
	return (r = raw_entry(path, &chain[0], "raw", err, n)) ? r : 1;
}

/* An image opened through tern's disk code, for synchronous copying. */
static int open_disk(struct disk *d, const char *path, bool readonly, char *err, size_t n)
{
	static struct loop *loop;
	const char *why = "";

	if (!loop && !(loop = loop_create()))
		return fail_msg(err, n, -ENOMEM, "out of memory");
	struct disk_open_args a = { .path = path,
				    .readonly = readonly,
				    .engine = DISK_ENGINE_THREADS,
				    .format = is_overlay(path) ? DISK_FORMAT_OVERLAY :
								 DISK_FORMAT_AUTO,
				    .loop = loop };
	int r = disk_open(d, &a, &why);
	if (r)
		return fail_msg(err, n, r, "%s %s: %s", path, why, strerror(-r));
	return 0;
}

/* Progress on a terminal: a percentage on one line, rewritten. */
static void progress(const char *what, uint64_t done, uint64_t total)
{
	if (isatty(2) && total)
		fprintf(stderr, "\r%s: %3u%%", what, (unsigned int)(done * 100 / total));
}

int cmd_img_convert(struct cli *c, int argc, char **argv)
{
	const char *format = "raw", *compression = NULL;
	bool compress = false;
	const struct cli_opt opts[] = {
		{ .name = "format", .kind = CLI_OPT_STR, .out = &format },
		{ .name = "compress", .kind = CLI_OPT_FLAG, .out = &compress },
		{ .name = "compression", .kind = CLI_OPT_STR, .out = &compression },
	};
	const char *pos[2];
	struct disk src, dst;
	char err[768];
	int r;

	if (cli_args(c, argc, argv, opts, ARRAY_SIZE(opts), pos, 2))
		return CLI_OK;
	img_refuse_remote(c, "img convert");
	if (strcmp(format, "raw") && strcmp(format, "qcow2"))
		die_usage("img convert: --format '%s' must be raw or qcow2", format);
	bool qcow2 = !strcmp(format, "qcow2");
	if ((compress || compression) && !qcow2)
		die_usage("img convert: --compress and --compression need --format qcow2");
	if (compression && strcmp(compression, "zlib") && strcmp(compression, "zstd"))
		die_usage("img convert: --compression '%s' must be zlib or zstd", compression);
	if ((r = open_disk(&src, pos[0], true, err, sizeof(err)))) {
		cli_error("img convert: %s", err);
		return CLI_FAILED;
	}
	/* A new file only: never over one (nothing on disk is lost). */
	if (!qcow2) {
		int fd = open(pos[1], O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
		r = fd < 0 ? -errno : ftruncate(fd, (off_t)src.size) ? -errno : 0;
		if (fd >= 0)
			close(fd);
		if (r)
			snprintf(err, sizeof(err), "%s: %s", pos[1], strerror(-r));
	} else {
		struct qcow2_create_args a = { .path = pos[1],
					       .size = src.size,
					       .zstd = compression &&
						       !strcmp(compression, "zstd") };
		char why[512];
		if ((r = qcow2_create(&a, why, sizeof(why))))
			snprintf(err, sizeof(err), "%s: %s", pos[1], why);
	}
	if (r) {
		disk_close(&src);
		cli_error("img convert: %s", err);
		return r == -EEXIST ? CLI_USAGE : CLI_FAILED;
	}
	uint8_t *buf = malloc(CHUNK);
	if (!buf || (r = open_disk(&dst, pos[1], false, err, sizeof(err)))) {
		if (!buf)
			snprintf(err, sizeof(err), "out of memory");
		goto fail;
	}
	for (uint64_t off = 0; off < src.size && !r; off += CHUNK) {
		uint64_t len = src.size - off < CHUNK ? src.size - off : CHUNK;
		if ((r = disk_rw_sync(&src, DISK_READ, buf, off, len)))
			snprintf(err, sizeof(err), "reading %s at %llu: %s", pos[0],
				 (unsigned long long)off, strerror(-r));
		/*
		 * Zeros are left out, 64 KiB (the new qcow2 image's cluster) at a time: the copy
		 * stays sparse. With --compress each such cluster is written compressed.
		 */
		for (uint64_t k = 0; !r && k < len; k += SPARSE) {
			uint64_t m = len - k < SPARSE ? len - k : SPARSE;
			if (mem_is_zero(buf + k, m))
				continue;
			if (compress)
				r = qcow2_write_compressed(dst.qcow, off + k, buf + k, m);
			else
				r = disk_rw_sync(&dst, DISK_WRITE, buf + k, off + k, m);
			if (r)
				snprintf(err, sizeof(err), "writing %s at %llu: %s", pos[1],
					 (unsigned long long)(off + k), strerror(-r));
		}
		progress("converting", off + len, src.size);
	}
	if (!r && (r = disk_flush_now(&dst)))
		snprintf(err, sizeof(err), "flushing %s: %s", pos[1], strerror(-r));
	if (isatty(2))
		fprintf(stderr, "\n");
	disk_close(&dst);
	if (r)
		goto fail;
	free(buf);
	disk_close(&src);
	if (c->json) {
		struct json_object *o = json_object_new_object();
		json_object_object_add(o, "path", json_object_new_string(pos[1]));
		json_object_object_add(o, "format", json_object_new_string(format));
		json_object_object_add(o, "compressed", json_object_new_boolean(compress));
		cli_print_json(o);
		json_object_put(o);
	} else {
		printf("Converted %s to %s (%s%s%s)\n", pos[0], pos[1], format,
		       compress ? ", compressed with " : "",
		       compress ? (compression ? compression : "zlib") : "");
	}
	return CLI_OK;
fail:
	free(buf);
	disk_close(&src);
	unlink(pos[1]); /* made above: a half-written copy is worse than none */
	cli_error("img convert: %s", err);
	return CLI_FAILED;
}

/* Progress of a commit, for progress(). */
static void committing(void *opaque, uint64_t done, uint64_t total)
{
	progress("committing", done, total);
}

int cmd_img_commit(struct cli *c, int argc, char **argv)
{
	struct qcow2_chain_entry *chain = calloc(2, sizeof(*chain));
	const char *pos[1];
	char err[1024];
	bool keep = false;
	const struct cli_opt opts[] = { { .name = "keep", .kind = CLI_OPT_FLAG, .out = &keep } };

	if (!chain)
		die("out of memory");
	if (cli_args(c, argc, argv, opts, 1, pos, 1))
		return CLI_OK;
	img_refuse_remote(c, "img commit");
	int k = img_describe(pos[0], chain, 2, err, sizeof(err));
	if (k < 0 || strcmp(chain[0].format, "qcow2") || k < 2) {
		if (k >= 0)
			snprintf(err, sizeof(err), "is %s, not a qcow2 image with a backing file",
				 k < 2 ? "an image without a backing file" : chain[0].format);
		cli_error("img commit: %s: %s", pos[0], err);
		free(chain);
		return k == -ENOENT ? CLI_FAILED : CLI_USAGE;
	}
	free(chain);
	struct disk_commit m = { .top = pos[0], .keep = keep, .progress = committing };
	int r = disk_commit(&m, err, sizeof(err));
	if (isatty(2))
		fprintf(stderr, "\n");
	if (r) {
		cli_error("img commit: %s", err);
		return CLI_FAILED;
	}
	if (c->json) {
		struct json_object *o = json_object_new_object();
		json_object_object_add(o, "base", json_object_new_string(m.base));
		json_object_object_add(o, "bytes", json_object_new_int64((int64_t)m.bytes));
		json_object_object_add(o, "emptied", json_object_new_boolean(!keep));
		cli_print_json(o);
		json_object_put(o);
	} else {
		printf("Committed %llu bytes of %s into %s; %s %s\n", (unsigned long long)m.bytes,
		       pos[0], m.base, pos[0],
		       keep ? "keeps its own copy (--keep)" :
			      "is empty again and reads through to it");
	}
	return CLI_OK;
}
