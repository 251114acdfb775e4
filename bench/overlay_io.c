/*
 * tern's copy-on-write overlay (src/backend/disk_overlay.c) driven directly, without a
 * VM: the I/O side of bench/overlay, next to `qemu-img bench` on a qcow2 overlay.
 * Built and run by bench/overlay (see bench/README.md); it can also be run alone.
 *
 *   overlay_io write OVL COUNT BS STRIDE [OFFSET [PATTERN]]
 *	COUNT writes of BS bytes of the byte PATTERN (default 0xa5), the first at OFFSET
 *	(default 0), each next one STRIDE bytes further (as qemu-img bench -w -c -s -S -o
 *	--pattern), one at a time (queue depth 1), then one disk_flush_now.
 *   overlay_io read OVL COUNT BS STRIDE [OFFSET [WSTRIDE WLEN PATTERN]]
 *	COUNT reads of BS bytes the same way; with WSTRIDE WLEN PATTERN, checks afterwards
 *	(untimed) that the first and last byte of every WLEN-byte block at multiples of
 *	WSTRIDE holds PATTERN, i.e. that an earlier write run is what the reads see.
 *   overlay_io --engine write|read ...
 *	The same through the threads engine, as tern-vmm's virtio-blk does it: disk_submit(),
 *	then loop_run_once() until the request's complete() ran (a worker thread does the
 *	I/O; its eventfd wakes the loop). One request in flight at a time.
 *   overlay_io create OVL BASE
 *	overlay_create() once (what a clone calls), timed in this process.
 *   overlay_io copy SRC DST
 *	The sparse copy clones made before overlays: DST as long as SRC, its data extents
 *	(SEEK_DATA/SEEK_HOLE) copied with copy_file_range, holes left holes, no fsync (the
 *	code src/vmm/clone.c still uses for copying an overlay).
 *
 * Requests go through disk_do_sync() on this thread (struct disk_req, one iovec) unless
 * --engine is given, on a
 * disk opened by disk_open() with format=overlay, the threads engine and the page cache
 * (cache=writeback). Output: one "result key=value..." line; times are CLOCK_MONOTONIC
 * around the request loop only (open, flush and close are timed apart or not at all).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "backend/disk.h"
#include "backend/disk_overlay.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/util.h"

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int usage(void)
{
	fprintf(stderr,
		"usage: overlay_io [--engine] write OVL COUNT BS STRIDE [OFFSET [PATTERN]]\n"
		"       overlay_io [--engine] read OVL COUNT BS STRIDE [OFFSET [WSTRIDE WLEN "
		"PATTERN]]\n"
		"       overlay_io create OVL BASE\n"
		"       overlay_io copy SRC DST\n");
	return 2;
}

static int num(const char *s, uint64_t *v)
{
	char *end;

	errno = 0;
	*v = strtoull(s, &end, 0);
	if (errno || end == s || *end) {
		fprintf(stderr, "overlay_io: '%s' is not a number\n", s);
		return -1;
	}
	return 0;
}

/* Checks the bytes an earlier write run left, in the BS bytes read at off. Returns misses. */
static uint64_t verify(const uint8_t *buf, uint64_t off, uint64_t bs, uint64_t wstride,
		       uint64_t wlen, uint8_t pattern)
{
	uint64_t misses = 0, first = (off + wstride - 1) / wstride * wstride;

	for (uint64_t w = first; w + wlen <= off + bs; w += wstride)
		misses += buf[w - off] != pattern || buf[w - off + wlen - 1] != pattern;
	return misses;
}

static bool req_done;

static void on_complete(struct disk_req *r)
{
	req_done = true;
}

/* One request through the engine: submitted, then the loop runs until it completed. */
static int engine_do(struct disk *d, struct loop *loop, struct disk_req *r)
{
	req_done = false;
	disk_submit(d, r);
	while (!req_done) {
		int e = loop_run_once(loop, -1);
		if (e < 0)
			return e;
	}
	return r->result;
}

