/*
 * Tests for --disk parsing (config_parse_disk): every documented key and value, and a
 * message naming the key for each rejected one; the --disk values of a restart.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/config.h"
#include "vmm/restart_args.h"
#include "unit.h"

static char err[256];

static int parse(const char *spec, struct disk_config *d)
{
	err[0] = 0;
	return config_parse_disk(spec, d, err, sizeof(err));
}

/* Rejected, with a message that contains `word` (the key, usually). */
static bool rejected(const char *spec, const char *word)
{
	struct disk_config d;
	int r = parse(spec, &d);

	if (r == 0)
		free(d.path);
	return r == -EINVAL && d.path == NULL && strstr(err, word) != NULL;
}

TEST(config_disk_defaults)
{
	struct disk_config d;

	REQUIRE(parse("path=/tmp/x.img", &d) == 0);
	CHECK(!strcmp(d.path, "/tmp/x.img"));
	CHECK(!d.readonly);
	CHECK(d.cache == DISK_CACHE_WRITEBACK);
	CHECK(d.engine == DISK_ENGINE_AUTO);
	CHECK(d.id[0] == 0);
	free(d.path);
}

TEST(config_disk_all_keys)
{
	struct disk_config d;

	REQUIRE(parse("path=/dev/vdb,readonly=on,cache=none,id=disk-1,aio=threads", &d) == 0);
	CHECK(!strcmp(d.path, "/dev/vdb"));
	CHECK(d.readonly);
	CHECK(d.cache == DISK_CACHE_NONE);
	CHECK(!strcmp(d.id, "disk-1"));
	CHECK(d.engine == DISK_ENGINE_THREADS);
	free(d.path);

	/* Any order, the other value of each key. */
	REQUIRE(parse("aio=io_uring,cache=writeback,readonly=off,path=a.img", &d) == 0);
	CHECK(!strcmp(d.path, "a.img"));
	CHECK(!d.readonly);
	CHECK(d.cache == DISK_CACHE_WRITEBACK);
	CHECK(d.engine == DISK_ENGINE_IO_URING);
	free(d.path);

	/* A later value wins; a value may contain '='. */
	REQUIRE(parse("path=first,path=dir/a=b.img,readonly=on,readonly=off", &d) == 0);
	CHECK(!strcmp(d.path, "dir/a=b.img"));
	CHECK(!d.readonly);
	free(d.path);

	/* format=auto unless given. */
	REQUIRE(parse("path=o", &d) == 0);
	CHECK(d.format == DISK_FORMAT_AUTO);
	free(d.path);
	REQUIRE(parse("path=o,format=qcow2", &d) == 0);
	CHECK(d.format == DISK_FORMAT_QCOW2 && d.l2_cache == 0);
	free(d.path);
	REQUIRE(parse("path=o,l2-cache-size=4M", &d) == 0);
	CHECK(d.l2_cache == 4u << 20);
	free(d.path);
	REQUIRE(parse("path=o,l2-cache-size=65536", &d) == 0);
	CHECK(d.l2_cache == 65536);
	free(d.path);
	REQUIRE(parse("path=o,format=overlay", &d) == 0);
	CHECK(d.format == DISK_FORMAT_OVERLAY && d.engine == DISK_ENGINE_AUTO);
	free(d.path);
	REQUIRE(parse("path=o,format=overlay,format=raw", &d) == 0);
	CHECK(d.format == DISK_FORMAT_RAW);
	free(d.path);

	/* Empty items between commas are skipped. */
	REQUIRE(parse(",path=x,,id=y,", &d) == 0);
	CHECK(!strcmp(d.path, "x") && !strcmp(d.id, "y"));
	free(d.path);
}

TEST(config_disk_id_length)
{
	struct disk_config d;

	REQUIRE(parse("path=x,id=abcdefghijklmnopqrst", &d) == 0); /* 20: the virtio-blk field */
	CHECK(!strcmp(d.id, "abcdefghijklmnopqrst"));
	CHECK(strlen(d.id) == DISK_ID_MAX);
	free(d.path);
	REQUIRE(parse("path=x,id=a", &d) == 0);
	CHECK(!strcmp(d.id, "a"));
	free(d.path);

	CHECK(rejected("path=x,id=abcdefghijklmnopqrstu", "id=")); /* 21 */
	CHECK(strstr(err, "20"));
	CHECK(rejected("path=x,id=", "id="));
	CHECK(rejected("id=abcdefghijklmnopqrstuvwxyz0123456789,path=x", "id="));
}

TEST(config_disk_bad_values_name_the_key)
{
	CHECK(rejected("path=x,readonly=yes", "readonly"));
	CHECK(rejected("path=x,readonly=ON", "readonly"));
	CHECK(rejected("path=x,readonly=1", "readonly"));
	CHECK(rejected("path=x,readonly=", "readonly"));
	CHECK(rejected("path=x,cache=unsafe", "cache"));
	CHECK(rejected("path=x,cache=directsync", "cache"));
	CHECK(rejected("path=x,cache=", "cache"));
	CHECK(rejected("path=x,aio=native", "aio"));
	CHECK(rejected("path=x,aio=", "aio"));
	CHECK(rejected("path=x,aio=IO_URING", "aio"));
	CHECK(rejected("path=", "path"));
	CHECK(rejected("path=x,path=", "path")); /* a later empty path does not keep the first */
	/* The accepted values are named too. */
	CHECK(rejected("path=x,cache=bogus", "writeback"));
	CHECK(rejected("path=x,aio=bogus", "threads"));
	CHECK(rejected("path=x,readonly=bogus", "on or off"));
	CHECK(rejected("path=x,format=vmdk", "auto, raw, qcow2 or overlay"));
	CHECK(rejected("path=x,format=", "format"));
	CHECK(rejected("path=x,l2-cache-size=8G", "l2-cache-size='8G' is not 512 to 4294967296"));
	CHECK(rejected("path=x,l2-cache-size=5000M", "l2-cache-size"));
	CHECK(rejected("path=x,l2-cache-size=100", "l2-cache-size"));
	CHECK(rejected("path=x,l2-cache-size=-1", "l2-cache-size"));
	CHECK(rejected("path=x,l2-cache-size=", "l2-cache-size"));
	/* Overlays run on the thread pool. */
	CHECK(rejected("path=x,format=overlay,aio=io_uring", "aio=threads"));
	/* qcow2 takes either engine (io_uring with a thread pool for what it cannot place). */
	struct disk_config q;
	REQUIRE(parse("path=x,format=qcow2,aio=io_uring", &q) == 0);
	CHECK(q.format == DISK_FORMAT_QCOW2 && q.engine == DISK_ENGINE_IO_URING);
	free(q.path);
}

