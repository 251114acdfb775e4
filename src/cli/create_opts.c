/* `tern create`'s options to a VM definition (create_opts.h). */
#include "cli/create_opts.h"

#include "core/util.h"
#include "daemon/vmdef.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DISK_ID_MAX 20 /* a virtio-blk serial, as ternd takes it */
#define BRIDGE_MAX 15  /* IFNAMSIZ - 1 */
#define DISK_SPEC "PATH[,readonly][,cache=none|writeback][,id=ID][,format=auto|raw|qcow2]"
#define NIC_SPEC "user[,mac=MAC][,hostfwd=tcp::HOSTPORT-:GUESTPORT]... or bridge=NAME[,mac=MAC]"

char *create_opts_abspath(const char *path)
{
	char cwd[PATH_MAX], *out;

	if (path[0] == '/')
		return strdup(path);
	if (!getcwd(cwd, sizeof(cwd)))
		return NULL;
	while (path[0] == '.' && path[1] == '/')
		path += 2;
	if (asprintf(&out, "%s%s%s", cwd, strcmp(cwd, "/") ? "/" : "", path) < 0)
		return NULL;
	return out;
}

static bool mac_ok(const char *m)
{
	if (strlen(m) != 17)
		return false;
	for (int i = 0; i < 17; i++)
		if (i % 3 == 2 ? m[i] != ':' : !isxdigit((unsigned char)m[i]))
			return false;
	/* The first octet's low bit marks multicast: a NIC's own address must not have it. */
	return !(strtoul((char[]){ m[0], m[1], 0 }, NULL, 16) & 1);
}

/* "tcp::HOSTPORT-:GUESTPORT", ports 1 to 65535: what ternd and tern-vmm's --net user take. */
static bool fwd_ok(const char *f)
{
	char host[8], guest[8];
	const char *dash;
	uint64_t v;

	if (strncmp(f, "tcp::", 5) || !(dash = strstr(f + 5, "-:")))
		return false;
	if ((size_t)(dash - (f + 5)) >= sizeof(host) || strlen(dash + 2) >= sizeof(guest))
		return false;
	snprintf(host, sizeof(host), "%.*s", (int)(dash - (f + 5)), f + 5);
	snprintf(guest, sizeof(guest), "%s", dash + 2);
	return parse_u64(host, 1, 65535, &v) && parse_u64(guest, 1, 65535, &v);
}

/* Splits "a,b=c" at its commas in place; false for an empty item. */
static bool split(char *s, char **items, size_t max, size_t *count)
{
	*count = 0;
	for (char *p; (p = strsep(&s, ","));) {
		if (!*p || *count == max)
			return false;
		items[(*count)++] = p;
	}
	return true;
}

/* items[i] is "key=value" for this key: its value, else NULL. */
static const char *value_of(const char *item, const char *key)
{
	size_t k = strlen(key);

	return !strncmp(item, key, k) && item[k] == '=' ? item + k + 1 : NULL;
}

