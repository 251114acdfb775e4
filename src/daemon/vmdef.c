/* VM definitions: parsing and checking, canonical JSON, tern-vmm's options. */
#include "daemon/vmdef.h"

#include "api/json_in.h"
#include "backend/disk_chain.h"
#include "core/util.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#define DISK_ID_MAX 20 /* a virtio-blk serial */
#define BRIDGE_MAX 15  /* IFNAMSIZ - 1 */

static const char *const top_keys[] = { "name",	      "uuid",	     "vcpus",	  "memory_mib",
					"huge_pages", "kernel",	     "initrd",	  "cmdline",
					"disks",      "nics",	     "vsock",	  "rng",
					"autostart",  "on_poweroff", "on_reboot", "on_crash",
					"limits",     NULL };
const char *const vmdef_huge_names[] = { "transparent", "none", "2M", NULL };
static const char *const disk_io_keys[] = { "read_iops", "write_iops", "read_mib_s", "write_mib_s",
					    NULL };
static const char *const limit_keys[] = { "disks",	    "cpu_max_percent", "cpu_weight",
					  "memory_max_mib", "pids_max",	       NULL };
static const char *const disk_keys[] = { "path", "readonly", "id", "cache", "format", NULL };
static const char *const nic_keys[] = { "type", "bridge", "mac", "hostfwd", NULL };
static const char *const vsock_keys[] = { "cid", NULL };
static const char *const nic_types[] = { "user", "bridge", NULL };
static const char *const caches[] = { "writeback", "none", NULL };
/* In enum disk_format's order. */
static const char *const formats[] = { "raw", "overlay", "qcow2", "auto", NULL };
static const char *const actions[] = { "destroy", "restart", NULL };

bool vmdef_name_ok(const char *name)
{
	size_t n = strlen(name);

	if (!n || n > VMDEF_NAME_MAX || !isalnum((unsigned char)name[0]))
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)name[i]) && !strchr("._-", name[i]))
			return false;
	return true;
}

int vmdef_name_field(struct json_object *o, char out[VMDEF_NAME_MAX + 1], char *err, size_t n)
{
	const char *s;
	int r = jin_string(o, "name", 4096, &s, err, n);

	if (r < 0)
		return r;
	if (!r || !vmdef_name_ok(s))
		return fail_msg(err, n, -EINVAL,
				"'name' %s%.64s%s must be 1 to %d characters of A-Z a-z 0-9 . _ -, "
				"starting with a letter or digit",
				r ? "\"" : "is required: ", r ? s : "", r ? "\"" : "",
				VMDEF_NAME_MAX);
	strcpy(out, s);
	return 0;
}

bool vmdef_uuid_ok(const char *u)
{
	if (strlen(u) != VMDEF_UUID_LEN)
		return false;
	for (int i = 0; i < VMDEF_UUID_LEN; i++) {
		bool dash = i == 8 || i == 13 || i == 18 || i == 23;
		if (dash ? u[i] != '-' :
			   !isxdigit((unsigned char)u[i]) || isupper((unsigned char)u[i]))
			return false;
	}
	return true;
}

static void random_bytes(uint8_t *b, size_t n)
{
	/* getrandom never fails for small sizes once the pool is ready; loop for EINTR. */
	while (n) {
		ssize_t r = getrandom(b, n, 0);
		if (r > 0) {
			b += r;
			n -= (size_t)r;
		}
	}
}

void vmdef_new_uuid(char out[VMDEF_UUID_LEN + 1])
{
	uint8_t b[16];

	random_bytes(b, sizeof(b));
	b[6] = (b[6] & 0x0f) | 0x40; /* version 4 */
	b[8] = (b[8] & 0x3f) | 0x80; /* RFC 4122 variant */
	snprintf(out, VMDEF_UUID_LEN + 1,
		 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
		 b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14],
		 b[15]);
}

void vmdef_new_mac(char out[18])
{
	uint8_t b[6];

	random_bytes(b, sizeof(b));
	b[0] = (b[0] & 0xfe) | 0x02; /* unicast, locally administered */
	snprintf(out, 18, "%02x:%02x:%02x:%02x:%02x:%02x", b[0], b[1], b[2], b[3], b[4], b[5]);
}

