/*
 * --config-file: Firecracker's JSON document (the shape of GET /vm/config), applied
 * section by section through the same handlers as the API, so both refuse the same input
 * with the same words. Errors exit with status 2 and name the section.
 */
#include "api/api.h"
#include "api/json_in.h"
#include "core/log.h"
#include "core/util.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define CONFIG_FILE_MAX (1024 * 1024)
#define ERR_MAX 512

static const char *const sections[] = { "boot-source",
					"drives",
					"machine-config",
					"network-interfaces",
					"vsock",
					"logger",
					"metrics",
					"entropy",
					"balloon",
					"cpu-config",
					"mmds-config",
					"memory-hotplug",
					"pmem",
					"serial",
					NULL };

static struct json_object *section(struct json_object *root, const char *name, json_type type,
				   const char *path)
{
	struct json_object *o = NULL;

	if (!json_object_object_get_ex(root, name, &o) || !o)
		return NULL;
	if (!json_object_is_type(o, type))
		die_usage("--config-file: '%s': \"%s\" must be %s", path, name,
			  type == json_type_array ? "an array" : "an object");
	return o;
}

/* An array section: each element is one resource with its id inside. */
static void each(struct api *a, struct json_object *root, const char *name, const char *id_key,
		 const char *path,
		 int (*fn)(struct api *, const char *, struct json_object *, bool, char *, size_t))
{
	struct json_object *arr = section(root, name, json_type_array, path);
	char err[ERR_MAX];

	for (size_t i = 0; arr && i < json_object_array_length(arr); i++) {
		struct json_object *o = json_object_array_get_idx(arr, i), *idv = NULL;
		if (!json_object_is_type(o, json_type_object))
			die_usage("--config-file: '%s': %s[%zu] must be an object", path, name, i);
		if (!json_object_object_get_ex(o, id_key, &idv) ||
		    !json_object_is_type(idv, json_type_string))
			die_usage("--config-file: '%s': %s[%zu]: '%s' is required (a string)", path,
				  name, i, id_key);
		if (fn(a, json_object_get_string(idv), o, false, err, sizeof(err)))
			die_usage("--config-file: '%s': %s[%zu]: %s", path, name, i, err);
	}
}

void api_config_file(struct api *a, const char *path)
{
	static const char *const not_impl[] = {
		"balloon", "cpu-config", "mmds-config", "memory-hotplug", "pmem", "serial", NULL
	};
	uint8_t *text;
	size_t len;
	char err[ERR_MAX];
	int r = file_read_all(path, &text, &len);

	if (r == -EINVAL)
		die_usage("--config-file: '%s' is not a regular file", path);
	if (r)
		die_usage("--config-file: cannot read '%s': %s", path, strerror(-r));
	if (len > CONFIG_FILE_MAX)
		die_usage("--config-file: '%s' is larger than %d bytes", path, CONFIG_FILE_MAX);
	struct json_object *root = jin_parse_object((const char *)text, len, err, sizeof(err));
	free(text);
	if (!root)
		die_usage("--config-file: '%s': %s", path, err);
	if (jin_only(root, sections, "the config file", err, sizeof(err)))
		die_usage("--config-file: '%s': %s", path, err);
	for (const char *const *s = not_impl; *s; s++)
		if (jin_has(root, *s))
			die_usage("--config-file: '%s': \"%s\" is not implemented in tern", path,
				  *s);

	/* The logger first, so that what follows is logged where the file says. */
	static const struct {
		const char *name;
		int (*fn)(struct api *, struct json_object *, char *, size_t);
	} singles[] = {
		{ "logger", res_logger },	    { "metrics", res_metrics },
		{ "boot-source", res_boot_source }, { "vsock", res_vsock },
		{ "entropy", res_entropy },
	};
	for (size_t i = 0; i < sizeof(singles) / sizeof(singles[0]); i++) {
		struct json_object *o = section(root, singles[i].name, json_type_object, path);
		if (o && singles[i].fn(a, o, err, sizeof(err)))
			die_usage("--config-file: '%s': \"%s\": %s", path, singles[i].name, err);
	}
	struct json_object *mc = section(root, "machine-config", json_type_object, path);
	if (mc && res_machine_config(a, mc, false, err, sizeof(err)))
		die_usage("--config-file: '%s': \"machine-config\": %s", path, err);
	each(a, root, "drives", "drive_id", path, res_drive);
	each(a, root, "network-interfaces", "iface_id", path, res_net_iface);
	if (!a->cfg.kernel)
		die_usage("--config-file: '%s': \"boot-source\" with \"kernel_image_path\" is "
			  "required",
			  path);
	json_object_put(root);
}
