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
#include <sys/stat.h>
#include <sys/sysmacros.h>
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
	/* io only where the kernel has it: without it only the disks' caps are refused. */
	static const char *const wanted[] = { "cpu", "memory", "pids", "io" };
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
		char avail[512] = "";
		read_file(dir, "cgroup.controllers", avail, sizeof(avail));
		for (size_t i = 0; i < sizeof(wanted) / sizeof(wanted[0]); i++) {
			char plus[16];
			if (!strcmp(wanted[i], "io") && !has_word(avail, "io"))
				continue;
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

/*
 * The whole block device under a disk's image: the file system's device (or the device
 * itself, for a disk that is one), a partition taken to its disk, since io.max takes
 * whole disks. 0, or -ENODEV when the file system has none (tmpfs, overlayfs, NFS ...).
 */
static int disk_device(const char *path, unsigned int *maj, unsigned int *min, char *err, size_t n)
{
	char sys[128], buf[64];
	struct stat st;

	if (stat(path, &st))
		return fail_msg(err, n, -errno, "cannot stat '%s': %s", path, strerror(errno));
	dev_t dev = S_ISBLK(st.st_mode) ? st.st_rdev : st.st_dev;
	if (major(dev) == 0)
		return fail_msg(err, n, -ENODEV,
				"'%s' is on a file system with no block device of its own (tmpfs, "
				"overlayfs, a network file system): io.max needs one",
				path);
	*maj = major(dev);
	*min = minor(dev);
	snprintf(sys, sizeof(sys), "/sys/dev/block/%u:%u/partition", *maj, *min);
	if (access(sys, F_OK) == 0) {
		snprintf(sys, sizeof(sys), "/sys/dev/block/%u:%u/..", *maj, *min);
		if (read_file(sys, "dev", buf, sizeof(buf)) || sscanf(buf, "%u:%u", maj, min) != 2)
			return fail_msg(err, n, -ENODEV, "cannot find the disk of partition %u:%u",
					*maj, *min);
	}
	return 0;
}

/* One io.max value: the sum of the disks' caps on a device, "max" if one of them has none. */
static void io_value(char *buf, size_t n, const char *key, uint64_t sum, bool uncapped,
		     uint64_t unit)
{
	if (uncapped)
		snprintf(buf, n, " %s=max", key);
	else
		snprintf(buf, n, " %s=%llu", key, (unsigned long long)(sum * unit));
}

/*
 * io.max for every block device under the VM's disks. Disks on one device share its cap:
 * the sum of theirs, or none when one of them has none there. A device whose disks have no
 * cap gets "max" (a cap removed while it runs goes).
 */
static int apply_io(const char *dir, const struct vmdef *d, char *err, size_t n)
{
	unsigned int maj[VMDEF_MAX_DISKS], min[VMDEF_MAX_DISKS];
	bool any = false, have_io;
	char path[4200], why[512];
	int r;

	for (unsigned int i = 0; i < d->limits.ndisks; i++) {
		const struct vmdef_disk_io *io = &d->limits.disks[i];
		any |= io->read_iops || io->write_iops || io->read_mib_s || io->write_mib_s;
	}
	snprintf(path, sizeof(path), "%s/io.max", dir);
	have_io = access(path, W_OK) == 0;
	if (!have_io)
		return any ? fail_msg(err, n, -ENODEV,
				      "'limits.disks': this host's cgroups have no io controller, "
				      "so no disk can be capped") :
			     0;
	for (unsigned int i = 0; i < d->ndisks; i++) {
		if ((r = disk_device(d->disks[i].path, &maj[i], &min[i], why, sizeof(why)))) {
			bool capped =
				i < d->limits.ndisks &&
				(d->limits.disks[i].read_iops || d->limits.disks[i].write_iops ||
				 d->limits.disks[i].read_mib_s || d->limits.disks[i].write_mib_s);
			if (capped)
				return fail_msg(err, n, r, "'limits.disks[%u]': %s", i, why);
			maj[i] = 0; /* not capped, and no device: nothing to write */
		}
	}
	for (unsigned int i = 0; i < d->ndisks; i++) {
		if (!maj[i])
			continue;
		uint64_t sum[4] = { 0 };
		bool open[4] = { false };
		bool first = true;
		for (unsigned int j = 0; j < d->ndisks; j++) {
			if (maj[j] != maj[i] || min[j] != min[i])
				continue;
			if (j < i) {
				first = false; /* written with disk j already */
				break;
			}
			static const struct vmdef_disk_io none;
			const struct vmdef_disk_io *io =
				j < d->limits.ndisks ? &d->limits.disks[j] : &none;
			const unsigned int v[] = { io->read_mib_s, io->write_mib_s, io->read_iops,
						   io->write_iops };
			for (size_t k = 0; k < 4; k++) {
				sum[k] += v[k];
				open[k] |= !v[k];
			}
		}
		if (!first)
			continue;
		char line[256], part[64];
		snprintf(line, sizeof(line), "%u:%u", maj[i], min[i]);
		static const char *const keys[] = { "rbps", "wbps", "riops", "wiops" };
		for (size_t k = 0; k < 4; k++) {
			io_value(part, sizeof(part), keys[k], sum[k], open[k],
				 k < 2 ? 1ULL << 20 : 1);
			snprintf(line + strlen(line), sizeof(line) - strlen(line), "%s", part);
		}
		if ((r = write_file(dir, "io.max", line, err, n)))
			return r;
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
	if ((r = write_file(dir, "pids.max", v, err, n)))
		return r;
	return apply_io(dir, d, err, n);
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
	/* io.max: "MAJ:MIN rbps=... wbps=... riops=... wiops=..." per capped device. */
	snprintf(path, sizeof(path), "%s/io.max", dir);
	if ((f = fopen(path, "re"))) {
		struct json_object *io = json_object_new_object();
		while (fgets(line, sizeof(line), f)) {
			char dev[32];
			int at = 0;
			line[strcspn(line, "\n")] = 0;
			if (sscanf(line, "%31s %n", dev, &at) == 1 && at > 0)
				json_object_object_add(io, dev, json_object_new_string(line + at));
		}
		fclose(f);
		json_object_object_add(o, "io_max", io);
	}
	return o;
}
