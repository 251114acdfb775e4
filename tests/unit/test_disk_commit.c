/*
 * disk_commit (src/backend/disk_commit.c), qemu-img commit through tern's disk code: an
 * overlay qemu-io wrote into (data, and zeroes over the base's data) commits into a raw
 * and into a qcow2 base so that the base reads as the overlay did (qemu-img as the
 * oracle); the overlay is emptied (it reads through, qemu-img check finds it clean) or
 * keeps its copy. A base another process holds, a top without a backing file and a raw
 * top are refused.
 */
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "backend/disk_commit.h"
#include "qcow2_util.h"
#include "tmpfile.h"
#include "unit.h"

#define SIZE (4u << 20)

/* What qemu-img reads at path (SIZE bytes, malloc'd), or NULL. */
static uint8_t *flat(const char *dir, const char *path)
{
	char out[512];
	size_t len;

	snprintf(out, sizeof(out), "%s/flat.raw", dir);
	if (q2t_sh("qemu-img convert -U -O raw '%s' '%s'", path, out))
		return NULL;
	uint8_t *b = q2t_file(out, &len);
	unlink(out);
	if (b && len != SIZE) {
		free(b);
		return NULL;
	}
	return b;
}

/* How many ranges of data path maps itself (depth 0), per qemu-img map; -1 on error. */
static int own_data(const char *path)
{
	struct json_object *m =
		json_tokener_parse(q2t_out("qemu-img map -U --output=json '%s'", path));
	int k = -1;

	if (m && json_object_is_type(m, json_type_array)) {
		k = 0;
		for (size_t i = 0; i < json_object_array_length(m); i++) {
			struct json_object *e = json_object_array_get_idx(m, i), *depth, *data;
			if (json_object_object_get_ex(e, "depth", &depth) &&
			    json_object_object_get_ex(e, "data", &data) &&
			    !json_object_get_int(depth) && json_object_get_boolean(data))
				k++;
		}
	}
	json_object_put(m);
	return k;
}

static void commit_into(const char *base_fmt)
{
	struct tmp t;
	char base[256], top[256], err[1024];

	REQUIRE(tmp_make(&t, "x"));
	snprintf(base, sizeof(base), "%s/base.%s", t.dir, base_fmt);
	snprintf(top, sizeof(top), "%s/top.qcow2", t.dir);
	REQUIRE(q2t_sh("qemu-img create -q -f %s '%s' 4M && qemu-io -f %s -c 'write -P 0x11 0 4M' "
		       "'%s'",
		       base_fmt, base, base_fmt, base) == 0);
	REQUIRE(q2t_sh("qemu-img create -q -f qcow2 -b '%s' -F %s '%s' && qemu-io -c 'write -P "
		       "0xab 64k 128k' -c 'write -z 1M 64k' -c 'write -P 0xcd 3M 512' '%s'",
		       base, base_fmt, top, top) == 0);
	uint8_t *want = flat(t.dir, top);
	REQUIRE(want);
	CHECK(own_data(top) > 0);

	/* Another process's lock on the base: refused, nothing written. */
	int held = open(base, O_RDONLY);
	REQUIRE(held >= 0);
	struct flock l = { .l_type = F_RDLCK, .l_whence = SEEK_SET };
	REQUIRE(fcntl(held, F_OFD_SETLK, &l) == 0);
	struct disk_commit c = { .top = top };
	CHECK(disk_commit(&c, err, sizeof(err)) < 0 && strstr(err, base));
	close(held);
	uint8_t *b = flat(t.dir, base);
	CHECK(b && memcmp(b, want, SIZE));
	free(b);

	CHECK(disk_commit(&c, err, sizeof(err)) == 0);
	CHECK(!strcmp(c.base, base) && c.bytes >= (128u << 10) + 512);
	b = flat(t.dir, base);
	CHECK(b && !memcmp(b, want, SIZE));
	free(b);
	b = flat(t.dir, top);
	CHECK(b && !memcmp(b, want, SIZE));
	free(b);
	/* Emptied: no data of its own (qemu-img map: none at depth 0), and clean. */
	CHECK(own_data(top) == 0);
	CHECK(q2t_sh("qemu-img check -q '%s'", top) == 0);
	/* keep: the base gets it, the overlay keeps its own copy. */
	REQUIRE(q2t_sh("qemu-io -c 'write -P 0xef 2M 64k' '%s'", top) == 0);
	c.keep = true;
	CHECK(disk_commit(&c, err, sizeof(err)) == 0 && c.bytes == 64u << 10);
	CHECK(own_data(top) == 1);
	b = flat(t.dir, base);
	CHECK(b && b[2u << 20] == 0xef && b[(2u << 20) + (64u << 10) - 1] == 0xef);
	free(b);

	/* Not a qcow2 image with a backing file. */
	struct disk_commit bad = { .top = base };
	CHECK(disk_commit(&bad, err, sizeof(err)) < 0);
	REQUIRE(q2t_sh("qemu-img create -q -f qcow2 '%s/lone.qcow2' 1M", t.dir) == 0);
	char lone[256];
	snprintf(lone, sizeof(lone), "%s/lone.qcow2", t.dir);
	bad.top = lone;
	CHECK(disk_commit(&bad, err, sizeof(err)) == -EINVAL && strstr(err, "without a backing"));
	free(want);
	q2t_rmdir(t.dir);
}

TEST(disk_commit_into_a_raw_base)
{
	commit_into("raw");
}

TEST(disk_commit_into_a_qcow2_base)
{
	commit_into("qcow2");
}