static bool mac_ok(const char *m)
{
	unsigned int v[6];
	char end;

	if (strlen(m) != 17 || sscanf(m, "%2x:%2x:%2x:%2x:%2x:%2x%c", &v[0], &v[1], &v[2], &v[3],
				      &v[4], &v[5], &end) != 6)
		return false;
	for (int i = 0; i < 17; i++)
		if (i % 3 == 2 ? m[i] != ':' : !isxdigit((unsigned char)m[i]))
			return false;
	return !(v[0] & 1); /* unicast */
}

/* "tcp::HOSTPORT-:GUESTPORT", ports 1..65535: what tern-vmm's --net user takes. */
static bool fwd_ok(const char *f)
{
	uint64_t h, g;
	char hs[8], gs[8];
	const char *dash;

	if (strncmp(f, "tcp::", 5))
		return false;
	dash = strstr(f + 5, "-:");
	if (!dash || dash - (f + 5) >= (long)sizeof(hs) || strlen(dash + 2) >= sizeof(gs))
		return false;
	memcpy(hs, f + 5, (size_t)(dash - (f + 5)));
	hs[dash - (f + 5)] = 0;
	strcpy(gs, dash + 2);
	return parse_u64(hs, 1, 65535, &h) && parse_u64(gs, 1, 65535, &g);
}

static int file_check(const char *field, const char *path, int mode, char *err, size_t n)
{
	if (path[0] != '/')
		return fail_msg(err, n, -EINVAL, "'%s' must be an absolute path, not \"%.200s\"",
				field, path);
	if (access(path, mode))
		return fail_msg(err, n, -EINVAL, "'%s': %.200s: %s", field, path, strerror(errno));
	return 0;
}

static int dup_string(struct json_object *o, const char *field, const char *where, size_t maxlen,
		      bool required, char **out, char *err, size_t n)
{
	const char *s;
	int r = jin_string(o, field, maxlen, &s, err, n);

	if (r < 0)
		return r;
	if (!r) {
		if (required)
			return fail_msg(err, n, -EINVAL, "'%s%s' is required", where, field);
		return 0;
	}
	*out = strdup(s);
	return *out ? 1 : -ENOMEM;
}

static int parse_disk(struct json_object *o, unsigned int i, struct vmdef_disk *dk, bool check,
		      char *err, size_t n)
{
	char where[32];
	const char *id;
	unsigned int cache = 0, format = DISK_FORMAT_AUTO;
	int r;

	snprintf(where, sizeof(where), "disks[%u]", i);
	if (!json_object_is_type(o, json_type_object))
		return fail_msg(err, n, -EINVAL, "'%s' must be an object", where);
	if ((r = jin_only(o, disk_keys, where, err, n)) < 0)
		return r;
	strcat(where, ".");
	if ((r = dup_string(o, "path", where, VMDEF_PATH_MAX, true, &dk->path, err, n)) < 0)
		return r;
	if ((r = jin_bool(o, "readonly", &dk->readonly, err, n)) < 0)
		return r;
	if ((r = jin_string(o, "id", DISK_ID_MAX, &id, err, n)) < 0)
		return r;
	if (r) {
		if (!*id)
			return fail_msg(err, n, -EINVAL, "'%sid' must be 1 to %d bytes", where,
					DISK_ID_MAX);
		if (!(dk->id = strdup(id)))
			return -ENOMEM;
	}
	if ((r = jin_enum(o, "cache", caches, &cache, err, n)) < 0)
		return r;
	dk->cache_none = cache == 1;
	if ((r = jin_enum(o, "format", formats, &format, err, n)) < 0)
		return r;
	dk->format = (enum disk_format)format;
	if (check) {
		char field[48], why[512];
		snprintf(field, sizeof(field), "%spath", where);
		if ((r = file_check(field, dk->path, dk->readonly ? R_OK : R_OK | W_OK, err, n)))
			return r;
		if (dk->format != DISK_FORMAT_RAW &&
		    disk_chain(dk->path, dk->format, NULL, 0, why, sizeof(why)) < 0)
			return fail_msg(err, n, -EINVAL, "'%spath': not a usable %s image: %s",
					where, formats[dk->format], why);
		return 0;
	}
	return dk->path[0] == '/' ?
		       0 :
		       fail_msg(err, n, -EINVAL, "'%spath' must be an absolute path", where);
}

