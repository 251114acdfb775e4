/*
 * Logging: one line per message, prefixed with the program name, on stderr or on the
 * file or FIFO given by log_set_file(). vCPU threads log too, so the settings are
 * atomics and each line goes out in one write(2), which never blocks on a file we
 * opened (O_NONBLOCK): a line the pipe has no room for is dropped and counted.
 */
#include "core/log.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define LINE_MAX_BYTES 1024

static atomic_int current_level = LOG_INFO;
static atomic_bool show_level = true;
static atomic_bool show_origin = false;
/* stderr until log_set_file(); then an fd whose number never changes (see there). */
static atomic_int out_fd = STDERR_FILENO;
static atomic_bool to_file; /* out_fd is not (a copy of) stderr */
static atomic_ullong dropped;
static pthread_mutex_t set_lock = PTHREAD_MUTEX_INITIALIZER;

static const char *const level_names[] = { "error", "warning", "info", "debug" };

static const char *program = "tern-vmm";

void log_set_program(const char *name)
{
	program = name;
}

void log_set_level(enum log_level level)
{
	atomic_store_explicit(&current_level, level, memory_order_relaxed);
}

enum log_level log_get_level(void)
{
	return (enum log_level)atomic_load_explicit(&current_level, memory_order_relaxed);
}

int log_level_parse(const char *s, enum log_level *out)
{
	static const struct {
		const char *name;
		enum log_level level;
	} names[] = {
		{ "error", LOG_ERROR }, { "warning", LOG_WARN }, { "warn", LOG_WARN },
		{ "info", LOG_INFO },	{ "debug", LOG_DEBUG },	 { "trace", LOG_DEBUG },
		{ "off", LOG_OFF },
	};

	for (size_t i = 0; s && i < sizeof(names) / sizeof(names[0]); i++) {
		if (!strcasecmp(s, names[i].name)) {
			*out = names[i].level;
			return 0;
		}
	}
	return -EINVAL;
}

void log_set_show_level(bool show)
{
	atomic_store_explicit(&show_level, show, memory_order_relaxed);
}

void log_set_show_origin(bool show)
{
	atomic_store_explicit(&show_origin, show, memory_order_relaxed);
}

unsigned long long log_dropped(void)
{
	return atomic_load_explicit(&dropped, memory_order_relaxed);
}

int log_open_output(const char *path, char *err, size_t errlen)
{
	/*
	 * O_NONBLOCK: opening a FIFO for writing would otherwise wait for a reader, and
	 * writing to a full one would stall whoever logs. Regular files ignore it.
	 */
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NONBLOCK, 0600);
	struct stat st;

	if (fd >= 0)
		return fd;
	int e = errno;
	/* ENXIO also means a socket or a device without a driver: name the FIFO case only. */
	if (e == ENXIO && stat(path, &st) == 0 && S_ISFIFO(st.st_mode))
		snprintf(err, errlen, "%s: no reader on the FIFO", path);
	else
		snprintf(err, errlen, "%s: %s", path, strerror(e));
	return -e;
}

int log_set_file(const char *path, char *err, size_t errlen)
{
	int fd = path ? log_open_output(path, err, errlen) : STDERR_FILENO;
	int ret = 0;

	if (fd < 0)
		return fd;
	pthread_mutex_lock(&set_lock);
	int cur = atomic_load(&out_fd);
	if (cur == STDERR_FILENO) {
		if (path)
			atomic_store(&out_fd, fd);
	} else {
		/*
		 * Replace the open file behind the same number instead of closing it: another
		 * thread may have loaded that number and be about to write, and a closed
		 * number could be reused by an unrelated file meanwhile.
		 */
		if (dup3(fd, cur, O_CLOEXEC) < 0) {
			ret = -errno;
			snprintf(err, errlen, "%s: %s", path ? path : "stderr", strerror(errno));
		}
		if (path)
			close(fd);
	}
	if (!ret)
		atomic_store(&to_file, path != NULL);
	pthread_mutex_unlock(&set_lock);
	return ret;
}

/* Appends to line[*len] what fits; the result stays NUL-terminated. */
static void append(char *line, size_t *len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	int n = vsnprintf(line + *len, LINE_MAX_BYTES - *len, fmt, ap);
	va_end(ap);
	if (n > 0)
		*len += (size_t)n < LINE_MAX_BYTES - *len ? (size_t)n : LINE_MAX_BYTES - 1 - *len;
}

static void put_line(int fd, const char *line, size_t len)
{
	ssize_t r = write(fd, line, len);

	/* stderr's failures have nowhere to be reported; those of a log file are counted. */
	if (fd != STDERR_FILENO && r != (ssize_t)len && atomic_load(&to_file))
		atomic_fetch_add_explicit(&dropped, 1, memory_order_relaxed);
}

/* fatal: die()'s lines reach stderr whatever the destination and the level. */
static void vlog(enum log_level level, const char *file, int lineno, bool fatal, const char *fmt,
		 va_list ap)
{
	char line[LINE_MAX_BYTES];
	size_t len = 0;

	line[0] = 0;
	append(line, &len, "%s: ", program);
	if (atomic_load_explicit(&show_level, memory_order_relaxed))
		append(line, &len, "%s: ", level_names[level]);
	if (file && atomic_load_explicit(&show_origin, memory_order_relaxed))
		append(line, &len, "%s:%d: ", file, lineno);
	vsnprintf(line + len, sizeof(line) - len, fmt, ap);
	len = strlen(line);
	if (len + 2 >= sizeof(line))
		len = sizeof(line) - 2;
	/* Raw-mode consoles are restored by the exit path, so a plain newline is enough. */
	line[len++] = '\n';
	line[len] = 0;
	/* One write so that lines from different threads do not interleave. */
	int fd = atomic_load(&out_fd);
	if (fatal && atomic_load(&to_file))
		put_line(STDERR_FILENO, line, len);
	put_line(fd, line, len);
}

void log_msg_at(enum log_level level, const char *file, int line, const char *fmt, ...)
{
	va_list ap;

	if (level < LOG_ERROR || level > LOG_DEBUG || level > log_get_level())
		return;
	va_start(ap, fmt);
	vlog(level, file, line, false, fmt, ap);
	va_end(ap);
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	va_list ap;

	if (level < LOG_ERROR || level > LOG_DEBUG || level > log_get_level())
		return;
	va_start(ap, fmt);
	vlog(level, NULL, 0, false, fmt, ap);
	va_end(ap);
}

void die_usage(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(LOG_ERROR, NULL, 0, true, fmt, ap);
	va_end(ap);
	exit(2);
}

void die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(LOG_ERROR, NULL, 0, true, fmt, ap);
	va_end(ap);
	exit(1);
}
