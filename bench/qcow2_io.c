/*
 * tern's qcow2 (src/backend/qcow2*.c) driven directly through the disk layer, without a
 * VM: the tern side of bench/qcow2, next to `qemu-img bench` on the same workloads.
 * Built and run by bench/qcow2 (see bench/README.md); it can also be run alone.
 *
 *   qcow2_io [OPTIONS] write IMG COUNT BS STEP [OFFSET [PATTERN]]
 *	COUNT writes of BS bytes of the byte PATTERN (default 0xa5), then one disk_flush_now
 *	(timed apart). Offsets as `qemu-img bench -c COUNT -s BS -S STEP -o OFFSET` makes them
 *	(QEMU 7.2): the first at OFFSET, each next one STEP bytes further, modulo the disk's
 *	size; or from the PRNG with --rand.
 *   qcow2_io [OPTIONS] read IMG COUNT BS STEP [OFFSET]
 *	COUNT reads the same way.
 *   qcow2_io [--rand SEED] verify IMG COUNT BS STEP [OFFSET [PATTERN]]
 *	Untimed check after a write run with the same arguments: every block it wrote reads
 *	back as PATTERN, every byte (read one at a time with disk_do_sync on a fresh open).
 *   qcow2_io create OVL BASE [raw|qcow2]
 *	qcow2_create() of an overlay over BASE once (what a clone and --create-overlay call),
 *	timed in this process.
 *
 * OPTIONS:
 *   --engine	through a disk engine, as tern-vmm's virtio-blk does it: disk_submit(), and
 *		loop_run_once() until complete() ran (the ring or a worker thread does the
 *		I/O; an eventfd wakes the loop). Without it, disk_do_sync() on this thread
 *		(QD 1 only).
 *   --aio io_uring|threads  the engine (--engine): io_uring with its thread pool for
 *		what qcow2 cannot place (tern-vmm's default), or the thread pool alone.
 *   --qd N	keep N requests in flight (--engine; default 1): each completion submits
 *		the next offset, so the disk sees N at a time as long as requests remain.
 *   --rand SEED offsets from a seeded PRNG (xorshift64*, BS-aligned, uniform over the
 *		disk) instead of OFFSET + i * STEP; STEP and OFFSET are then ignored.
 *   --cache none opens with cache=none (disk_open_args.direct: for qcow2, O_DSYNC and a
 *		qcow2_flush after every write); default cache=writeback (the page cache).
 *
 * The image is opened with format=qcow2 (and the engine --aio names). Output: one
 * "result key=value..." line; times are CLOCK_MONOTONIC around the request loop only
 * (open, flush and close are timed apart).
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "backend/disk.h"
#include "backend/qcow2.h"
#include "core/log.h"
#include "core/loop.h"

#define QD_MAX 256

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int usage(void)
{
	fprintf(stderr,
		"usage: qcow2_io [--engine [--aio io_uring|threads]] [--qd N] [--rand SEED]\n"
		"                [--cache none|writeback] write IMG COUNT BS STEP [OFFSET "
		"[PATTERN]]\n"
		"       qcow2_io [--engine [--aio io_uring|threads]] [--qd N] [--rand SEED]\n"
		"                [--cache none|writeback] read IMG COUNT BS STEP [OFFSET]\n"
		"       qcow2_io [--rand SEED] verify IMG COUNT BS STEP [OFFSET [PATTERN]]\n"
		"       qcow2_io create OVL BASE [raw|qcow2]\n");
	return 2;
}

static int num(const char *s, uint64_t *v)
{
	char *end;

	errno = 0;
	*v = strtoull(s, &end, 0);
	if (errno || end == s || *end) {
		fprintf(stderr, "qcow2_io: '%s' is not a number\n", s);
		return -1;
	}
	return 0;
}

/* The offsets of a run: qemu-img bench's (7.2) walk, or a seeded xorshift64*. */
struct offsets {
	bool rand;
	uint64_t state, next, step, bs, size;
};

static void offsets_init(struct offsets *o, bool rand, uint64_t seed, uint64_t offset,
			 uint64_t step, uint64_t bs, uint64_t size)
{
	*o = (struct offsets){ .rand = rand, .next = offset, .step = step, .bs = bs, .size = size };
	/* splitmix64 of the seed, so that seeds 0, 1, 2... give unrelated non-zero states. */
	uint64_t z = seed + 0x9e3779b97f4a7c15ull;
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	o->state = (z ^ (z >> 31)) | 1;
}