static int parse_nic(struct json_object *o, unsigned int i, struct vmdef_nic *nic, char *err,
		     size_t n)
{
	char where[32];
	unsigned int type = 0;
	const char *mac;
	struct json_object *fw;
	int r;

	snprintf(where, sizeof(where), "nics[%u]", i);
	if (!json_object_is_type(o, json_type_object))
		return fail_msg(err, n, -EINVAL, "'%s' must be an object", where);
	if ((r = jin_only(o, nic_keys, where, err, n)) < 0)
		return r;
	strcat(where, ".");
	if (!jin_has(o, "type"))
		return fail_msg(err, n, -EINVAL, "'%stype' is required: \"user\" or \"bridge\"",
				where);
	if ((r = jin_enum(o, "type", nic_types, &type, err, n)) < 0)
		return r;
	nic->type = type ? VMDEF_NIC_BRIDGE : VMDEF_NIC_USER;
	if ((r = dup_string(o, "bridge", where, BRIDGE_MAX, nic->type == VMDEF_NIC_BRIDGE,
			    &nic->bridge, err, n)) < 0)
		return r;
	if (nic->type == VMDEF_NIC_USER && nic->bridge)
		return fail_msg(err, n, -EINVAL, "'%sbridge' is only for type \"bridge\"", where);
	if (nic->bridge && !*nic->bridge)
		return fail_msg(err, n, -EINVAL, "'%sbridge' must be 1 to %d bytes", where,
				BRIDGE_MAX);
	if ((r = jin_string(o, "mac", 17, &mac, err, n)) < 0)
		return r;
	if (r && !mac_ok(mac))
		return fail_msg(err, n, -EINVAL,
				"'%smac' \"%s\" is not a unicast MAC address xx:xx:xx:xx:xx:xx",
				where, mac);
	if (r)
		strcpy(nic->mac, mac);
	else
		vmdef_new_mac(nic->mac);
	if (!json_object_object_get_ex(o, "hostfwd", &fw) ||
	    json_object_is_type(fw, json_type_null))
		return 0;
	if (nic->type != VMDEF_NIC_USER)
		return fail_msg(err, n, -EINVAL, "'%shostfwd' is only for type \"user\"", where);
	if (!json_object_is_type(fw, json_type_array) ||
	    json_object_array_length(fw) > VMDEF_MAX_FWDS)
		return fail_msg(
			err, n, -EINVAL,
			"'%shostfwd' must be an array of at most %d \"tcp::HOSTPORT-:GUESTPORT\"",
			where, VMDEF_MAX_FWDS);
	for (size_t k = 0; k < json_object_array_length(fw); k++) {
		struct json_object *e = json_object_array_get_idx(fw, k);
		const char *s =
			json_object_is_type(e, json_type_string) ? json_object_get_string(e) : NULL;
		if (!s || !fwd_ok(s))
			return fail_msg(
				err, n, -EINVAL,
				"'%shostfwd[%zu]' must be \"tcp::HOSTPORT-:GUESTPORT\" with ports "
				"1 to 65535",
				where, k);
		if (!(nic->fwds[nic->nfwds++] = strdup(s)))
			return -ENOMEM;
	}
	return 0;
}

static int parse_array(struct json_object *o, const char *field, unsigned int max,
		       struct json_object **arr, char *err, size_t n)
{
	if (!json_object_object_get_ex(o, field, arr) ||
	    json_object_is_type(*arr, json_type_null)) {
		*arr = NULL;
		return 0;
	}
	if (!json_object_is_type(*arr, json_type_array) || json_object_array_length(*arr) > max)
		return fail_msg(err, n, -EINVAL, "'%s' must be an array of at most %u entries",
				field, max);
	return 0;
}