int create_opts_disk(const char *spec, struct json_object **out, char *err, size_t n)
{
	char *copy = strdup(spec), *items[8], *path;
	const char *v;
	size_t count;
	bool ro = false, seen_cache = false, seen_id = false, seen_format = false;
	struct json_object *d;

	*out = NULL;
	if (!copy)
		return -ENOMEM;
	if (!split(copy, items, 8, &count) || !count) {
		free(copy);
		return fail_msg(err, n, -EINVAL, "--disk '%s': an empty part; it takes " DISK_SPEC,
				spec);
	}
	v = value_of(items[0], "path"); /* tern-vmm's --disk spelling works too */
	if (!(path = create_opts_abspath(v ? v : items[0]))) {
		free(copy);
		return -ENOMEM;
	}
	d = json_object_new_object();
	json_object_object_add(d, "path", json_object_new_string(path));
	free(path);
	int r = 0;
	for (size_t i = 1; i < count && !r; i++) {
		const char *it = items[i];
		if (!strcmp(it, "readonly") || !strcmp(it, "readonly=on")) {
			ro = true;
		} else if ((v = value_of(it, "cache"))) {
			if (seen_cache || (strcmp(v, "none") && strcmp(v, "writeback")))
				r = fail_msg(err, n, -EINVAL,
					     "--disk '%s': cache= takes none or writeback, once",
					     spec);
			else
				json_object_object_add(d, "cache", json_object_new_string(v));
			seen_cache = true;
		} else if ((v = value_of(it, "format"))) {
			/* overlay is not offered: tern makes none any more (docs/overlay.md). */
			if (seen_format ||
			    (strcmp(v, "auto") && strcmp(v, "raw") && strcmp(v, "qcow2")))
				r = fail_msg(err, n, -EINVAL,
					     "--disk '%s': format= takes auto, raw or qcow2, once",
					     spec);
			else
				json_object_object_add(d, "format", json_object_new_string(v));
			seen_format = true;
		} else if ((v = value_of(it, "id"))) {
			if (seen_id || !*v || strlen(v) > DISK_ID_MAX)
				r = fail_msg(err, n, -EINVAL,
					     "--disk '%s': id= takes 1 to %d characters, once",
					     spec, DISK_ID_MAX);
			else
				json_object_object_add(d, "id", json_object_new_string(v));
			seen_id = true;
		} else {
			r = fail_msg(err, n, -EINVAL,
				     "--disk '%s': unknown part '%s'; it takes " DISK_SPEC, spec,
				     it);
		}
	}
	if (ro)
		json_object_object_add(d, "readonly", json_object_new_boolean(true));
	free(copy);
	if (r) {
		json_object_put(d);
		return r;
	}
	*out = d;
	return 0;
}

int create_opts_nic(const char *spec, struct json_object **out, char *err, size_t n)
{
	char *copy = strdup(spec), *items[VMDEF_MAX_FWDS + 4];
	const char *v, *bridge;
	size_t count;
	struct json_object *o, *fwds = NULL;
	bool seen_mac = false;
	int r = 0;

	*out = NULL;
	if (!copy)
		return -ENOMEM;
	if (!split(copy, items, ARRAY_SIZE(items), &count) || !count) {
		free(copy);
		return fail_msg(err, n, -EINVAL,
				"--nic '%s': an empty part or too many; it takes " NIC_SPEC, spec);
	}
	bridge = value_of(items[0], "bridge");
	if (strcmp(items[0], "user") && !bridge) {
		r = fail_msg(err, n, -EINVAL,
			     "--nic '%s': starts with user or bridge=NAME; it takes " NIC_SPEC,
			     spec);
		free(copy);
		return r;
	}
	if (bridge && (!*bridge || strlen(bridge) > BRIDGE_MAX)) {
		r = fail_msg(err, n, -EINVAL, "--nic '%s': bridge= takes 1 to %d characters", spec,
			     BRIDGE_MAX);
		free(copy);
		return r;
	}
	o = json_object_new_object();
	json_object_object_add(o, "type", json_object_new_string(bridge ? "bridge" : "user"));
	if (bridge)
		json_object_object_add(o, "bridge", json_object_new_string(bridge));
	for (size_t i = 1; i < count && !r; i++) {
		const char *it = items[i];
		if ((v = value_of(it, "mac"))) {
			if (seen_mac || !mac_ok(v))
				r = fail_msg(err, n, -EINVAL,
					     "--nic '%s': mac= takes one unicast address "
					     "xx:xx:xx:xx:xx:xx",
					     spec);
			else
				json_object_object_add(o, "mac", json_object_new_string(v));
			seen_mac = true;
		} else if ((v = value_of(it, "hostfwd"))) {
			if (bridge) {
				r = fail_msg(err, n, -EINVAL,
					     "--nic '%s': hostfwd= is for user networking only",
					     spec);
			} else if (!fwd_ok(v)) {
				r = fail_msg(err, n, -EINVAL,
					     "--nic '%s': hostfwd= takes tcp::HOSTPORT-:GUESTPORT, "
					     "ports 1 to 65535",
					     spec);
			} else {
				if (!fwds)
					fwds = json_object_new_array();
				json_object_array_add(fwds, json_object_new_string(v));
			}
		} else {
			r = fail_msg(err, n, -EINVAL,
				     "--nic '%s': unknown part '%s'; it takes " NIC_SPEC, spec, it);
		}
	}
	if (fwds && json_object_array_length(fwds) > VMDEF_MAX_FWDS && !r)
		r = fail_msg(err, n, -EINVAL, "--nic '%s': at most %d hostfwd=", spec,
			     VMDEF_MAX_FWDS);
	if (fwds)
		json_object_object_add(o, "hostfwd", fwds);
	free(copy);
	if (r) {
		json_object_put(o);
		return r;
	}
	*out = o;
	return 0;
}