/* The next request's offset; -1 (as UINT64_MAX) if it would go past the end. */
static uint64_t offsets_next(struct offsets *o)
{
	uint64_t off;

	if (o->rand) {
		o->state ^= o->state >> 12;
		o->state ^= o->state << 25;
		o->state ^= o->state >> 27;
		uint64_t x = o->state * 0x2545f4914f6cdd1dull;
		off = (x >> 11) % (o->size / o->bs) * o->bs;
	} else {
		/* b->offset += b->step; b->offset %= b->image_size; (qemu-img.c, bench_cb) */
		off = o->next;
		o->next = (o->next + o->step) % o->size;
	}
	return off + o->bs <= o->size ? off : UINT64_MAX;
}

struct slot {
	struct disk_req req;
	struct iovec v;
	bool busy;
};

static unsigned done_count;
static struct slot *done_list[QD_MAX];

static void on_complete(struct disk_req *r)
{
	done_list[done_count++] = (struct slot *)r; /* req is the slot's first member */
}

struct run {
	const char *cmd, *path;
	bool write, engine, rand, direct;
	enum disk_engine aio;
	uint64_t count, bs, step, offset, pattern, seed, qd;
};

static int open_disk(struct disk *d, const struct run *rr, bool readonly, struct loop *loop)
{
	struct disk_open_args a = { .path = rr->path,
				    .readonly = readonly,
				    .direct = rr->direct,
				    .engine = rr->aio,
				    .format = DISK_FORMAT_QCOW2,
				    .loop = loop };
	const char *why = "";
	int r = disk_open(d, &a, &why);

	if (r)
		fprintf(stderr, "qcow2_io: %s %s: %s\n", rr->path, why, strerror(-r));
	return r;
}

static int fail_at(const struct run *rr, uint64_t off, int r)
{
	fprintf(stderr, "qcow2_io: %s of %llu bytes at %llu: %s\n", rr->cmd,
		(unsigned long long)rr->bs, (unsigned long long)off, strerror(-r));
	return 1;
}

static int past_end(const struct run *rr, uint64_t size)
{
	fprintf(stderr,
		"qcow2_io: a request of %llu bytes from offset %llu (step %llu) goes past the end "
		"of the %llu-byte disk\n",
		(unsigned long long)rr->bs, (unsigned long long)rr->offset,
		(unsigned long long)rr->step, (unsigned long long)size);
	return 2;
}