/* The shared field readers name only the field: say which entry it was in. */
static int in_entry(int r, const char *array, size_t i, char *err, size_t n)
{
	char prefix[32], msg[512];

	snprintf(prefix, sizeof(prefix), "'%s[%zu]", array, i);
	if (err && n && strncmp(err, prefix, strlen(prefix)) && !strstr(err, prefix + 1)) {
		snprintf(msg, sizeof(msg), "%s[%zu]: %s", array, i, err);
		snprintf(err, n, "%s", msg);
	}
	return r;
}

static int parse_action(struct json_object *o, const char *field, enum vmdef_action dflt,
			enum vmdef_action *out, char *err, size_t n)
{
	unsigned int i;
	int r = jin_enum(o, field, actions, &i, err, n);

	if (r < 0)
		return r;
	*out = r ? (enum vmdef_action)i : dflt;
	return 0;
}

static int parse(struct json_object *o, struct vmdef *d, bool check, char *err, size_t n)
{
	const char *s;
	uint64_t v;
	struct json_object *arr, *vs;
	int r;

	if ((r = jin_only(o, top_keys, "a VM definition", err, n)) < 0)
		return r;
	if ((r = vmdef_name_field(o, d->name, err, n)) < 0)
		return r;
	if ((r = jin_string(o, "uuid", 4096, &s, err, n)) < 0)
		return r;
	if (r && !vmdef_uuid_ok(s))
		return fail_msg(err, n, -EINVAL,
				"'uuid' \"%.64s\" is not a UUID (36 characters, lower-case hex, "
				"8-4-4-4-12)",
				s);
	if (r)
		strcpy(d->uuid, s);
	else
		vmdef_new_uuid(d->uuid);
	if ((r = jin_u64(o, "vcpus", 1, VMDEF_MAX_VCPUS, &v, err, n)) < 0)
		return r;
	d->vcpus = r ? (unsigned int)v : 1;
	if ((r = jin_u64(o, "memory_mib", VMDEF_MIN_MIB, VMDEF_MAX_MIB, &v, err, n)) < 0)
		return r;
	d->memory_mib = r ? v : 256;
	unsigned int huge = VMDEF_HUGE_TRANSPARENT;
	if ((r = jin_enum(o, "huge_pages", vmdef_huge_names, &huge, err, n)) < 0)
		return r;
	d->huge_pages = (enum vmdef_huge)huge;
	if (d->huge_pages == VMDEF_HUGE_2M && d->memory_mib % 2)
		return fail_msg(err, n, -EINVAL,
				"'memory_mib' %llu is not a whole number of 2 MiB pages, which "
				"'huge_pages' \"2M\" needs",
				(unsigned long long)d->memory_mib);
	if ((r = dup_string(o, "kernel", "", VMDEF_PATH_MAX, true, &d->kernel, err, n)) < 0)
		return r;
	if ((r = dup_string(o, "initrd", "", VMDEF_PATH_MAX, false, &d->initrd, err, n)) < 0)
		return r;
	if ((r = dup_string(o, "cmdline", "", VMDEF_CMDLINE_MAX, false, &d->cmdline, err, n)) < 0)
		return r;
	if (!r && !(d->cmdline = strdup("console=ttyS0")))
		return -ENOMEM;
	if (check && ((r = file_check("kernel", d->kernel, R_OK, err, n)) ||
		      (d->initrd && (r = file_check("initrd", d->initrd, R_OK, err, n)))))
		return r;
	if (!check && (d->kernel[0] != '/' || (d->initrd && d->initrd[0] != '/')))
		return fail_msg(err, n, -EINVAL, "'kernel' and 'initrd' must be absolute paths");
	if ((r = parse_array(o, "disks", VMDEF_MAX_DISKS, &arr, err, n)) < 0)
		return r;
	for (size_t i = 0; arr && i < json_object_array_length(arr); i++, d->ndisks++)
		if ((r = parse_disk(json_object_array_get_idx(arr, i), (unsigned int)i,
				    &d->disks[i], check, err, n)) < 0)
			return in_entry(r, "disks", i, err, n);
	if ((r = parse_array(o, "nics", VMDEF_MAX_NICS, &arr, err, n)) < 0)
		return r;
	for (size_t i = 0; arr && i < json_object_array_length(arr); i++, d->nnics++)
		if ((r = parse_nic(json_object_array_get_idx(arr, i), (unsigned int)i, &d->nics[i],
				   err, n)) < 0)
			return in_entry(r, "nics", i, err, n);
	if (json_object_object_get_ex(o, "vsock", &vs) &&
	    !json_object_is_type(vs, json_type_null)) {
		if (!json_object_is_type(vs, json_type_object))
			return fail_msg(err, n, -EINVAL, "'vsock' must be an object {\"cid\": N}");
		if ((r = jin_only(vs, vsock_keys, "vsock", err, n)) < 0)
			return r;
		if ((r = jin_u64(vs, "cid", 3, 4294967294ULL, &d->vsock_cid, err, n)) < 0)
			return r;
		if (!r)
			return fail_msg(err, n, -EINVAL,
					"'vsock.cid' is required: 3 to 4294967294");
		d->has_vsock = true;
	}
	if ((r = jin_bool(o, "rng", &d->rng, err, n)) < 0 ||
	    (r = jin_bool(o, "autostart", &d->autostart, err, n)) < 0)
		return r;
	if ((r = parse_action(o, "on_poweroff", VMDEF_DESTROY, &d->on_poweroff, err, n)) ||
	    (r = parse_action(o, "on_reboot", VMDEF_RESTART, &d->on_reboot, err, n)) ||
	    (r = parse_action(o, "on_crash", VMDEF_DESTROY, &d->on_crash, err, n)))
		return r;
	if ((r = vmdef_limits_parse(o, d, &d->limits, err, n)))
		return r;
	/* Two NICs with one MAC would confuse the guest and the bridge alike. */
	for (unsigned int i = 0; i < d->nnics; i++)
		for (unsigned int j = 0; j < i; j++)
			if (!strcmp(d->nics[i].mac, d->nics[j].mac))
				return fail_msg(err, n, -EINVAL,
						"'nics[%u].mac' %s is also nics[%u]'s", i,
						d->nics[i].mac, j);
	return 0;
}

