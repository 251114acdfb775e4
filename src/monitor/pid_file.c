/* The monitor's pid file (pid_file.h). */
#include "monitor/pid_file.h"
#include "monitor/run_status.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int pid_file_parse_start(const char *stat, unsigned long long *start)
{
	/* comm is the only field that may hold spaces; it ends at the last ')'. */
	const char *p = strrchr(stat, ')');
	char *end;

	if (!p)
		return -EINVAL;
	p++;
	/* After comm come field 3 (state) ... field 22 (starttime): skip 19 fields. */
	for (int field = 3; field < 22; field++) {
		while (*p == ' ')
			p++;
		if (!*p)
			return -EINVAL;
		while (*p && *p != ' ')
			p++;
	}
	while (*p == ' ')
		p++;
	if (*p < '0' || *p > '9')
		return -EINVAL;
	errno = 0;
	*start = strtoull(p, &end, 10);
	if (errno || (*end && *end != ' ' && *end != '\n'))
		return -EINVAL;
	return 0;
}

int pid_file_start_time(pid_t pid, unsigned long long *start)
{
	char path[64], buf[1024];
	int fd;
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? -ESRCH : -errno;
	n = read(fd, buf, sizeof(buf) - 1);
	int e = errno;
	close(fd);
	if (n < 0)
		return -e;
	buf[n] = 0;
	return pid_file_parse_start(buf, start);
}

int pid_file_write(const char *path, pid_t monitor, pid_t vmm)
{
	unsigned long long ms, vs;
	char line[128];
	int r = pid_file_start_time(monitor, &ms);

	if (!r)
		r = pid_file_start_time(vmm, &vs);
	if (r)
		return r;
	snprintf(line, sizeof(line), "%d %llu %d %llu\n", (int)monitor, ms, (int)vmm, vs);
	return run_status_write_file(path, line);
}
