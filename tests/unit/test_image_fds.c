/*
 * image_fds (src/backend/image_fds.c), the files ternd hands a jailed tern-vmm open: an
 * open of a handed path takes the file that serves it (read-only preferred for reading,
 * read-write only for writing, O_DSYNC only from a file opened with it) out of the table;
 * O_DIRECT is refused for a handed path; what no handed file serves goes to the file
 * system; bad hand-overs are refused; clear empties the table.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend/disk.h"
#include "backend/disk_chain.h"
#include "backend/image_fds.h"
#include "core/loop.h"
#include "qcow2_util.h"
#include "unit.h"

/* A path the file system does not have: only the table can serve it. */
#define GONE "/nonexistent-tern-image-fds/disk.qcow2"

static int accmode(int fd)
{
	return fcntl(fd, F_GETFL) & O_ACCMODE;
}

TEST(image_fds_open_takes_the_file_that_serves_it)
{
	char path[] = "/tmp/tern-imgfds-XXXXXX", err[256];
	int fd = mkstemp(path);

	REQUIRE(fd >= 0);
	close(fd);
	image_fds_clear();
	CHECK(image_fds_add(GONE, open(path, O_RDWR), err, sizeof(err)) == 0);
	CHECK(image_fds_add(GONE, open(path, O_RDONLY), err, sizeof(err)) == 0);
	CHECK(image_fds_has(GONE));
	/* O_DIRECT: refused for a handed path (the disk layer falls back to O_DSYNC). */
	errno = 0;
	CHECK(image_fds_open(GONE, O_RDWR | O_DIRECT) < 0 && errno == EINVAL);
	/* O_DSYNC: neither was opened with it, so the file system answers (it has none). */
	errno = 0;
	CHECK(image_fds_open(GONE, O_RDWR | O_DSYNC) < 0 && errno == ENOENT);
	/* Reading prefers the read-only file, writing takes the read-write one. */
	int a = image_fds_open(GONE, O_RDONLY | O_CLOEXEC);
	CHECK(a >= 0 && accmode(a) == O_RDONLY && (fcntl(a, F_GETFD) & FD_CLOEXEC));
	int b = image_fds_open(GONE, O_RDWR);
	CHECK(b >= 0 && accmode(b) == O_RDWR && !(fcntl(b, F_GETFD) & FD_CLOEXEC));
	/* Both taken: the path goes to the file system again. */
	CHECK(!image_fds_has(GONE));
	errno = 0;
	CHECK(image_fds_open(GONE, O_RDONLY) < 0 && errno == ENOENT);
	/* A read-write file serves a read when it is all there is; never the reverse. */
	CHECK(image_fds_add(GONE, open(path, O_RDONLY), err, sizeof(err)) == 0);
	errno = 0;
	CHECK(image_fds_open(GONE, O_RDWR) < 0 && errno == ENOENT);
	image_fds_clear();
	CHECK(image_fds_add(GONE, open(path, O_RDWR | O_DSYNC), err, sizeof(err)) == 0);
	int c = image_fds_open(GONE, O_RDONLY);
	CHECK(c >= 0 && accmode(c) == O_RDWR);
	/* A path the table does not hold is the file system's. */
	int d = image_fds_open(path, O_RDONLY);
	CHECK(d >= 0);
	for (int *p = (int[]){ a, b, c, d }, i = 0; i < 4; i++)
		if (p[i] >= 0)
			close(p[i]);
	image_fds_clear();
	unlink(path);
}