/* A limits field's refusal names it as limits.FIELD. */
static int limit_u64(struct json_object *l, const char *name, uint64_t min, uint64_t max,
		     uint64_t *out, const char *accepts, char *err, size_t n)
{
	struct json_object *v;
	int64_t x;

	*out = 0;
	if (!json_object_object_get_ex(l, name, &v) || json_object_is_type(v, json_type_null))
		return 0;
	errno = 0;
	x = json_object_get_int64(v);
	if (!json_object_is_type(v, json_type_int) || errno || x < 0 ||
	    (x != 0 && ((uint64_t)x < min || (uint64_t)x > max)))
		return fail_msg(err, n, -EINVAL,
				"'limits.%s' must be 0 (%s) or a whole number from %llu to %llu",
				name, accepts, (unsigned long long)min, (unsigned long long)max);
	*out = (uint64_t)x;
	return 0;
}

/* limits.disks[i]: {"read_iops", "write_iops", "read_mib_s", "write_mib_s"}, 0 no cap. */
static int disk_io_parse(struct json_object *a, const struct vmdef *d, struct vmdef_limits *l,
			 char *err, size_t n)
{
	static const unsigned int max[] = { VMDEF_IOPS_MAX, VMDEF_IOPS_MAX, VMDEF_IO_MIB_S_MAX,
					    VMDEF_IO_MIB_S_MAX };
	char where[40];
	int r;

	if (!json_object_is_type(a, json_type_array))
		return fail_msg(err, n, -EINVAL,
				"'limits.disks' must be an array with one object per disk, in the "
				"order of 'disks': {\"read_iops\", \"write_iops\", \"read_mib_s\", "
				"\"write_mib_s\"}");
	size_t len = json_object_array_length(a);
	if (len > d->ndisks)
		return fail_msg(err, n, -EINVAL,
				"'limits.disks' has %zu entries; %s has %u disk%s (one entry per "
				"disk, in order)",
				len, d->name[0] ? d->name : "the VM", d->ndisks,
				d->ndisks == 1 ? "" : "s");
	for (size_t i = 0; i < len; i++) {
		struct json_object *x = json_object_array_get_idx(a, i);
		unsigned int *f[] = { &l->disks[i].read_iops, &l->disks[i].write_iops,
				      &l->disks[i].read_mib_s, &l->disks[i].write_mib_s };
		snprintf(where, sizeof(where), "limits.disks[%zu]", i);
		if (!json_object_is_type(x, json_type_object))
			return fail_msg(err, n, -EINVAL,
					"'%s' must be an object {\"read_iops\", \"write_iops\", "
					"\"read_mib_s\", \"write_mib_s\"}",
					where);
		if ((r = jin_only(x, disk_io_keys, where, err, n)) < 0)
			return r;
		for (size_t k = 0; k < 4; k++) {
			struct json_object *v;
			int64_t iv;
			if (!json_object_object_get_ex(x, disk_io_keys[k], &v) ||
			    json_object_is_type(v, json_type_null))
				continue;
			errno = 0;
			iv = json_object_get_int64(v);
			if (!json_object_is_type(v, json_type_int) || errno || iv < 0 ||
			    iv > (int64_t)max[k])
				return fail_msg(
					err, n, -EINVAL,
					"'%s.%s' must be 0 (no cap) or a whole number from 1 "
					"to %u",
					where, disk_io_keys[k], max[k]);
			*f[k] = (unsigned int)iv;
		}
	}
	l->ndisks = (unsigned int)len;
	return 0;
}