TEST(config_disk_missing_path)
{
	CHECK(rejected("", "path"));
	CHECK(rejected(",,,", "path"));
	CHECK(rejected("readonly=on", "path"));
	CHECK(rejected("id=x,cache=none,aio=threads", "path"));
}

TEST(config_disk_unknown_or_malformed_key)
{
	CHECK(rejected("path=x,fmt=raw", "fmt"));
	CHECK(rejected("path=x,Path=y", "Path"));
	CHECK(rejected("path=x,=y", "''"));
	CHECK(rejected("path=x,readonly", "readonly"));
	CHECK(strstr(err, "key=value"));
	CHECK(rejected("/tmp/disk.img", "/tmp/disk.img"));
	/* The message lists the keys there are. */
	CHECK(rejected("path=x,bogus=1", "keys: path, readonly, cache, id, aio"));
}

TEST(config_disk_error_message_truncates_safely)
{
	struct disk_config d;
	char small[8];

	memset(small, 'z', sizeof(small));
	CHECK(config_parse_disk("path=x,cache=bogus", &d, small, sizeof(small)) == -EINVAL);
	CHECK(memchr(small, 0, sizeof(small)) != NULL);
	CHECK(d.path == NULL);
}

/*
 * A restart (--on-reboot restart) after drives moved onto other images: their --disk
 * values, in either spelling, get the new path and format and keep every other key; the
 * other words are argv's own. A moved drive with no --disk (the API's) cannot restart.
 */
TEST(config_restart_takes_the_drives_new_images)
{
	char a0[] = "tern-vmm", a1[] = "--disk", a2[] = "path=/a.img,format=raw,id=x,cache=none",
	     a3[] = "--disk=path=/b.img,readonly=on", a4[] = "--disk", a5[] = "path=/c.img";
	char *argv[] = { a0, a1, a2, a3, a4, a5, NULL };
	struct vmm_config *c = calloc(1, sizeof(*c));
	char e[200];

	REQUIRE(c);
	c->ndisks = 3;
	c->disks[0] = (struct disk_config){
		.path = "/snap/a.qcow2", .format = DISK_FORMAT_QCOW2, .arg = a2, .swapped = true
	};
	c->disks[1] = (struct disk_config){
		.path = "/snap/b.qcow2", .format = DISK_FORMAT_AUTO, .arg = a3 + 7, .swapped = true
	};
	c->disks[2] = (struct disk_config){ .path = "/c.img", .arg = a5 };
	char **v = restart_args(6, argv, c, e, sizeof(e));
	REQUIRE(v);
	CHECK(!strcmp(v[2], "path=/snap/a.qcow2,format=qcow2,id=x,cache=none"));
	CHECK(!strcmp(v[3], "--disk=path=/snap/b.qcow2,format=auto,readonly=on"));
	CHECK(v[0] == a0 && v[1] == a1 && v[4] == a4 && v[5] == a5 && !v[6]);
	free(v[2]);
	free(v[3]);
	free(v);

	c->disks[2].arg = NULL;
	c->disks[2].swapped = true;
	CHECK(!restart_args(6, argv, c, e, sizeof(e)));
	CHECK(strstr(e, "disk 2") && strstr(e, "not given by --disk"));
	free(c);
}

/* --restore-disk id=ID,path=PATH[,format=F]: both keys needed, each bad one named. */
TEST(config_restore_disk_keys)
{
	struct restore_disk d;
	char e[160];

	REQUIRE(config_parse_restore_disk("id=data,path=/o.qcow2,format=qcow2", &d, e, sizeof(e)) ==
		0);
	CHECK(!strcmp(d.drive_id, "data") && !strcmp(d.path, "/o.qcow2"));
	CHECK(d.has_format && d.format == DISK_FORMAT_QCOW2);
	free(d.path);
	REQUIRE(config_parse_restore_disk("path=/x,id=disk1", &d, e, sizeof(e)) == 0);
	CHECK(!d.has_format && d.format == DISK_FORMAT_AUTO && !strcmp(d.drive_id, "disk1"));
	free(d.path);
	const char *bad[][2] = { { "path=/x", "id= and path=" },
				 { "id=a", "id= and path=" },
				 { "id=a,path=/x,format=vmdk", "format=vmdk" },
				 { "id=abcdefghijklmnopqrstu,path=/x", "id=" },
				 { "id=a,path=/x,cache=none", "unknown key 'cache'" },
				 { "id=a,path", "'path' is not key=value" },
				 { "id=a,path=", "path=" } };
	for (unsigned int i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		e[0] = 0;
		CHECK(config_parse_restore_disk(bad[i][0], &d, e, sizeof(e)) == -EINVAL);
		CHECK(strstr(e, bad[i][1]) != NULL);
		CHECK(d.path == NULL);
	}
}
