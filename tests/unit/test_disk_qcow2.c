/*
 * A qcow2 chain (qcow2 over qcow2 over raw) through the disk engine a VM uses, io_uring
 * with its thread pool (disk_engine_uring_qcow2): batches of concurrent reads, writes,
 * write-zeroes, discards and flushes, in odd iovec splits, follow an in-memory model;
 * both halves of the engine must have run requests; the image then reads as the model
 * through qcow2's own code after a reopen, and qemu-img finds it clean and equal.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "backend/disk.h"
#include "backend/qcow2.h"
#include "core/loop.h"
#include "qcow2_util.h"
#include "tmpfile.h"
#include "unit.h"

#define SIZE (8u << 20)
#define BATCH 24

static struct loop *loop;
static int completions;

struct op {
	struct disk_req r;
	struct iovec iov[4];
	uint8_t *buf;
	int done;
};

static void on_complete(struct disk_req *r)
{
	((struct op *)r)->done++;
	completions++;
}

/* Does [off, off+len) overlap an earlier request of the batch? */
static bool overlaps(const struct op *ops, int n, uint64_t off, uint64_t len)
{
	for (int i = 0; i < n; i++)
		if (ops[i].r.op != DISK_FLUSH && off < ops[i].r.offset + ops[i].r.len &&
		    ops[i].r.offset < off + len)
			return true;
	return false;
}

/* Splits buf into up to four pieces of random lengths. */
static int split(struct op *o, uint64_t len, uint64_t *s)
{
	uint64_t done = 0;
	int n = 0;

	while (done < len && n < 4) {
		uint64_t l = n == 3 ? len - done : q2t_rand(s) % (len - done) + 1;
		o->iov[n++] = (struct iovec){ o->buf + done, l };
		done += l;
	}
	return n;
}

/*
 * One batch: BATCH requests on ranges that do not overlap, submitted between plug and
 * unplug as a kick's are; the model takes writes at once (nothing else in the batch
 * reads their range) and the reads are checked when all completed. false on a mismatch.
 */
static bool batch(struct disk *d, uint8_t *model, uint64_t *s)
{
	static struct op ops[BATCH];
	bool ok = true;
	int n = 0;

	memset(ops, 0, sizeof(ops));
	for (int tries = 0; n < BATCH && tries < 4 * BATCH; tries++) {
		struct op *o = &ops[n];
		unsigned k = (unsigned)(q2t_rand(s) % 100);
		/* Mostly one cluster or less (the ring's share), some long runs across several. */
		uint64_t len = 512 * (k < 70 ? q2t_rand(s) % 16 + 1 : q2t_rand(s) % 600 + 1);
		uint64_t off = 512 * (q2t_rand(s) % ((SIZE - len) / 512 + 1));
		if (k >= 97) {
			o->r = (struct disk_req){ .op = DISK_FLUSH };
		} else {
			if (overlaps(ops, n, off, len))
				continue;
			enum disk_op op = k < 50 ? DISK_READ :
					  k < 85 ? DISK_WRITE :
					  k < 91 ? DISK_WRITE_ZEROES :
						   DISK_DISCARD;
			o->r = (struct disk_req){ .op = op, .offset = off, .len = len };
			if (op == DISK_READ || op == DISK_WRITE) {
				o->buf = malloc(len);
				if (!o->buf)
					return false;
				if (op == DISK_WRITE)
					q2t_fill(o->buf, len, q2t_rand(s));
				else
					memset(o->buf, 0xee, len);
				o->r.iov = o->iov;
				o->r.iovcnt = split(o, len, s);
			}
			if (op == DISK_WRITE)
				memcpy(model + off, o->buf, len);
			else if (op == DISK_WRITE_ZEROES || op == DISK_DISCARD)
				memset(model + off, 0, len);
		}
		o->r.result = 1;
		o->r.complete = on_complete;
		n++;
	}
	completions = 0;
	disk_plug(d);
	for (int i = 0; i < n; i++)
		disk_submit(d, &ops[i].r);
	disk_unplug(d);
	for (int i = 0; i < 1000 && completions < n; i++)
		loop_run_once(loop, 10);
	for (int i = 0; i < n; i++) {
		struct op *o = &ops[i];
		if (o->done != 1 || o->r.result != 0) {
			printf("  op %d (%d at %llu+%llu): done %d, result %d\n", i, o->r.op,
			       (unsigned long long)o->r.offset, (unsigned long long)o->r.len,
			       o->done, o->r.result);
			ok = false;
		} else if (o->r.op == DISK_READ && memcmp(o->buf, model + o->r.offset, o->r.len)) {
			printf("  read at %llu+%llu differs from the model\n",
			       (unsigned long long)o->r.offset, (unsigned long long)o->r.len);
			ok = false;
		}
		free(o->buf);
	}
	return ok;
}