static int number(const char *opt, const char *s, uint64_t min, uint64_t max, const char *unit,
		  struct json_object *def, const char *field, char *err, size_t n)
{
	uint64_t v;

	if (!parse_u64(s, min, max, &v))
		return fail_msg(err, n, -EINVAL, "--%s: '%s' must be %llu to %llu%s", opt, s,
				(unsigned long long)min, (unsigned long long)max, unit);
	json_object_object_add(def, field, json_object_new_int64((int64_t)v));
	return 0;
}

static int action(const char *opt, const char *s, struct json_object *def, char *err, size_t n)
{
	char field[32];

	if (strcmp(s, "destroy") && strcmp(s, "restart"))
		return fail_msg(err, n, -EINVAL, "--%s: '%s' must be destroy or restart", opt, s);
	snprintf(field, sizeof(field), "%s", opt);
	for (char *p = field; *p; p++)
		if (*p == '-')
			*p = '_';
	json_object_object_add(def, field, json_object_new_string(s));
	return 0;
}

static int path_field(const char *s, struct json_object *def, const char *field)
{
	char *p = create_opts_abspath(s);

	if (!p)
		return -ENOMEM;
	json_object_object_add(def, field, json_object_new_string(p));
	free(p);
	return 0;
}

enum {
	O_KERNEL = 1000,
	O_INITRD,
	O_CMDLINE,
	O_MEMORY,
	O_HUGE,
	O_CPUS,
	O_DISK,
	O_NIC,
	O_VSOCK,
	O_RNG,
	O_AUTOSTART,
	O_POWEROFF,
	O_REBOOT,
	O_CRASH,
	O_NOSTART,
	O_JSON,
	O_HELP,
};

