/*
 * `tern img info|create|commit|convert|resize`: disk images on this host, as qemu-img does
 * for QEMU's users (clones and snapshots leave qcow2 overlays that people need to look
 * into, merge and flatten). These work on files directly, not through ternd. commit and
 * convert are in img_copy.c, resize in img_resize.c.
 */
#include "cli/cli.h"
#include "cli/img.h"

#include "backend/disk.h"
#include "backend/qcow2.h"
#include "core/log.h"
#include "core/util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* "10G", "512M", "4096": bytes, binary suffixes K M G T; false when it is not one. */
bool img_parse_size(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;
	int shift = 0;

	if (!*s || *s == '-')
		return false;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s)
		return false;
	switch (*end) {
	case 'K':
	case 'k':
		shift = 10;
		end++;
		break;
	case 'M':
	case 'm':
		shift = 20;
		end++;
		break;
	case 'G':
	case 'g':
		shift = 30;
		end++;
		break;
	case 'T':
	case 't':
		shift = 40;
		end++;
		break;
	}
	if (*end || (shift && v > (UINT64_MAX >> shift)))
		return false;
	*out = (uint64_t)v << shift;
	return true;
}

void img_refuse_remote(const struct cli *c, const char *what)
{
	if (c->remote)
		die_usage("%s works on this host's files, not through --connect", what);
}

/* A size for people: "1 GiB" when exact, else "1.5 GiB", "512 B". */
static void human(uint64_t v, char *buf, size_t n)
{
	static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB" };
	double d = (double)v;
	int u = 0;

	while (d >= 1024 && u < 5) {
		d /= 1024;
		u++;
	}
	if (d == (double)(uint64_t)d)
		snprintf(buf, n, "%llu %s", (unsigned long long)d, units[u]);
	else
		snprintf(buf, n, "%.1f %s", d, units[u]);
}

static struct json_object *entry_json(const struct qcow2_chain_entry *e)
{
	struct json_object *o = json_object_new_object();

	json_object_object_add(o, "path", json_object_new_string(e->path));
	json_object_object_add(o, "format", json_object_new_string(e->format));
	json_object_object_add(o, "virtual_size", json_object_new_int64((int64_t)e->size));
	json_object_object_add(o, "allocated", json_object_new_int64((int64_t)e->allocated));
	if (!strcmp(e->format, "qcow2")) {
		json_object_object_add(o, "version", json_object_new_int((int)e->version));
		json_object_object_add(o, "cluster_size",
				       json_object_new_int64(1LL << e->cluster_bits));
		json_object_object_add(o, "dirty", json_object_new_boolean(e->dirty));
		json_object_object_add(o, "lazy_refcounts",
				       json_object_new_boolean(e->lazy_refcounts));
		json_object_object_add(o, "compression", json_object_new_string(e->compression));
	}
	return o;
}

static void entry_print(const struct qcow2_chain_entry *e, int depth)
{
	char size[32], alloc[32];

	human(e->size, size, sizeof(size));
	human(e->allocated, alloc, sizeof(alloc));
	printf("%s%s\n", depth ? "backing file: " : "image: ", e->path);
	printf("  format: %s", e->format);
	if (!strcmp(e->format, "qcow2"))
		printf(" (version %u, %llu-byte clusters, %s compression%s%s)", e->version,
		       1ULL << e->cluster_bits, e->compression,
		       e->lazy_refcounts ? ", lazy refcounts" : "",
		       e->dirty ? ", DIRTY: repaired when next opened for writing" : "");
	printf("\n  virtual size: %s (%llu bytes)\n  allocated here: %s\n", size,
	       (unsigned long long)e->size, alloc);
}