static int run_io(const struct run *rr)
{
	struct disk d;
	struct offsets o;
	/* There is no loop_destroy: a static pointer keeps LeakSanitizer quiet. */
	static struct loop *loop;
	uint64_t qd = rr->engine ? rr->qd : 1;
	size_t bsz = (rr->bs + 4095) / 4096 * 4096;

	loop = loop_create();
	struct slot *slots = calloc(qd, sizeof(*slots));
	uint8_t *bufs = aligned_alloc(4096, bsz * qd);
	if (!loop || !slots || !bufs) {
		fprintf(stderr, "qcow2_io: out of memory\n");
		return 1;
	}
	memset(bufs, rr->write ? (int)rr->pattern : 0, bsz * qd); /* touched before the clock */
	double t0 = now();
	if (open_disk(&d, rr, !rr->write, loop))
		return 1;
	double t_open = now() - t0;
	offsets_init(&o, rr->rand, rr->seed, rr->offset, rr->step, rr->bs, d.size);
	for (uint64_t i = 0; i < qd; i++) {
		slots[i].v = (struct iovec){ bufs + i * bsz, rr->bs };
		slots[i].req = (struct disk_req){ .op = rr->write ? DISK_WRITE : DISK_READ,
						  .len = rr->bs,
						  .iov = &slots[i].v,
						  .iovcnt = 1,
						  .complete = on_complete };
	}
	uint64_t submitted = 0, completed = 0, max_inflight = 0, inflight = 0;
	double secs = 0, t_flush = 0;
	int r = 0;
	t0 = now();
	if (!rr->engine) {
		struct disk_req *req = &slots[0].req;
		for (; submitted < rr->count; submitted++) {
			if ((req->offset = offsets_next(&o)) == UINT64_MAX) {
				disk_close(&d);
				return past_end(rr, d.size);
			}
			if ((r = disk_do_sync(&d, req))) {
				disk_close(&d);
				return fail_at(rr, req->offset, r);
			}
		}
		completed = submitted;
		max_inflight = 1;
	} else {
		/* Fill the queue, then one new request for each that completes. */
		for (uint64_t i = 0; i < qd && submitted < rr->count; i++, submitted++) {
			if ((slots[i].req.offset = offsets_next(&o)) == UINT64_MAX) {
				disk_close(&d);
				return past_end(rr, d.size);
			}
			slots[i].busy = true;
			inflight++;
			disk_submit(&d, &slots[i].req);
		}
		max_inflight = inflight;
		while (completed < rr->count) {
			done_count = 0;
			int e = loop_run_once(loop, -1);
			if (e < 0) {
				fprintf(stderr, "qcow2_io: loop_run_once: %s\n", strerror(-e));
				disk_close(&d);
				return 1;
			}
			for (unsigned k = 0; k < done_count; k++) {
				struct slot *s = done_list[k];
				s->busy = false;
				inflight--;
				completed++;
				if (s->req.result && !r)
					r = fail_at(rr, s->req.offset, s->req.result);
				if (r || submitted >= rr->count)
					continue;
				if ((s->req.offset = offsets_next(&o)) == UINT64_MAX) {
					r = past_end(rr, d.size);
					continue;
				}
				s->busy = true;
				inflight++;
				submitted++;
				disk_submit(&d, &s->req);
			}
			if (inflight > max_inflight)
				max_inflight = inflight;
			if (r && !inflight)
				break;
		}
	}
	secs = now() - t0;
	if (r) {
		disk_close(&d);
		return r;
	}
	if (rr->write) {
		t0 = now();
		r = disk_flush_now(&d);
		t_flush = now() - t0;
		if (r) {
			fprintf(stderr, "qcow2_io: flush: %s\n", strerror(-r));
			disk_close(&d);
			return 1;
		}
	}
	t0 = now();
	const char *ename = rr->engine ? disk_engine_name(&d) : "sync";
	disk_close(&d);
	double t_close = now() - t0;
	free(bufs);
	free(slots);
	printf("result mode=%s path=%s engine=%s qd=%llu max_inflight=%llu offsets=%s count=%llu "
	       "bs=%llu bytes=%llu secs=%.6f flush_secs=%.6f open_secs=%.6f close_secs=%.6f\n",
	       rr->cmd, rr->path, ename, (unsigned long long)qd, (unsigned long long)max_inflight,
	       rr->rand ? "rand" : "step", (unsigned long long)completed,
	       (unsigned long long)rr->bs, (unsigned long long)(completed * rr->bs), secs, t_flush,
	       t_open, t_close);
	return 0;
}

static int run_verify(const struct run *rr)
{
	struct disk d;
	struct offsets o;
	static struct loop *loop;
	uint64_t misses = 0, first_miss = UINT64_MAX;

	loop = loop_create();
	uint8_t *buf = aligned_alloc(4096, (rr->bs + 4095) / 4096 * 4096);
	if (!loop || !buf) {
		fprintf(stderr, "qcow2_io: out of memory\n");
		return 1;
	}
	double t0 = now();
	if (open_disk(&d, rr, true, loop))
		return 1;
	offsets_init(&o, rr->rand, rr->seed, rr->offset, rr->step, rr->bs, d.size);
	struct iovec v = { buf, rr->bs };
	struct disk_req req = { .op = DISK_READ, .len = rr->bs, .iov = &v, .iovcnt = 1 };
	for (uint64_t i = 0; i < rr->count; i++) {
		if ((req.offset = offsets_next(&o)) == UINT64_MAX) {
			disk_close(&d);
			return past_end(rr, d.size);
		}
		int r = disk_do_sync(&d, &req);
		if (r) {
			disk_close(&d);
			return fail_at(rr, req.offset, r);
		}
		for (uint64_t k = 0; k < rr->bs; k++)
			if (buf[k] != rr->pattern) {
				if (!misses)
					first_miss = req.offset + k;
				misses++;
				break;
			}
	}
	disk_close(&d);
	free(buf);
	printf("result mode=verify count=%llu bs=%llu misses=%llu first_miss=%lld secs=%.6f\n",
	       (unsigned long long)rr->count, (unsigned long long)rr->bs,
	       (unsigned long long)misses, misses ? (long long)first_miss : -1LL, now() - t0);
	if (misses)
		fprintf(stderr,
			"qcow2_io: %llu of %llu blocks do not read back as 0x%02llx (first byte "
			"off at %llu)\n",
			(unsigned long long)misses, (unsigned long long)rr->count,
			(unsigned long long)rr->pattern, (unsigned long long)first_miss);
	return misses ? 1 : 0;
}

