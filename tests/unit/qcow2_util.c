/* Helpers for the qcow2 tests (qcow2_util.h). */
#include "qcow2_util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

int q2t_sh(const char *fmt, ...)
{
	char cmd[4096];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	char full[4200];
	snprintf(full, sizeof(full), getenv("Q2T_VERBOSE") ? "{ %s; }" : "{ %s; } >/dev/null 2>&1",
		 cmd);
	int st = system(full);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

const char *q2t_out(const char *fmt, ...)
{
	static char buf[65536];
	char cmd[4096];
	va_list ap;
	size_t len = 0;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	buf[0] = 0;
	FILE *p = popen(cmd, "r");
	if (!p)
		return buf;
	len = fread(buf, 1, sizeof(buf) - 1, p);
	buf[len] = 0;
	pclose(p);
	return buf;
}

int q2t_open(struct q2t_img *img, const char *path, bool readonly)
{
	memset(img, 0, sizeof(*img));
	img->fd = open(path, (readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC);
	if (img->fd < 0) {
		snprintf(img->err, sizeof(img->err), "%s: %s", path, strerror(errno));
		return -errno;
	}
	struct qcow2_open_args a = { .fd = img->fd, .path = path, .readonly = readonly };
	int r = qcow2_open(&img->q, &a, img->err, sizeof(img->err));
	if (r) {
		close(img->fd);
		img->fd = -1;
		if (getenv("Q2T_VERBOSE"))
			fprintf(stderr, "open %s: %s\n", path, img->err);
	}
	return r;
}

void q2t_close(struct q2t_img *img)
{
	if (img->q)
		qcow2_close(img->q);
	if (img->fd >= 0)
		close(img->fd);
	img->q = NULL;
	img->fd = -1;
}

uint8_t *q2t_file(const char *path, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;

	if (fd < 0 || fstat(fd, &st)) {
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	uint8_t *buf = malloc(st.st_size ? (size_t)st.st_size : 1);
	size_t got = 0;
	while (buf && got < (size_t)st.st_size) {
		ssize_t r = pread(fd, buf + got, (size_t)st.st_size - got, (off_t)got);
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	close(fd);
	*len = got;
	return buf;
}

uint8_t *q2t_read_all(struct qcow2 *q)
{
	uint64_t size = qcow2_size(q), pos = 0;
	uint8_t *buf = malloc(size ? size : 1);
	uint64_t s = size;

	while (buf && pos < size) {
		/* Requests of up to 3 MiB in 1..5 pieces of odd lengths. */
		uint64_t len = (q2t_rand(&s) % (3u << 20)) + 1;
		if (len > size - pos)
			len = size - pos;
		struct iovec v[5];
		int cnt = 0;
		uint64_t done = 0;
		while (done < len && cnt < 5) {
			uint64_t l = cnt == 4 ? len - done : (q2t_rand(&s) % (len - done)) + 1;
			v[cnt].iov_base = buf + pos + done;
			v[cnt].iov_len = l;
			done += l;
			cnt++;
		}
		if (qcow2_read(q, v, cnt, pos, len)) {
			free(buf);
			return NULL;
		}
		pos += len;
	}
	return buf;
}

bool q2t_write_file(const char *path, const uint8_t *buf, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

	if (fd < 0)
		return false;
	bool ok = len == 0 || write(fd, buf, len) == (ssize_t)len;
	close(fd);
	return ok;
}

uint64_t q2t_rand(uint64_t *s)
{
	*s = *s * 6364136223846793005ull + 1442695040888963407ull;
	return *s >> 33;
}

void q2t_fill(uint8_t *buf, size_t len, uint64_t seed)
{
	uint64_t s = seed;

	for (size_t i = 0; i < len; i++)
		buf[i] = (uint8_t)q2t_rand(&s);
}

bool q2t_qemu_reads(const char *dir, const char *img, const uint8_t *want, size_t len)
{
	char raw[4200];
	size_t got;

	snprintf(raw, sizeof(raw), "%s/q2t-flat.raw", dir);
	unlink(raw);
	if (q2t_sh("qemu-img convert -O raw '%s' '%s'", img, raw))
		return false;
	uint8_t *f = q2t_file(raw, &got);
	bool same = f && got == len && !memcmp(f, want, len);
	free(f);
	unlink(raw);
	return same;
}

void q2t_rmdir(const char *dir)
{
	if (dir[0])
		q2t_sh("rm -rf '%s'", dir);
}