int vmdef_limits_parse(struct json_object *o, const struct vmdef *d, struct vmdef_limits *l,
		       char *err, size_t n)
{
	struct json_object *lo;
	uint64_t v;
	char what[64];
	int r;

	memset(l, 0, sizeof(*l));
	if (!json_object_object_get_ex(o, "limits", &lo) || json_object_is_type(lo, json_type_null))
		return 0;
	if (!json_object_is_type(lo, json_type_object))
		return fail_msg(err, n, -EINVAL,
				"'limits' must be an object {\"cpu_max_percent\", \"cpu_weight\", "
				"\"memory_max_mib\", \"pids_max\"}");
	if ((r = jin_only(lo, limit_keys, "limits", err, n)) < 0)
		return r;
	if ((r = limit_u64(lo, "cpu_max_percent", 1, 100ULL * d->vcpus, &v, "no cap", err, n)))
		return r;
	l->cpu_max_percent = (unsigned int)v;
	if ((r = limit_u64(lo, "cpu_weight", 1, 10000, &v, "the default, 100", err, n)))
		return r;
	l->cpu_weight = (unsigned int)v;
	snprintf(what, sizeof(what), "no cap");
	if ((r = limit_u64(lo, "memory_max_mib", d->memory_mib + VMDEF_MEMORY_MARGIN_MIB,
			   VMDEF_MAX_MIB + 65536, &v, what, err, n)))
		return r;
	l->memory_max_mib = v;
	if ((r = limit_u64(lo, "pids_max", 16, 65536, &v, "the default, 512", err, n)))
		return r;
	l->pids_max = (unsigned int)v;
	struct json_object *dio;
	if (json_object_object_get_ex(lo, "disks", &dio) &&
	    !json_object_is_type(dio, json_type_null))
		return disk_io_parse(dio, d, l, err, n);
	return 0;
}

uint64_t vmdef_memory_max_mib(const struct vmdef *d)
{
	return d->limits.memory_max_mib;
}

unsigned int vmdef_cpu_weight(const struct vmdef *d)
{
	return d->limits.cpu_weight ? d->limits.cpu_weight : 100;
}

unsigned int vmdef_pids_max(const struct vmdef *d)
{
	return d->limits.pids_max ? d->limits.pids_max : VMDEF_PIDS_DEFAULT;
}

int vmdef_parse(const char *json, size_t len, struct vmdef *d, bool check_files, char *err,
		size_t errlen)
{
	struct json_object *o = jin_parse_object(json, len, err, errlen);
	int r;

	memset(d, 0, sizeof(*d));
	if (!o)
		return -EINVAL;
	r = parse(o, d, check_files, err, errlen);
	json_object_put(o);
	if (r)
		vmdef_free(d);
	return r;
}

bool vmdef_drive_id(const struct vmdef *d, unsigned int i, char *out, size_t n)
{
	if (d->disks[i].id)
		snprintf(out, n, "%s", d->disks[i].id);
	else
		snprintf(out, n, "disk%u", i);
	for (const char *c = out; *c; c++)
		if (!isalnum((unsigned char)*c) && !strchr("._-", *c))
			return false;
	return true;
}

