/* The command line of a restart, with the drives that moved (see restart_args.h). */
#include "vmm/restart_args.h"
#include "core/util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * The --disk value spec with path= and format= set to the drive's: every other key stays
 * as it was given (config_parse_disk() splits on commas, so no value holds one).
 */
static char *respec(const char *spec, const struct disk_config *d)
{
	size_t cap = strlen(spec) + strlen(d->path) + 32;
	char *out = malloc(cap), *copy = strdup(spec), *save = NULL;
	size_t len = 0;

	if (!out || !copy) {
		free(out);
		free(copy);
		return NULL;
	}
	len += (size_t)snprintf(out, cap, "path=%s,format=%s", d->path,
				disk_format_name(d->format));
	for (char *kv = strtok_r(copy, ",", &save); kv; kv = strtok_r(NULL, ",", &save)) {
		if (!strncmp(kv, "path=", 5) || !strncmp(kv, "format=", 7))
			continue;
		len += (size_t)snprintf(out + len, cap > len ? cap - len : 0, ",%s", kv);
	}
	free(copy);
	if (len >= cap) {
		free(out);
		return NULL;
	}
	return out;
}

/* v, and each word in it that is not argv's. */
static void free_args(char **v, char **argv, int argc)
{
	for (int j = 0; j < argc; j++)
		if (v[j] != argv[j])
			free(v[j]);
	free(v);
}

char **restart_args(int argc, char **argv, const struct vmm_config *cfg, char *err, size_t n)
{
	char **v;

	for (unsigned int i = 0; i < cfg->ndisks; i++)
		if (cfg->disks[i].swapped && !cfg->disks[i].arg) {
			fail_msg(err, n, -EINVAL,
				 "disk %u moved to '%s' while the VM ran but was not given by "
				 "--disk: a restart would boot its old image",
				 i, cfg->disks[i].path);
			return NULL;
		}
	if (!(v = calloc((size_t)argc + 1, sizeof(*v)))) {
		fail_msg(err, n, -ENOMEM, "out of memory");
		return NULL;
	}
	memcpy(v, argv, (size_t)argc * sizeof(*v));
	for (unsigned int i = 0; i < cfg->ndisks; i++) {
		const struct disk_config *d = &cfg->disks[i];
		if (!d->swapped)
			continue;
		/* getopt_long's optarg: the next word (--disk X) or this one's tail (--disk=X). */
		int j = 0;
		while (j < argc && !(d->arg >= argv[j] && d->arg <= argv[j] + strlen(argv[j])))
			j++;
		char *spec = j < argc ? respec(d->arg, d) : NULL;
		char *word = spec ? malloc((size_t)(d->arg - argv[j]) + strlen(spec) + 1) : NULL;
		if (!word) {
			free(spec);
			fail_msg(err, n, -ENOMEM, "cannot rewrite disk %u's --disk", i);
			free_args(v, argv, argc);
			return NULL;
		}
		memcpy(word, argv[j], (size_t)(d->arg - argv[j]));
		strcpy(word + (d->arg - argv[j]), spec);
		free(spec);
		v[j] = word;
	}
	return v;
}