static int run_io(int argc, char **argv, bool engine)
{
	bool write = !strcmp(argv[1], "write");
	uint64_t count, bs, stride, offset = 0, pattern = 0xa5, wstride = 0, wlen = 0;
	struct disk d;
	const char *why = "";
	int r;

	/* write: 6..8 arguments; read: 6, 7 or 10 (the three check values go together). */
	if (argc < 6 || argc > (write ? 8 : 10) || (!write && (argc == 8 || argc == 9)))
		return usage();
	if (num(argv[3], &count) || num(argv[4], &bs) || num(argv[5], &stride) ||
	    (argc > 6 && num(argv[6], &offset)))
		return usage();
	if (write && argc == 8 && num(argv[7], &pattern))
		return usage();
	if (!write && argc == 10 &&
	    (num(argv[7], &wstride) || num(argv[8], &wlen) || num(argv[9], &pattern)))
		return usage();
	if (!count || !bs || bs % 512 || offset % 512 || stride % 512 || pattern > 255 ||
	    (wstride && (!wlen || wlen > wstride))) {
		fprintf(stderr, "overlay_io: COUNT, BS > 0; BS, STRIDE, OFFSET multiples of 512; "
				"PATTERN a byte; 0 < WLEN <= WSTRIDE\n");
		return 2;
	}
	/* There is no loop_destroy: a static pointer keeps LeakSanitizer quiet. */
	static struct loop *loop;
	loop = loop_create();
	uint8_t *buf = aligned_alloc(4096, (bs + 4095) / 4096 * 4096);
	if (!loop || !buf) {
		fprintf(stderr, "overlay_io: out of memory\n");
		return 1;
	}
	memset(buf, write ? (int)pattern : 0, bs); /* touched before the clock starts */
	struct disk_open_args a = { .path = argv[2],
				    .readonly = !write,
				    .engine = DISK_ENGINE_THREADS,
				    .format = DISK_FORMAT_OVERLAY,
				    .loop = loop };
	double t0 = now();
	if ((r = disk_open(&d, &a, &why))) {
		fprintf(stderr, "overlay_io: %s %s: %s\n", argv[2], why, strerror(-r));
		return 1;
	}
	double t_open = now() - t0;
	if (offset + (count - 1) * stride + bs > d.size) {
		fprintf(stderr,
			"overlay_io: %llu requests of %llu bytes, step %llu, from %llu "
			"go past the end of the %llu-byte disk\n",
			(unsigned long long)count, (unsigned long long)bs,
			(unsigned long long)stride, (unsigned long long)offset,
			(unsigned long long)d.size);
		disk_close(&d);
		return 2;
	}
	struct iovec v = { buf, bs };
	struct disk_req req = { .op = write ? DISK_WRITE : DISK_READ,
				.len = bs,
				.iov = &v,
				.iovcnt = 1,
				.complete = on_complete };
	uint64_t misses = 0;
	double secs = 0, t_flush = 0;
	for (uint64_t i = 0; i < count; i++) {
		req.offset = offset + i * stride;
		t0 = now();
		r = engine ? engine_do(&d, loop, &req) : disk_do_sync(&d, &req);
		secs += now() - t0;
		if (r) {
			fprintf(stderr, "overlay_io: %s of %llu bytes at %llu: %s\n", argv[1],
				(unsigned long long)bs, (unsigned long long)req.offset,
				strerror(-r));
			disk_close(&d);
			return 1;
		}
		if (wstride)
			misses += verify(buf, req.offset, bs, wstride, wlen, (uint8_t)pattern);
	}
	if (write) {
		t0 = now();
		r = disk_flush_now(&d);
		t_flush = now() - t0;
		if (r) {
			fprintf(stderr, "overlay_io: flush: %s\n", strerror(-r));
			disk_close(&d);
			return 1;
		}
	}
	disk_close(&d);
	free(buf);
	printf("result mode=%s path=%s count=%llu bs=%llu stride=%llu bytes=%llu secs=%.6f "
	       "flush_secs=%.6f open_secs=%.6f verify_misses=%llu\n",
	       argv[1], engine ? "engine" : "sync", (unsigned long long)count,
	       (unsigned long long)bs, (unsigned long long)stride, (unsigned long long)(count * bs),
	       secs, t_flush, t_open, (unsigned long long)misses);
	return misses ? 1 : 0;
}

static int run_create(const char *ovl, const char *base)
{
	char err[512];

	double t0 = now();
	int r = overlay_create(ovl, base, err, sizeof(err));
	double secs = now() - t0;
	if (r) {
		fprintf(stderr, "overlay_io: %s\n", err);
		return 1;
	}
	printf("result mode=create secs=%.6f\n", secs);
	return 0;
}

static int run_copy(const char *from, const char *to)
{
	struct stat st;
	int r = 0;

	double t0 = now();
	int in = open(from, O_RDONLY | O_CLOEXEC);
	int out = open(to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (in < 0 || out < 0 || fstat(in, &st) < 0 || ftruncate(out, st.st_size) < 0)
		r = -errno;
	else
		r = file_copy_sparse(in, out, st.st_size);
	if (in >= 0)
		close(in);
	if (out >= 0)
		close(out);
	double secs = now() - t0;
	if (r) {
		fprintf(stderr, "overlay_io: copying %s to %s: %s\n", from, to, strerror(-r));
		return 1;
	}
	printf("result mode=copy secs=%.6f\n", secs);
	return 0;
}

int main(int argc, char **argv)
{
	bool engine = argc >= 2 && !strcmp(argv[1], "--engine");

	log_set_level(LOG_WARN);
	if (engine) {
		argc--;
		argv++;
	}
	if (argc >= 2 && (!strcmp(argv[1], "write") || !strcmp(argv[1], "read")))
		return run_io(argc, argv, engine);
	if (engine)
		return usage();
	if (argc == 4 && !strcmp(argv[1], "create"))
		return run_create(argv[2], argv[3]);
	if (argc == 4 && !strcmp(argv[1], "copy"))
		return run_copy(argv[2], argv[3]);
	return usage();
}