void vmdef_free(struct vmdef *d)
{
	free(d->kernel);
	free(d->initrd);
	free(d->cmdline);
	for (unsigned int i = 0; i < VMDEF_MAX_DISKS; i++) {
		free(d->disks[i].path);
		free(d->disks[i].id);
	}
	for (unsigned int i = 0; i < VMDEF_MAX_NICS; i++) {
		free(d->nics[i].bridge);
		for (unsigned int k = 0; k < VMDEF_MAX_FWDS; k++)
			free(d->nics[i].fwds[k]);
	}
	memset(d, 0, sizeof(*d));
}

char *vmdef_to_json(const struct vmdef *d)
{
	struct json_object *o = json_object_new_object(), *disks = json_object_new_array(),
			   *nics = json_object_new_array();
	char *out;

	json_object_object_add(o, "name", json_object_new_string(d->name));
	json_object_object_add(o, "uuid", json_object_new_string(d->uuid));
	json_object_object_add(o, "vcpus", json_object_new_int64(d->vcpus));
	json_object_object_add(o, "memory_mib", json_object_new_int64((int64_t)d->memory_mib));
	json_object_object_add(o, "huge_pages",
			       json_object_new_string(vmdef_huge_names[d->huge_pages]));
	json_object_object_add(o, "kernel", json_object_new_string(d->kernel));
	if (d->initrd)
		json_object_object_add(o, "initrd", json_object_new_string(d->initrd));
	json_object_object_add(o, "cmdline", json_object_new_string(d->cmdline));
	for (unsigned int i = 0; i < d->ndisks; i++) {
		struct json_object *k = json_object_new_object();
		json_object_object_add(k, "path", json_object_new_string(d->disks[i].path));
		json_object_object_add(k, "readonly",
				       json_object_new_boolean(d->disks[i].readonly));
		if (d->disks[i].id)
			json_object_object_add(k, "id", json_object_new_string(d->disks[i].id));
		json_object_object_add(k, "cache",
				       json_object_new_string(caches[d->disks[i].cache_none]));
		json_object_object_add(k, "format",
				       json_object_new_string(formats[d->disks[i].format]));
		json_object_array_add(disks, k);
	}
	json_object_object_add(o, "disks", disks);
	for (unsigned int i = 0; i < d->nnics; i++) {
		const struct vmdef_nic *c = &d->nics[i];
		struct json_object *k = json_object_new_object();
		json_object_object_add(k, "type", json_object_new_string(nic_types[c->type]));
		if (c->bridge)
			json_object_object_add(k, "bridge", json_object_new_string(c->bridge));
		json_object_object_add(k, "mac", json_object_new_string(c->mac));
		if (c->nfwds) {
			struct json_object *f = json_object_new_array();
			for (unsigned int j = 0; j < c->nfwds; j++)
				json_object_array_add(f, json_object_new_string(c->fwds[j]));
			json_object_object_add(k, "hostfwd", f);
		}
		json_object_array_add(nics, k);
	}
	json_object_object_add(o, "nics", nics);
	if (d->has_vsock) {
		struct json_object *v = json_object_new_object();
		json_object_object_add(v, "cid", json_object_new_int64((int64_t)d->vsock_cid));
		json_object_object_add(o, "vsock", v);
	}
	json_object_object_add(o, "rng", json_object_new_boolean(d->rng));
	json_object_object_add(o, "autostart", json_object_new_boolean(d->autostart));
	json_object_object_add(o, "on_poweroff", json_object_new_string(actions[d->on_poweroff]));
	json_object_object_add(o, "on_reboot", json_object_new_string(actions[d->on_reboot]));
	json_object_object_add(o, "on_crash", json_object_new_string(actions[d->on_crash]));
	struct json_object *l = json_object_new_object();
	json_object_object_add(l, "cpu_max_percent",
			       json_object_new_int64(d->limits.cpu_max_percent));
	json_object_object_add(l, "cpu_weight", json_object_new_int64(d->limits.cpu_weight));
	json_object_object_add(l, "memory_max_mib",
			       json_object_new_int64((int64_t)d->limits.memory_max_mib));
	json_object_object_add(l, "pids_max", json_object_new_int64(d->limits.pids_max));
	if (d->limits.ndisks) {
		struct json_object *a = json_object_new_array();
		for (unsigned int i = 0; i < d->limits.ndisks; i++) {
			const struct vmdef_disk_io *io = &d->limits.disks[i];
			const unsigned int v[] = { io->read_iops, io->write_iops, io->read_mib_s,
						   io->write_mib_s };
			struct json_object *x = json_object_new_object();
			for (size_t k = 0; k < 4; k++)
				json_object_object_add(x, disk_io_keys[k],
						       json_object_new_int64(v[k]));
			json_object_array_add(a, x);
		}
		json_object_object_add(l, "disks", a);
	}
	json_object_object_add(o, "limits", l);
	out = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
							       JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(o);
	return out;
}

