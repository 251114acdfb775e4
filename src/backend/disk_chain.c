/* What an image reads besides itself (disk_chain.h). */
#include "backend/disk_chain.h"
#include "backend/disk_overlay.h"
#include "backend/qcow2.h"
#include "core/util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int qcow2_chain(const char *path, char (*files)[DISK_CHAIN_PATH_MAX], int max, bool lock,
		       char *err, size_t n)
{
	struct qcow2_chain_entry *c = calloc(QCOW2_CHAIN_MAX + 1, sizeof(*c));

	if (!c)
		return fail_msg(err, n, -ENOMEM, "out of memory");
	int k = lock ? qcow2_describe(path, c, QCOW2_CHAIN_MAX + 1, err, n) :
		       qcow2_describe_unlocked(path, c, QCOW2_CHAIN_MAX + 1, err, n);
	for (int i = 1; i < k && i - 1 < max; i++)
		snprintf(files[i - 1], DISK_CHAIN_PATH_MAX, "%s", c[i].path);
	free(c);
	return k < 0 ? k : k - 1;
}

static int chain_of(const char *path, enum disk_format format, char (*files)[DISK_CHAIN_PATH_MAX],
		    int max, bool lock, char *err, size_t n)
{
	int r;

	if ((r = disk_format_resolve(path, format, &format)))
		return fail_msg(err, n, r, "cannot read its first bytes: %s", strerror(-r));
	if (format == DISK_FORMAT_QCOW2)
		return qcow2_chain(path, files, max, lock, err, n);
	if (format != DISK_FORMAT_OVERLAY)
		return 0;
	if ((r = overlay_check(path, err, n)))
		return r;
	char base[OVERLAY_BASE_PATH_MAX + 1];
	if ((r = overlay_base_of(path, base, sizeof(base))))
		return fail_msg(err, n, r, "not a sound overlay");
	if (max > 0)
		snprintf(files[0], DISK_CHAIN_PATH_MAX, "%s", base);
	return 1;
}

int disk_chain(const char *path, enum disk_format format, char (*files)[DISK_CHAIN_PATH_MAX],
	       int max, char *err, size_t n)
{
	return chain_of(path, format, files, max, true, err, n);
}

int disk_chain_list(const char *path, enum disk_format format, char (**files)[DISK_CHAIN_PATH_MAX])
{
	char why[320];

	*files = NULL;
	if (format == DISK_FORMAT_RAW)
		return 0;
	if (!(*files = calloc(QCOW2_CHAIN_MAX, sizeof(**files))))
		return -ENOMEM;
	int k = chain_of(path, format, *files, QCOW2_CHAIN_MAX, false, why, sizeof(why));
	if (k <= 0) {
		free(*files);
		*files = NULL;
		return 0;
	}
	return k < QCOW2_CHAIN_MAX ? k : QCOW2_CHAIN_MAX;
}
