/*
 * Prints what a state file holds. The whole file is checked before the first line is
 * printed, so a bad file gives one error and no half-written listing.
 */
#include "vmstate/describe.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vmstate/vmstate.h"

/*
 * Device state is kilobytes per device; the guest's memory lives in its own file. A path
 * this large is something else, and reading it whole would only exhaust memory.
 */
#define DESCRIBE_MAX_FILE (1ULL << 30)

/*
 * Pretty-printers for payloads, by tag: each prints indented lines under its section's
 * line. The machine and memory payloads get theirs once their layouts are settled; until
 * then (and for every device) the line with the payload length is all there is.
 */
typedef void (*payload_printer)(FILE *out, const struct vmstate_section *s);

static const payload_printer printers[] = {
	[VMSTATE_TAG_MACHINE] = NULL,
	[VMSTATE_TAG_MEMORY] = NULL,
};

static payload_printer printer_for(uint32_t tag)
{
	return tag < sizeof(printers) / sizeof(printers[0]) ? printers[tag] : NULL;
}

int vmstate_describe_buf(const uint8_t *buf, size_t len, FILE *out, char *err, size_t errlen)
{
	struct vmstate_file f;
	int r = vmstate_file_parse(&f, buf, len, err, errlen);
	if (r)
		return r;

	errno = 0; /* so that a failed write below can say why */
	fprintf(out, "tern state file: format version %u, architecture x86-64 (%u)\n", f.version,
		f.arch);
	fprintf(out, "%u section%s, %zu bytes\n", f.nsections, f.nsections == 1 ? "" : "s", len);
	if (f.nsections)
		fprintf(out, "%7s  %-14s %8s %8s %10s\n", "section", "tag", "instance", "version",
			"bytes");
	for (unsigned int i = 0; i < f.nsections; i++) {
		const struct vmstate_section *s = &f.sections[i];
		const char *name = vmstate_tag_name(s->tag);
		char unknown[32];

		/* A tag from a newer tern: its number is what a developer can look up. */
		if (strcmp(name, "unknown") == 0) {
			snprintf(unknown, sizeof(unknown), "unknown(%u)", s->tag);
			name = unknown;
		}
		fprintf(out, "%7u  %-14s %8u %8u %10llu\n", i, name, s->instance, s->version,
			(unsigned long long)s->len);
		payload_printer print = printer_for(s->tag);
		if (print)
			print(out, s);
	}
	vmstate_file_free(&f);

	if (fflush(out) == EOF || ferror(out)) {
		r = errno ? -errno : -EIO;
		snprintf(err, errlen, "cannot write the description: %s", strerror(-r));
		return r;
	}
	return 0;
}

/* Reads all of fd into a new buffer (any kind of file: a regular one, a pipe ...). */
static int read_all(int fd, const char *path, uint8_t **out, size_t *outlen, char *err,
		    size_t errlen)
{
	struct stat st;
	size_t cap = 1 << 16, len = 0;
	uint8_t *buf = NULL;

	if (fstat(fd, &st) < 0) {
		int e = errno;
		snprintf(err, errlen, "%s: %s", path, strerror(e));
		return -e;
	}
	if (S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, "%s: is a directory, not a state file", path);
		return -EISDIR;
	}
	/* One read for a regular file: its size plus one byte to see the end at once. */
	if (S_ISREG(st.st_mode) && (unsigned long long)st.st_size < DESCRIBE_MAX_FILE)
		cap = (size_t)st.st_size + 1;
	for (;;) {
		if (len == cap || !buf) {
			size_t ncap = buf ? cap * 2 : cap;
			uint8_t *nbuf = realloc(buf, ncap);
			if (!nbuf) {
				free(buf);
				snprintf(err, errlen, "%s: out of memory", path);
				return -ENOMEM;
			}
			buf = nbuf;
			cap = ncap;
		}
		ssize_t r = read(fd, buf + len, cap - len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			int e = errno;
			free(buf);
			snprintf(err, errlen, "%s: %s", path, strerror(e));
			return -e;
		}
		if (r == 0)
			break;
		len += (size_t)r;
		if (len > DESCRIBE_MAX_FILE) {
			free(buf);
			snprintf(err, errlen, "%s: over %llu MiB, larger than any tern state file",
				 path, DESCRIBE_MAX_FILE >> 20);
			return -EFBIG;
		}
	}
	*out = buf;
	*outlen = len;
	return 0;
}

int vmstate_describe(const char *path, FILE *out, char *err, size_t errlen)
{
	char why[256];
	uint8_t *buf = NULL;
	size_t len = 0;

	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		int e = errno;
		snprintf(err, errlen, "%s: %s", path, strerror(e));
		return -e;
	}
	int r = read_all(fd, path, &buf, &len, err, errlen);
	close(fd);
	if (r)
		return r;
	r = vmstate_describe_buf(buf, len, out, why, sizeof(why));
	free(buf);
	/* Name the file: the caller may describe several. */
	if (r)
		snprintf(err, errlen, "%s: %s", path, why);
	return r;
}