struct args {
	char **v;
	size_t n, cap;
	bool failed;
};

static void add(struct args *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void add(struct args *a, const char *fmt, ...)
{
	va_list ap;
	char *s;

	if (a->failed)
		return;
	if (a->n + 2 > a->cap) {
		size_t cap = a->cap ? a->cap * 2 : 32;
		char **v = realloc(a->v, cap * sizeof(*v));
		if (!v) {
			a->failed = true;
			return;
		}
		a->v = v;
		a->cap = cap;
	}
	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		a->failed = true;
	else
		a->v[a->n++] = s;
	va_end(ap);
	a->v[a->n] = NULL;
}

char **vmdef_vmm_args(const struct vmdef *d, const char *vsock_uds, char *const *taps)
{
	struct args a = { 0 };

	add(&a, "--kernel");
	add(&a, "%s", d->kernel);
	if (d->initrd) {
		add(&a, "--initrd");
		add(&a, "%s", d->initrd);
	}
	add(&a, "--cmdline");
	add(&a, "%s", d->cmdline);
	add(&a, "--cpus");
	add(&a, "%u", d->vcpus);
	add(&a, "--memory");
	add(&a, "%llu", (unsigned long long)d->memory_mib);
	add(&a, "--huge-pages");
	add(&a, "%s", vmdef_huge_names[d->huge_pages]);
	add(&a, "--on-reboot");
	add(&a, "%s", d->on_reboot == VMDEF_RESTART ? "restart" : "exit");
	add(&a, "--id");
	add(&a, "%s", d->name);
	for (unsigned int i = 0; i < d->ndisks; i++) {
		const struct vmdef_disk *k = &d->disks[i];
		add(&a, "--disk");
		add(&a, "path=%s%s%s,format=%s%s%s%s", k->path, k->readonly ? ",readonly=on" : "",
		    k->cache_none ? ",cache=none" : ",cache=writeback", formats[k->format],
		    k->format == DISK_FORMAT_OVERLAY || k->format == DISK_FORMAT_QCOW2 ?
			    ",aio=threads" :
			    "",
		    k->id ? ",id=" : "", k->id ? k->id : "");
	}
	for (unsigned int i = 0; i < d->nnics; i++) {
		const struct vmdef_nic *c = &d->nics[i];
		char fw[VMDEF_MAX_FWDS * 32] = "";
		for (unsigned int j = 0; j < c->nfwds; j++) {
			strcat(fw, ",hostfwd=");
			strcat(fw, c->fwds[j]);
		}
		add(&a, "--net");
		if (c->type == VMDEF_NIC_USER)
			add(&a, "user,mac=%s%s", c->mac, fw);
		else
			add(&a, "tap=%s,mac=%s", taps && taps[i] ? taps[i] : "", c->mac);
	}
	if (d->has_vsock) {
		add(&a, "--vsock");
		add(&a, "cid=%llu,uds=%s", (unsigned long long)d->vsock_cid, vsock_uds);
	}
	if (d->rng)
		add(&a, "--rng");
	if (a.failed) {
		vmdef_free_args(a.v);
		return NULL;
	}
	return a.v;
}

void vmdef_free_args(char **args)
{
	for (char **p = args; p && *p; p++)
		free(*p);
	free(args);
}