int cmd_img_info(struct cli *c, int argc, char **argv)
{
	const char *pos[1];
	struct qcow2_chain_entry *chain = calloc(QCOW2_CHAIN_MAX + 1, sizeof(*chain));
	char err[512];

	if (!chain)
		die("out of memory");
	if (cli_args(c, argc, argv, NULL, 0, pos, 1))
		return CLI_OK;
	img_refuse_remote(c, "img info");
	int k = img_describe(pos[0], chain, QCOW2_CHAIN_MAX + 1, err, sizeof(err));
	if (k < 0) {
		cli_error("%s: %s", pos[0], err);
		free(chain);
		return k == -ENOENT || k == -EACCES ? CLI_FAILED : CLI_USAGE;
	}
	if (c->json) {
		struct json_object *o = entry_json(&chain[0]), *a = json_object_new_array();
		for (int i = 1; i < k && i <= QCOW2_CHAIN_MAX; i++)
			json_object_array_add(a, entry_json(&chain[i]));
		json_object_object_add(o, "backing_chain", a);
		cli_print_json(o);
		json_object_put(o);
	} else {
		for (int i = 0; i < k && i <= QCOW2_CHAIN_MAX; i++)
			entry_print(&chain[i], i);
	}
	free(chain);
	return CLI_OK;
}

int cmd_img_create(struct cli *c, int argc, char **argv)
{
	const char *size_s = NULL, *backing = NULL, *cluster_s = NULL;
	bool lazy = false;
	const struct cli_opt opts[] = {
		{ .name = "size", .kind = CLI_OPT_STR, .out = &size_s },
		{ .name = "backing", .kind = CLI_OPT_STR, .out = &backing },
		{ .name = "cluster-size", .kind = CLI_OPT_STR, .out = &cluster_s },
		{ .name = "lazy-refcounts", .kind = CLI_OPT_FLAG, .out = &lazy },
	};
	const char *pos[1];
	uint64_t size = 0, cluster = 1u << QCOW2_CLUSTER_BITS_DEFAULT;
	char err[512];

	if (cli_args(c, argc, argv, opts, 4, pos, 1))
		return CLI_OK;
	img_refuse_remote(c, "img create");
	if (size_s && (!img_parse_size(size_s, &size) || !size || size % 512))
		die_usage("img create: --size '%s' must be a non-zero multiple of 512 bytes (K, M, "
			  "G, T suffixes: 10G)",
			  size_s);
	if (!size_s && !backing)
		die_usage("img create: give --size, or --backing to take the backing file's size");
	unsigned int bits = 0;
	if (cluster_s) {
		if (!img_parse_size(cluster_s, &cluster))
			cluster = 0;
		while (bits < 64 && (1ULL << bits) < cluster)
			bits++;
		if ((1ULL << bits) != cluster || bits < QCOW2_CLUSTER_BITS_MIN ||
		    bits > QCOW2_CLUSTER_BITS_MAX)
			die_usage("img create: --cluster-size '%s' must be a power of two from 512 "
				  "to 2M",
				  cluster_s);
	}
	enum disk_format bf = DISK_FORMAT_RAW;
	int r;
	if (backing && (r = disk_probe_path(backing, &bf))) {
		cli_error("img create: cannot read --backing '%s': %s", backing, strerror(-r));
		return CLI_FAILED;
	}
	struct qcow2_create_args a = { .path = pos[0],
				       .size = size,
				       .backing = backing,
				       .backing_format = !backing		 ? NULL :
							 bf == DISK_FORMAT_QCOW2 ? "qcow2" :
										   "raw",
				       .cluster_bits = bits,
				       .lazy_refcounts = lazy };
	if ((r = qcow2_create(&a, err, sizeof(err)))) {
		cli_error("img create: %s: %s", pos[0], err);
		return r == -EINVAL ? CLI_USAGE : CLI_FAILED;
	}
	if (c->json) {
		struct json_object *o = json_object_new_object();
		json_object_object_add(o, "path", json_object_new_string(pos[0]));
		cli_print_json(o);
		json_object_put(o);
	} else {
		printf("Created %s (qcow2%s%s)\n", pos[0], backing ? " in front of " : "",
		       backing ? backing : "");
	}
	return CLI_OK;
}

int cmd_img(struct cli *c, int argc, char **argv)
{
	char name[32];
	const struct cli_command *k;

	if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")))
		return help_print("img");
	if (argc < 2)
		die_usage("img: which? info, create, commit, convert or resize (tern help img)");
	snprintf(name, sizeof(name), "img-%.16s", argv[1]);
	if (!(k = cli_command_find(name)) || strchr(argv[1], '-'))
		die_usage("img: unknown subcommand '%s': info, create, commit, convert or resize",
			  argv[1]);
	argv[1] = (char *)k->name;
	return k->fn(c, argc - 1, argv + 1);
}