static int parse(int argc, char **argv, struct create_opts *o, struct json_object *def, char *err,
		 size_t n)
{
	static const struct option longs[] = {
		{ "kernel", required_argument, NULL, O_KERNEL },
		{ "initrd", required_argument, NULL, O_INITRD },
		{ "cmdline", required_argument, NULL, O_CMDLINE },
		{ "memory", required_argument, NULL, O_MEMORY },
		{ "huge-pages", required_argument, NULL, O_HUGE },
		{ "cpus", required_argument, NULL, O_CPUS },
		{ "disk", required_argument, NULL, O_DISK },
		{ "nic", required_argument, NULL, O_NIC },
		{ "vsock-cid", required_argument, NULL, O_VSOCK },
		{ "rng", no_argument, NULL, O_RNG },
		{ "autostart", no_argument, NULL, O_AUTOSTART },
		{ "on-poweroff", required_argument, NULL, O_POWEROFF },
		{ "on-reboot", required_argument, NULL, O_REBOOT },
		{ "on-crash", required_argument, NULL, O_CRASH },
		{ "no-start", no_argument, NULL, O_NOSTART },
		{ "json", no_argument, NULL, O_JSON },
		{ "help", no_argument, NULL, O_HELP },
		{ 0 },
	};
	struct json_object *disks = json_object_new_array(), *nics = json_object_new_array(), *x;
	const char *name = NULL;
	bool kernel = false;
	int c, r = 0;

	/* Keys keep their insertion order: the name first, as ternd writes definitions. */
	json_object_object_add(def, "name", NULL);
	json_object_object_add(def, "disks", disks);
	json_object_object_add(def, "nics", nics);
	optind = 0; /* GNU: start afresh */
	opterr = 0;
	while (!r && (c = getopt_long(argc, argv, ":h", longs, NULL)) != -1) {
		switch (c) {
		case O_KERNEL:
			kernel = true;
			r = path_field(optarg, def, "kernel");
			break;
		case O_INITRD:
			r = path_field(optarg, def, "initrd");
			break;
		case O_CMDLINE:
			if (strlen(optarg) > VMDEF_CMDLINE_MAX)
				r = fail_msg(err, n, -EINVAL, "--cmdline: at most %d bytes",
					     VMDEF_CMDLINE_MAX);
			else
				json_object_object_add(def, "cmdline",
						       json_object_new_string(optarg));
			break;
		case O_MEMORY:
			r = number("memory", optarg, VMDEF_MIN_MIB, VMDEF_MAX_MIB, " MiB", def,
				   "memory_mib", err, n);
			break;
		case O_HUGE: {
			unsigned int i = 0;
			while (vmdef_huge_names[i] && strcmp(vmdef_huge_names[i], optarg))
				i++;
			if (!vmdef_huge_names[i])
				r = fail_msg(err, n, -EINVAL,
					     "--huge-pages: '%s' must be transparent, none or 2M",
					     optarg);
			else
				json_object_object_add(def, "huge_pages",
						       json_object_new_string(optarg));
			break;
		}
		case O_CPUS:
			r = number("cpus", optarg, 1, VMDEF_MAX_VCPUS, " vCPUs", def, "vcpus", err,
				   n);
			break;
		case O_DISK:
			if (json_object_array_length(disks) == VMDEF_MAX_DISKS)
				r = fail_msg(err, n, -EINVAL, "--disk: at most %d disks",
					     VMDEF_MAX_DISKS);
			else if (!(r = create_opts_disk(optarg, &x, err, n)))
				json_object_array_add(disks, x);
			break;
		case O_NIC:
			if (json_object_array_length(nics) == VMDEF_MAX_NICS)
				r = fail_msg(err, n, -EINVAL, "--nic: at most %d NICs",
					     VMDEF_MAX_NICS);
			else if (!(r = create_opts_nic(optarg, &x, err, n)))
				json_object_array_add(nics, x);
			break;
		case O_VSOCK: {
			struct json_object *v = json_object_new_object();
			json_object_object_add(def, "vsock", v);
			r = number("vsock-cid", optarg, 3, 4294967294ULL, "", v, "cid", err, n);
			break;
		}
		case O_RNG:
			json_object_object_add(def, "rng", json_object_new_boolean(true));
			break;
		case O_AUTOSTART:
			json_object_object_add(def, "autostart", json_object_new_boolean(true));
			break;
		case O_POWEROFF:
			r = action("on-poweroff", optarg, def, err, n);
			break;
		case O_REBOOT:
			r = action("on-reboot", optarg, def, err, n);
			break;
		case O_CRASH:
			r = action("on-crash", optarg, def, err, n);
			break;
		case O_NOSTART:
			o->start = false;
			break;
		case O_JSON:
			o->json = true;
			break;
		case O_HELP:
		case 'h':
			o->help = true;
			return 0;
		case ':':
			r = fail_msg(err, n, -EINVAL, "create: option '%s' needs a value",
				     argv[optind - 1]);
			break;
		default:
			r = fail_msg(err, n, -EINVAL,
				     "create: unknown option '%s' (tern help create lists them)",
				     argv[optind - 1]);
		}
	}
	if (r)
		return r == -ENOMEM ? fail_msg(err, n, r, "out of memory") : r;
	if (optind < argc)
		name = argv[optind++];
	if (optind < argc)
		return fail_msg(err, n, -EINVAL, "create: unexpected argument '%s' (one NAME only)",
				argv[optind]);
	if (!name)
		return fail_msg(err, n, -EINVAL,
				"create: the VM's NAME is missing (usage: tern "
				"create NAME --kernel FILE ...)");
	if (!vmdef_name_ok(name))
		return fail_msg(
			err, n, -EINVAL,
			"create: NAME '%.80s' must be 1 to %d characters of A-Z a-z 0-9 . _ -, "
			"starting with a letter or digit",
			name, VMDEF_NAME_MAX);
	if (!kernel)
		return fail_msg(err, n, -EINVAL,
				"create: --kernel FILE is required (a vmlinux or bzImage)");
	json_object_object_add(def, "name", json_object_new_string(name));
	if (!json_object_array_length(disks))
		json_object_object_del(def, "disks");
	if (!json_object_array_length(nics))
		json_object_object_del(def, "nics");
	return 0;
}

int create_opts_parse(int argc, char **argv, struct create_opts *o, char *err, size_t n)
{
	struct json_object *def = json_object_new_object();
	int r;

	*o = (struct create_opts){ .start = true };
	r = parse(argc, argv, o, def, err, n);
	if (r || o->help) {
		json_object_put(def);
		return r;
	}
	o->def = def;
	return 0;
}
