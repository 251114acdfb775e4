/*
 * Guest-side random reader for bench/isolation: 4 KiB reads at random 4 KiB-aligned offsets of
 * a block device, O_DIRECT (so each is one virtio-blk request), one at a time, for SECONDS.
 *   randread DEVICE SECONDS
 * Prints "RANDREAD reads N seconds S" (S on the guest clock); exit status 1 on an I/O error.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <linux/fs.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	uint64_t size = 0, x = 88172645463325252ULL, n = 0;
	void *buf;

	if (argc != 3)
		return fprintf(stderr, "usage: randread DEVICE SECONDS\n"), 2;
	int fd = open(argv[1], O_RDONLY | O_DIRECT);
	if (fd < 0 || ioctl(fd, BLKGETSIZE64, &size) < 0 || size < 4096 ||
	    posix_memalign(&buf, 4096, 4096))
		return perror(argv[1]), 1;
	double secs = atof(argv[2]), t0 = now(), t;
	do {
		for (int i = 0; i < 64; i++, n++) {
			x ^= x << 13, x ^= x >> 7, x ^= x << 17; /* xorshift64 */
			if (pread(fd, buf, 4096, (off_t)((x % (size / 4096)) * 4096)) != 4096)
				return perror("pread"), 1;
		}
	} while ((t = now() - t0) < secs);
	printf("RANDREAD reads %llu seconds %.3f\n", (unsigned long long)n, t);
	return 0;
}
