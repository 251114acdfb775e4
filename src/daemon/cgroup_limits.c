/* A VM's cgroup v2 limits (cgroup_limits.h). */
#include "daemon/cgroup_limits.h"

#include "core/util.h"

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CGROUP_ROOT "/sys/fs/cgroup"

static int write_file(const char *dir, const char *file, const char *value, char *err, size_t n)
{
	char path[4200];
	int fd, r = 0;

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	if ((fd = open(path, O_WRONLY | O_CLOEXEC)) < 0)
		return fail_msg(err, n, -errno, "cannot open %s: %s", path, strerror(errno));
	if (write(fd, value, strlen(value)) < 0)
		r = fail_msg(err, n, -errno, "cannot write '%s' to %s: %s", value, path,
			     strerror(errno));
	close(fd);
	return r;
}

static int read_file(const char *dir, const char *file, char *buf, size_t len)
{
	char path[4200];
	ssize_t got;
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return -errno;
	got = read(fd, buf, len - 1);
	close(fd);
	if (got < 0)
		return -EIO;
	buf[got] = 0;
	buf[strcspn(buf, "\n")] = 0;
	return 0;
}

/* Whether the space-separated list holds word. */
static bool has_word(const char *list, const char *word)
{
	size_t k = strlen(word);

	for (const char *p = list; (p = strstr(p, word)); p += k)
		if ((p == list || p[-1] == ' ') && (p[k] == 0 || p[k] == ' '))
			return true;
	return false;
}

int cgroup_limits_enable(const char *sub, char *err, size_t n)
{
	static const char *const wanted[] = { "cpu", "memory", "pids" };
	char dir[4200], have[512];
	size_t len = strlen(CGROUP_ROOT);
	int r;

	snprintf(dir, sizeof(dir), "%s%s", CGROUP_ROOT, sub);
	/* From the root down: a controller reaches a cgroup only through each parent. */
	for (const char *p = sub;; p = strchr(p + 1, '/')) {
		size_t at = len + (size_t)(p ? p - sub : (ptrdiff_t)strlen(sub));
		char save = dir[at];
		dir[at] = 0;
		if ((r = read_file(dir, "cgroup.subtree_control", have, sizeof(have))))
			return fail_msg(err, n, r, "cannot read %s/cgroup.subtree_control: %s", dir,
					strerror(-r));
		for (size_t i = 0; i < sizeof(wanted) / sizeof(wanted[0]); i++) {
			char plus[16];
			snprintf(plus, sizeof(plus), "+%s", wanted[i]);
			if (!has_word(have, wanted[i]) &&
			    (r = write_file(dir, "cgroup.subtree_control", plus, err, n)))
				return r;
		}
		dir[at] = save;
		if (!p || !p[1])
			break;
	}
	return 0;
}

int cgroup_limits_apply(const char *dir, const struct vmdef *d, char *err, size_t n)
{
	char v[64];
	int r;

	if (d->limits.cpu_max_percent)
		snprintf(v, sizeof(v), "%u 100000", d->limits.cpu_max_percent * 1000);
	else
		snprintf(v, sizeof(v), "max 100000");
	if ((r = write_file(dir, "cpu.max", v, err, n)))
		return r;
	snprintf(v, sizeof(v), "%u", vmdef_cpu_weight(d));
	if ((r = write_file(dir, "cpu.weight", v, err, n)))
		return r;
	if (vmdef_memory_max_mib(d))
		snprintf(v, sizeof(v), "%llu", (unsigned long long)vmdef_memory_max_mib(d) << 20);
	else
		snprintf(v, sizeof(v), "max");
	if ((r = write_file(dir, "memory.max", v, err, n)))
		return r;
	snprintf(v, sizeof(v), "%u", vmdef_pids_max(d));
	return write_file(dir, "pids.max", v, err, n);
}

/* A file holding a number or "max": the number, or -1 for max (or unreadable: -2). */
static long long read_num(const char *dir, const char *file)
{
	char buf[128];

	if (read_file(dir, file, buf, sizeof(buf)))
		return -2;
	return strncmp(buf, "max", 3) ? strtoll(buf, NULL, 10) : -1;
}

struct json_object *cgroup_limits_read(const char *dir)
{
	char buf[512];
	long long quota = -2, period = 0;

	if (read_file(dir, "cpu.max", buf, sizeof(buf)))
		return NULL;
	struct json_object *o = json_object_new_object();
	if (!strncmp(buf, "max", 3))
		quota = -1, period = strtoll(buf + 3, NULL, 10);
	else
		sscanf(buf, "%lld %lld", &quota, &period);
	json_object_object_add(
		o, "cpu_max_percent",
		quota < 0 || period <= 0 ? NULL : json_object_new_int64(quota * 100 / period));
	static const char *const nums[][2] = {
		{ "cpu.weight", "cpu_weight" },	      { "memory.max", "memory_max_bytes" },
		{ "memory.current", "memory_bytes" }, { "pids.max", "pids_max" },
		{ "pids.current", "pids" },
	};
	for (size_t i = 0; i < sizeof(nums) / sizeof(nums[0]); i++) {
		long long v = read_num(dir, nums[i][0]);
		json_object_object_add(o, nums[i][1], v >= 0 ? json_object_new_int64(v) : NULL);
	}
	/* How often the kernel killed in it for memory: a VM sized too tight shows here. */
	char path[4200], line[128];
	snprintf(path, sizeof(path), "%s/memory.events", dir);
	FILE *f = fopen(path, "re");
	if (f) {
		long long k = 0;
		while (fgets(line, sizeof(line), f))
			if (sscanf(line, "oom_kill %lld", &k) == 1)
				break;
		fclose(f);
		json_object_object_add(o, "oom_kills", json_object_new_int64(k));
	}
	return o;
}
