/*
 * Compressed clusters written by tern (qcow2_write_compressed, src/backend/qcow2_compress.c):
 * zlib and zstd, 4 KiB, 64 KiB and 2 MiB clusters, a short last cluster, data that does
 * not compress (written plain). qemu-img is the oracle: it reads the same bytes, counts
 * compressed clusters and finds the refcounts right, also after tern overwrote and
 * discarded some of them (host clusters holding several compressed ones).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "backend/qcow2.h"
#include "qcow2_util.h"
#include "tmpfile.h"
#include "unit.h"

/* Cluster i of the test data: text (compresses), random (does not) or zeros. */
static void cluster_data(uint8_t *p, size_t cs, unsigned i)
{
	if (i % 3 == 1) {
		q2t_fill(p, cs, 100 + i);
		return;
	}
	for (size_t k = 0; k < cs; k++)
		p[k] = (uint8_t)("tern writes compressed clusters "[(k + i) % 32]);
}

TEST(qcow2_writes_compressed_clusters_qemu_reads)
{
	static const unsigned bits[] = { 12, 16, 21 };

	for (int zstd = 0; zstd <= 1; zstd++)
		for (size_t b = 0; b < sizeof(bits) / sizeof(bits[0]); b++) {
			uint64_t cs = 1ull << bits[b], size = 9 * cs - 1024; /* a short last one */
			struct qcow2_create_args ca = { .cluster_bits = bits[b],
							.size = size,
							.zstd = zstd };
			struct tmp t;
			struct q2t_img img;
			char err[512];
			uint8_t *want = calloc(1, size);

			REQUIRE(want && tmp_make(&t, "c.qcow2"));
			ca.path = t.path;
			REQUIRE(qcow2_create(&ca, err, sizeof(err)) == 0);
			REQUIRE(q2t_open(&img, t.path, false) == 0);
			for (unsigned i = 0; i < 9; i++) {
				size_t len = i == 8 ? size - 8 * cs : cs;
				uint8_t *c = malloc(cs);
				REQUIRE(c);
				cluster_data(c, cs, i);
				if (i != 5) { /* 5 is left unallocated: zeros */
					memcpy(want + i * cs, c, len);
					CHECK(qcow2_write_compressed(img.q, i * cs, c, len) == 0);
				}
				free(c);
			}
			/* Refused: a cluster already there, an unaligned or short one. */
			CHECK(qcow2_write_compressed(img.q, 0, want, cs) == -EEXIST);
			CHECK(qcow2_write_compressed(img.q, 512, want, cs) == -EINVAL);
			CHECK(qcow2_write_compressed(img.q, 5 * cs, want, cs - 512) == -EINVAL);
			uint8_t *all = q2t_read_all(img.q);
			CHECK(all && !memcmp(all, want, size));
			free(all);
			q2t_close(&img);
			CHECK(q2t_sh("qemu-img check '%s'", t.path) == 0);
			/* The text clusters (0, 2, 3, 6, 8) compressed; 1, 4, 7 (random) plain. */
			CHECK(strstr(q2t_out("qemu-img check --output=json '%s'", t.path),
				     "\"compressed-clusters\": 5,"));
			CHECK(q2t_qemu_reads(t.dir, t.path, want, size));
			if (zstd)
				CHECK(strstr(q2t_out("qemu-img info '%s'", t.path),
					     "compression type: zstd"));
			/* Overwritten in part, and discarded: refcounts stay right. */
			REQUIRE(q2t_open(&img, t.path, false) == 0);
			uint8_t patch[1000];
			memset(patch, 0x77, sizeof(patch));
			struct iovec v = { patch, sizeof(patch) };
			CHECK(qcow2_write(img.q, &v, 1, 2 * cs + 100, sizeof(patch)) == 0);
			memcpy(want + 2 * cs + 100, patch, sizeof(patch));
			CHECK(qcow2_discard(img.q, 3 * cs, cs) == 0);
			memset(want + 3 * cs, 0, cs);
			CHECK(qcow2_flush(img.q) == 0);
			q2t_close(&img);
			CHECK(q2t_sh("qemu-img check '%s'", t.path) == 0);
			CHECK(q2t_qemu_reads(t.dir, t.path, want, size));
			free(want);
			q2t_rmdir(t.dir);
		}
}
