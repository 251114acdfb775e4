/* /boot-source: kernel, initrd and command line. */
#include "api/api.h"
#include "api/json_in.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define BOOT_ARGS_MAX 4096
#define PATH_LEN_MAX 4095

/* Checked now, so that a wrong path is a 400 here rather than a failed InstanceStart. */
static int readable_file(const char *field, const char *path, char *err, size_t n)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return api_fail(err, n, "'%s': cannot open '%s': %s", field, path, strerror(errno));
	int r = fstat(fd, &st);
	close(fd);
	if (r < 0 || !S_ISREG(st.st_mode))
		return api_fail(err, n, "'%s': '%s' is not a regular file", field, path);
	return 0;
}

int res_boot_source(struct api *a, struct json_object *o, char *err, size_t n)
{
	static const char *const keys[] = { "kernel_image_path", "initrd_path", "boot_args", NULL };
	const char *kernel, *initrd = NULL, *args = NULL;
	int r;

	if ((r = api_preboot(a, err, n)) || (r = jin_only(o, keys, "/boot-source", err, n)))
		return r;
	if ((r = jin_string(o, "kernel_image_path", PATH_LEN_MAX, &kernel, err, n)) < 0)
		return r;
	if (!r || !*kernel)
		return api_fail(err, n, "'kernel_image_path' is required (a kernel file)");
	if ((r = readable_file("kernel_image_path", kernel, err, n)))
		return r;
	if ((r = jin_string(o, "initrd_path", PATH_LEN_MAX, &initrd, err, n)) < 0)
		return r;
	if (initrd && (r = readable_file("initrd_path", initrd, err, n)))
		return r;
	if ((r = jin_string(o, "boot_args", BOOT_ARGS_MAX, &args, err, n)) < 0)
		return r;

	char *k = strdup(kernel), *i = initrd ? strdup(initrd) : NULL;
	char *b = args ? strdup(args) : NULL;
	if (!k || (initrd && !i) || (args && !b)) {
		free(k);
		free(i);
		free(b);
		return api_fail(err, n, "out of memory");
	}
	/* PUT replaces the whole resource: an omitted initrd or boot_args is dropped. */
	free((char *)a->cfg.kernel);
	free((char *)a->cfg.initrd);
	free(a->boot_args);
	a->cfg.kernel = k;
	a->cfg.initrd = i;
	a->boot_args = b;
	return 0;
}
