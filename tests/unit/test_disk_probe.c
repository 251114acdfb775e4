/*
 * format=auto (src/backend/disk_probe.c): a qcow2 image is opened as one and a raw image
 * as raw; a guest's write that would give a raw disk opened that way a qcow2 header is
 * refused (through both engines, from a copy the guest cannot change afterwards), while
 * the same write to an explicit format=raw disk goes through; disk_chain names what a
 * qcow2 image reads below it.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "backend/disk.h"
#include "backend/disk_chain.h"
#include "backend/qcow2.h"
#include "core/loop.h"
#include "tmpfile.h"
#include "unit.h"

#define SIZE (1024 * 1024)

static struct loop *loop;

static int open_as(struct disk *d, const char *path, enum disk_format f, enum disk_engine e)
{
	const char *why = "";
	int r;

	if (!loop)
		loop = loop_create();
	struct disk_open_args a = { .path = path, .engine = e, .format = f, .loop = loop };
	if ((r = disk_open(d, &a, &why)))
		fprintf(stderr, "  disk_open %s: %s: %s\n", path, why, strerror(-r));
	return r;
}

static bool make_raw(const char *path)
{
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	bool ok = fd >= 0 && ftruncate(fd, SIZE) == 0;

	if (fd >= 0)
		close(fd);
	return ok;
}

static struct disk_req *done_req;
static void on_done(struct disk_req *r)
{
	done_req = r;
}

/* A write through disk_submit (as the device makes it), waited for. */
static int submit_write(struct disk *d, uint64_t off, uint8_t *buf, size_t len)
{
	struct iovec v[2] = { { buf, 100 }, { buf + 100, len - 100 } };
	struct disk_req r = { .op = DISK_WRITE,
			      .offset = off,
			      .len = len,
			      .iov = v,
			      .iovcnt = 2,
			      .complete = on_done };

	done_req = NULL;
	disk_submit(d, &r);
	for (int i = 0; i < 500 && !done_req; i++)
		disk_poll(d, 10);
	if (done_req != &r)
		return -ETIMEDOUT;
	CHECK(r.op == DISK_WRITE); /* the device's request comes back as it gave it */
	return r.result;
}

static void first_bytes(const char *path, uint8_t *out, size_t n)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	memset(out, 0xee, n);
	if (fd >= 0) {
		if (pread(fd, out, n, 0) < 0)
			memset(out, 0xee, n);
		close(fd);
	}
}

static void guard_case(enum disk_engine engine)
{
	struct tmp t;
	struct disk d;
	uint8_t sector[512], back[8];

	REQUIRE(tmp_make(&t, "raw.img") && make_raw(t.path));
	REQUIRE(open_as(&d, t.path, DISK_FORMAT_AUTO, engine) == 0);
	CHECK(d.format == DISK_FORMAT_RAW && d.probed_raw);
	/* Sector 0 with a qcow2 magic: refused, the disk unchanged. */
	memset(sector, 0, sizeof(sector));
	memcpy(sector, QCOW2_MAGIC, 4);
	sector[7] = 3; /* version 3 */
	CHECK(submit_write(&d, 0, sector, sizeof(sector)) == -EPERM);
	first_bytes(t.path, back, 4);
	CHECK(memcmp(back, "\0\0\0\0", 4) == 0);
	/* The same bytes elsewhere, and other data at sector 0, are the guest's to write. */
	CHECK(submit_write(&d, 4096, sector, sizeof(sector)) == 0);
	memcpy(sector, "EXT4", 4);
	CHECK(submit_write(&d, 0, sector, sizeof(sector)) == 0);
	first_bytes(t.path, back, 4);
	CHECK(memcmp(back, "EXT4", 4) == 0);
	disk_close(&d);
	/* An explicit format=raw is never probed and never guarded. */
	REQUIRE(open_as(&d, t.path, DISK_FORMAT_RAW, engine) == 0);
	CHECK(!d.probed_raw);
	memcpy(sector, QCOW2_MAGIC, 4);
	CHECK(submit_write(&d, 0, sector, sizeof(sector)) == 0);
	disk_close(&d);
	first_bytes(t.path, back, 4);
	CHECK(memcmp(back, QCOW2_MAGIC, 4) == 0);
	tmp_remove(&t);
}

TEST(disk_auto_refuses_a_qcow2_header_on_a_raw_disk_threads)
{
	guard_case(DISK_ENGINE_THREADS);
}

TEST(disk_auto_refuses_a_qcow2_header_on_a_raw_disk_io_uring)
{
	guard_case(DISK_ENGINE_AUTO); /* io_uring where the kernel has it */
}

TEST(disk_auto_opens_a_qcow2_image_and_chain_names_its_base)
{
	struct tmp t;
	struct disk d;
	char top[160], err[320], below[2][DISK_CHAIN_PATH_MAX];
	uint8_t buf[512];
	int r;

	REQUIRE(tmp_make(&t, "base.img") && make_raw(t.path));
	snprintf(top, sizeof(top), "%s/top.qcow2", t.dir);
	struct qcow2_create_args a = { .path = top, .backing = t.path, .backing_format = "raw" };
	REQUIRE(qcow2_create(&a, err, sizeof(err)) == 0);
	REQUIRE(open_as(&d, top, DISK_FORMAT_AUTO, DISK_ENGINE_AUTO) == 0);
	CHECK(d.format == DISK_FORMAT_QCOW2 && !d.probed_raw && d.qcow);
	CHECK(d.size == SIZE);
	/* io_uring for what qcow2 places, threads for the rest; threads alone without io_uring. */
	bool uring = !strcmp(disk_engine_name(&d), "io_uring+threads");
	CHECK(uring || !strcmp(disk_engine_name(&d), "threads"));
	/* A qcow2 header written by the guest of a qcow2 disk is just data inside it. */
	memset(buf, 0, sizeof(buf));
	memcpy(buf, QCOW2_MAGIC, 4);
	CHECK(submit_write(&d, 0, buf, sizeof(buf)) == 0);
	disk_close(&d);
	CHECK(disk_chain(top, DISK_FORMAT_AUTO, below, 2, err, sizeof(err)) == 1);
	CHECK(!strcmp(below[0], t.path));
	CHECK(disk_chain(t.path, DISK_FORMAT_AUTO, below, 2, err, sizeof(err)) == 0);
	/* aio=io_uring takes a qcow2 image where the kernel has io_uring, as auto did. */
	struct disk_open_args ua = { .path = top,
				     .engine = DISK_ENGINE_IO_URING,
				     .format = DISK_FORMAT_AUTO,
				     .loop = loop };
	const char *why = "";
	r = disk_open(&d, &ua, &why);
	CHECK(uring ? r == 0 : r < 0);
	if (r == 0) {
		CHECK(!strcmp(disk_engine_name(&d), "io_uring+threads"));
		disk_close(&d);
	}
	/* A missing base is refused by disk_chain with the chain named. */
	unlink(t.path);
	CHECK(disk_chain(top, DISK_FORMAT_AUTO, below, 2, err, sizeof(err)) < 0);
	CHECK(strstr(err, "base.img") != NULL);
	unlink(top);
	tmp_remove(&t);
}

TEST(disk_format_names_round_trip)
{
	enum disk_format f;

	for (int i = 0; i <= DISK_FORMAT_LAST; i++) {
		CHECK(disk_format_parse(disk_format_name((enum disk_format)i), &f) == 0);
		CHECK(f == (enum disk_format)i);
	}
	CHECK(disk_format_parse("vmdk", &f) == -EINVAL);
}