TEST(disk_qcow2_chain_on_io_uring_and_threads_follows_a_model)
{
	struct tmp t;
	char dir[256], top[512], start[512], raw[512];
	struct disk d;
	const char *why = NULL;
	size_t len;
	uint64_t s = 0x9e3779b97f4a7c15ull;

	if (!loop)
		loop = loop_create();
	REQUIRE(loop && tmp_make(&t, "x"));
	snprintf(dir, sizeof(dir), "%s", t.dir);
	uint8_t *b = malloc(SIZE);
	REQUIRE(b);
	q2t_fill(b, 5u << 20, 7); /* the raw base is shorter than the disk: zeros beyond */
	snprintf(raw, sizeof(raw), "%s/base.raw", dir);
	REQUIRE(q2t_write_file(raw, b, 5u << 20));
	REQUIRE(q2t_sh("cd '%s' && qemu-img create -f qcow2 -o cluster_size=4096 -b base.raw "
		       "-F raw mid.qcow2 %u && qemu-io -c 'write -P 0x44 1M 333k' -c 'write -z "
		       "2M 64k' -c 'write -c -P 0x21 3M 64k' mid.qcow2",
		       dir, SIZE) == 0);
	snprintf(top, sizeof(top), "%s/top.qcow2", dir);
	REQUIRE(q2t_sh("cd '%s' && qemu-img create -f qcow2 -b mid.qcow2 -F qcow2 top.qcow2 && "
		       "qemu-io -c 'write -P 0x5a 64k 256k' -c 'write -P 0x66 6M 1M' top.qcow2",
		       dir) == 0);
	snprintf(start, sizeof(start), "%s/start.raw", dir);
	REQUIRE(q2t_sh("qemu-img convert -O raw '%s' '%s'", top, start) == 0);
	free(b);
	uint8_t *model = q2t_file(start, &len);
	REQUIRE(model && len == SIZE);

	struct disk_open_args a = { .path = top, .format = DISK_FORMAT_AUTO, .loop = loop };
	REQUIRE(disk_open(&d, &a, &why) == 0);
	REQUIRE(!strcmp(disk_engine_name(&d), "io_uring+threads"));
	bool ok = true;
	for (int i = 0; i < 120 && ok; i++)
		ok = batch(&d, model, &s);
	CHECK(ok);
	unsigned long long placed = atomic_load(&d.placed);
	printf("  %llu requests placed on the ring (of %d)\n", placed, 120 * BATCH);
	/* Both halves ran: the ring's share, and qcow2's own code for the rest. */
	CHECK(placed > 120 * BATCH / 4 && placed < 120 * BATCH);
	disk_close(&d);

	struct q2t_img img;
	REQUIRE(q2t_open(&img, top, true) == 0);
	uint8_t *got = q2t_read_all(img.q);
	CHECK(got && memcmp(got, model, SIZE) == 0);
	free(got);
	q2t_close(&img);
	CHECK(q2t_sh("qemu-img check '%s'", top) == 0);
	REQUIRE(q2t_write_file(start, model, SIZE));
	CHECK(q2t_sh("qemu-img compare -f raw -F qcow2 '%s' '%s'", start, top) == 0);
	free(model);
	q2t_rmdir(dir);
}