static int run_create(const char *ovl, const char *base, const char *fmt)
{
	char err[512];
	struct qcow2_create_args a = { .path = ovl, .backing = base, .backing_format = fmt };

	double t0 = now();
	int r = qcow2_create(&a, err, sizeof(err));
	double secs = now() - t0;
	if (r) {
		fprintf(stderr, "qcow2_io: %s\n", err);
		return 1;
	}
	printf("result mode=create secs=%.6f\n", secs);
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = { { "engine", no_argument, NULL, 'e' },
					      { "qd", required_argument, NULL, 'q' },
					      { "rand", required_argument, NULL, 'r' },
					      { "cache", required_argument, NULL, 'c' },
					      { "aio", required_argument, NULL, 'a' },
					      { "help", no_argument, NULL, 'h' },
					      { 0 } };
	struct run rr = { .pattern = 0xa5, .qd = 1, .aio = DISK_ENGINE_THREADS };
	bool aio_given = false;
	bool qd_given = false;
	int c;

	log_set_level(LOG_WARN);
	while ((c = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
		switch (c) {
		case 'e':
			rr.engine = true;
			break;
		case 'a':
			if (strcmp(optarg, "io_uring") && strcmp(optarg, "threads"))
				return usage();
			rr.aio = strcmp(optarg, "threads") ? DISK_ENGINE_IO_URING :
							     DISK_ENGINE_THREADS;
			aio_given = true;
			break;
		case 'q':
			if (num(optarg, &rr.qd) || !rr.qd || rr.qd > QD_MAX) {
				fprintf(stderr, "qcow2_io: --qd: 1..%d\n", QD_MAX);
				return 2;
			}
			qd_given = true;
			break;
		case 'r':
			if (num(optarg, &rr.seed))
				return 2;
			rr.rand = true;
			break;
		case 'c':
			if (strcmp(optarg, "none") && strcmp(optarg, "writeback"))
				return usage();
			rr.direct = !strcmp(optarg, "none");
			break;
		default:
			return usage();
		}
	}
	argc -= optind;
	argv += optind;
	if (argc < 1)
		return usage();
	rr.cmd = argv[0];
	if (!strcmp(rr.cmd, "create")) {
		if ((argc != 3 && argc != 4) || rr.engine || rr.rand || qd_given || rr.direct)
			return usage();
		return run_create(argv[1], argv[2], argc == 4 ? argv[3] : NULL);
	}
	bool verify = !strcmp(rr.cmd, "verify");
	rr.write = !strcmp(rr.cmd, "write");
	if (!verify && !rr.write && strcmp(rr.cmd, "read"))
		return usage();
	/* write, verify: 5..7 words; read: 5 or 6. */
	if (argc < 5 || argc > (rr.write || verify ? 7 : 6))
		return usage();
	if (verify && (rr.engine || qd_given || rr.direct))
		return usage();
	if (aio_given && !rr.engine) {
		fprintf(stderr, "qcow2_io: --aio needs --engine\n");
		return 2;
	}
	if (qd_given && rr.qd > 1 && !rr.engine) {
		fprintf(stderr, "qcow2_io: --qd above 1 needs --engine\n");
		return 2;
	}
	rr.path = argv[1];
	if (num(argv[2], &rr.count) || num(argv[3], &rr.bs) || num(argv[4], &rr.step) ||
	    (argc > 5 && num(argv[5], &rr.offset)) || (argc > 6 && num(argv[6], &rr.pattern)))
		return usage();
	if (!rr.count || !rr.bs || rr.bs % 512 || rr.offset % 512 || rr.step % 512 ||
	    rr.pattern > 255) {
		fprintf(stderr, "qcow2_io: COUNT, BS > 0; BS, STEP, OFFSET multiples of 512; "
				"PATTERN a byte\n");
		return 2;
	}
	return verify ? run_verify(&rr) : run_io(&rr);
}