TEST(image_fds_refuses_bad_hand_overs)
{
	char err[256];
	int p[2];

	image_fds_clear();
	CHECK(image_fds_add("disk.qcow2", open("/dev/null", O_RDONLY), err, sizeof(err)) ==
		      -EINVAL &&
	      strstr(err, "absolute"));
	REQUIRE(pipe(p) == 0);
	CHECK(image_fds_add(GONE, p[0], err, sizeof(err)) == -EINVAL &&
	      strstr(err, "not a regular file"));
	close(p[1]);
	CHECK(!image_fds_has(GONE));
	int n = 0, r = 0;
	while (!r && n <= IMAGE_FDS_MAX)
		if (!(r = image_fds_add(GONE, open("/proc/self/exe", O_RDONLY), err, sizeof(err))))
			n++;
	CHECK(n == IMAGE_FDS_MAX && r == -ENOSPC && strstr(err, "at most"));
	image_fds_clear();
	CHECK(!image_fds_has(GONE));
}

/* One loop for the file: there is no loop_destroy, and a static pointer is not a leak. */
static struct loop *the_loop(void)
{
	static struct loop *l;

	if (!l)
		l = loop_create();
	return l;
}

/*
 * A qcow2 chain served by the table alone: the directory renamed after the files were
 * handed, so the file system has none of the paths the headers name. The drive's own
 * image taken read-write, the one below it read-only, the raw base read-only; the
 * read-write copy of the middle stays for a drive that would go back onto it. Listed
 * first (disk_chain_list) while the middle is write-locked, as a running VM holds it.
 */
TEST(image_fds_serve_a_qcow2_chain)
{
	char dir[] = "/tmp/tern-imgfds-XXXXXX", gone[64], base[96], mid[96], top[96], err[256];
	const char *why = "";
	struct disk d;

	REQUIRE(mkdtemp(dir));
	snprintf(base, sizeof(base), "%s/base.img", dir);
	snprintf(mid, sizeof(mid), "%s/mid.qcow2", dir);
	snprintf(top, sizeof(top), "%s/top.qcow2", dir);
	REQUIRE(q2t_sh("qemu-img create -q -f raw '%s' 1M && qemu-img create -q -f qcow2 -F raw "
		       "-b '%s' '%s' && qemu-img create -q -f qcow2 -F qcow2 -b '%s' '%s'",
		       base, base, mid, mid, top) == 0);
	/* The file below the new top is a running VM's (write-locked): still listed. */
	int vm = open(mid, O_RDWR);
	struct flock wr = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
	REQUIRE(vm >= 0 && fcntl(vm, F_OFD_SETLK, &wr) == 0);
	char(*below)[DISK_CHAIN_PATH_MAX];
	int nb = disk_chain_list(top, DISK_FORMAT_AUTO, &below);
	CHECK(nb == 2 && !strcmp(below[0], mid) && !strcmp(below[1], base));
	free(below);
	close(vm);
	image_fds_clear();
	CHECK(image_fds_add(top, open(top, O_RDWR), err, sizeof(err)) == 0);
	CHECK(image_fds_add(mid, open(mid, O_RDONLY), err, sizeof(err)) == 0);
	CHECK(image_fds_add(base, open(base, O_RDONLY), err, sizeof(err)) == 0);
	CHECK(image_fds_add(mid, open(mid, O_RDWR), err, sizeof(err)) == 0);
	snprintf(gone, sizeof(gone), "%s.moved", dir);
	REQUIRE(rename(dir, gone) == 0);
	struct disk_open_args a = { .path = top,
				    .engine = DISK_ENGINE_THREADS,
				    .format = DISK_FORMAT_QCOW2,
				    .loop = the_loop() };
	int r = disk_open(&d, &a, &why);
	if (r)
		printf("  disk_open: %s: %s\n", why, strerror(-r));
	CHECK(r == 0);
	CHECK(image_fds_has(mid) && !image_fds_has(top) && !image_fds_has(base));
	if (!r)
		disk_close(&d);
	/* The read-write copy of the middle: what a drive going back onto it opens. */
	int fd = image_fds_open(mid, O_RDWR);
	CHECK(fd >= 0 && (fcntl(fd, F_GETFL) & O_ACCMODE) == O_RDWR);
	if (fd >= 0)
		close(fd);
	image_fds_clear();
	q2t_sh("rm -rf '%s'", gone);
}
