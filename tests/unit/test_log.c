/* The logger: level names, line formats, log files and FIFOs, die() reaching stderr. */
#include "core/log.h"
#include "tmpfile.h"
#include "unit.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* Back to the defaults every other test expects. */
static void restore(enum log_level level)
{
	char err[160];

	log_set_file(NULL, err, sizeof(err));
	log_set_show_level(true);
	log_set_show_origin(false);
	log_set_level(level);
}

TEST(log_level_parse_names)
{
	enum log_level l = LOG_INFO;

	CHECK(log_level_parse("Error", &l) == 0 && l == LOG_ERROR);
	CHECK(log_level_parse("WARNING", &l) == 0 && l == LOG_WARN);
	CHECK(log_level_parse("warn", &l) == 0 && l == LOG_WARN);
	CHECK(log_level_parse("info", &l) == 0 && l == LOG_INFO);
	CHECK(log_level_parse("Debug", &l) == 0 && l == LOG_DEBUG);
	CHECK(log_level_parse("trace", &l) == 0 && l == LOG_DEBUG);
	CHECK(log_level_parse("OFF", &l) == 0 && l == LOG_OFF);
	l = LOG_INFO;
	CHECK(log_level_parse("verbose", &l) == -EINVAL && l == LOG_INFO);
	CHECK(log_level_parse("", &l) == -EINVAL);
	CHECK(log_level_parse("info ", &l) == -EINVAL);
	CHECK(log_level_parse(NULL, &l) == -EINVAL);
}

/* The format on stderr by default is tern's original one, byte for byte. */
TEST(log_default_format_on_stderr)
{
	struct tmp t;
	enum log_level level = log_get_level();

	REQUIRE(tmp_make(&t, "stderr"));
	int fd = open(t.path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	int saved = dup(STDERR_FILENO);
	REQUIRE(fd >= 0 && saved >= 0);
	fflush(stderr);
	dup2(fd, STDERR_FILENO);
	log_set_level(LOG_INFO);
	log_info("hello %d", 42);
	log_warn("careful");
	log_debug("not shown");
	log_msg(LOG_ERROR, "plain %s", "log_msg");
	dup2(saved, STDERR_FILENO);
	close(saved);
	close(fd);
	CHECK(!strcmp(tmp_slurp(t.path), "tern-vmm: info: hello 42\n"
					 "tern-vmm: warning: careful\n"
					 "tern-vmm: error: plain log_msg\n"));
	tmp_remove(&t);
	restore(level);
}

TEST(log_file_show_level_and_origin)
{
	struct tmp t;
	char err[160], want[512];
	enum log_level level = log_get_level();
	int line;

	REQUIRE(tmp_make(&t, "log"));
	REQUIRE(log_set_file(t.path, err, sizeof(err)) == 0);
	log_set_level(LOG_DEBUG);
	log_info("default");
	log_set_show_level(false);
	log_debug("bare");
	log_set_show_origin(true);
	line = __LINE__ + 1;
	log_warn("origin only %s", "here");
	log_set_show_level(true);
	log_error("both");
	log_msg(LOG_INFO, "no call site"); /* log_msg has no origin to show */
	restore(level);
	snprintf(want, sizeof(want),
		 "tern-vmm: info: default\n"
		 "tern-vmm: bare\n"
		 "tern-vmm: %s:%d: origin only here\n"
		 "tern-vmm: error: %s:%d: both\n"
		 "tern-vmm: info: no call site\n",
		 __FILE__, line, __FILE__, line + 2);
	CHECK(!strcmp(tmp_slurp(t.path), want));
	struct stat st;
	CHECK(stat(t.path, &st) == 0 && (st.st_mode & 0777) == 0600);
	tmp_remove(&t);
}

TEST(log_file_appends_and_truncates_long_lines)
{
	struct tmp t;
	char err[160], big[2000];
	enum log_level level = log_get_level();

	REQUIRE(tmp_make(&t, "log"));
	int fd = open(t.path, O_WRONLY | O_CREAT, 0600);
	REQUIRE(fd >= 0 && write(fd, "old\n", 4) == 4);
	close(fd);
	REQUIRE(log_set_file(t.path, err, sizeof(err)) == 0);
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = 0;
	log_error("%s", big);
	restore(level);
	const char *s = tmp_slurp(t.path);
	CHECK(!strncmp(s, "old\ntern-vmm: error: xxx", 24));
	/* As always: a line is at most 1023 bytes with its newline. */
	CHECK(strlen(s) == 4 + 1023 && s[strlen(s) - 1] == '\n');
	tmp_remove(&t);
}

TEST(log_off_silences_all)
{
	struct tmp t;
	char err[160];
	enum log_level level = log_get_level();

	REQUIRE(tmp_make(&t, "log"));
	REQUIRE(log_set_file(t.path, err, sizeof(err)) == 0);
	log_set_level(LOG_OFF);
	log_error("hidden");
	log_msg(LOG_ERROR, "hidden too");
	log_msg(LOG_OFF, "not a level to log at");
	restore(level);
	CHECK(!strcmp(tmp_slurp(t.path), ""));
	tmp_remove(&t);
}

/* die() reaches stderr even with the log in a file and at Off; the file gets it too. */
TEST(log_die_reaches_stderr)
{
	struct tmp t, e;

	REQUIRE(tmp_make(&t, "log"));
	REQUIRE(tmp_make(&e, "stderr"));
	fflush(NULL);
	pid_t pid = fork();
	REQUIRE(pid >= 0);
	if (pid == 0) {
		char err[160];
		int fd = open(e.path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		if (fd < 0 || dup2(fd, STDERR_FILENO) < 0 || log_set_file(t.path, err, sizeof(err)))
			_exit(9);
		log_set_level(LOG_OFF);
		die("fatal %d", 7);
	}
	int status;
	REQUIRE(waitpid(pid, &status, 0) == pid);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 1);
	CHECK(!strcmp(tmp_slurp(e.path), "tern-vmm: error: fatal 7\n"));
	CHECK(!strcmp(tmp_slurp(t.path), "tern-vmm: error: fatal 7\n"));
	tmp_remove(&t);
	tmp_remove(&e);
}

TEST(log_fifo_needs_a_reader_and_never_blocks)
{
	struct tmp t;
	char err[160], buf[4096];
	enum log_level level = log_get_level();

	REQUIRE(tmp_make(&t, "fifo"));
	REQUIRE(mkfifo(t.path, 0600) == 0);
	CHECK(log_set_file(t.path, err, sizeof(err)) == -ENXIO);
	CHECK(strstr(err, "no reader on the FIFO") && strstr(err, t.path));
	CHECK(log_open_output(t.path, err, sizeof(err)) == -ENXIO);

	int rd = open(t.path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	REQUIRE(rd >= 0);
	REQUIRE(log_set_file(t.path, err, sizeof(err)) == 0);
	log_set_level(LOG_INFO);
	log_info("through the pipe");
	ssize_t n = read(rd, buf, sizeof(buf) - 1);
	CHECK(n == (ssize_t)strlen("tern-vmm: info: through the pipe\n"));
	buf[n > 0 ? n : 0] = 0;
	CHECK(!strcmp(buf, "tern-vmm: info: through the pipe\n"));

	/* Nobody reads: once the pipe is full, lines are dropped, not waited for. */
	unsigned long long before = log_dropped();
	for (int i = 0; i < 2000; i++)
		log_info("filler line %04d ......................................", i);
	CHECK(log_dropped() > before);
	/* What did get through is whole lines. */
	size_t total = 0;
	while ((n = read(rd, buf, sizeof(buf))) > 0)
		total += (size_t)n;
	CHECK(total > 0 && total % strlen("tern-vmm: info: filler line 0000 "
					  "......................................\n") ==
				   0);
	/* Back to stderr before the reader goes: a write to a readerless FIFO is SIGPIPE. */
	restore(level);
	close(rd);
	tmp_remove(&t);
}

TEST(log_open_errors)
{
	char err[160];

	CHECK(log_set_file("/nonexistent-dir/tern.log", err, sizeof(err)) == -ENOENT);
	CHECK(strstr(err, "/nonexistent-dir/tern.log") != NULL);
	CHECK(log_set_file("/", err, sizeof(err)) == -EISDIR);
}

#define THREADS 4
#define LINES 500

static void *logger_thread(void *arg)
{
	for (int i = 0; i < LINES; i++)
		log_info("thread %ld line %03d %s", (long)(intptr_t)arg, i,
			 "padding padding padding padding");
	return NULL;
}

/* Lines from several threads never interleave. */
TEST(log_threads_whole_lines)
{
	struct tmp t;
	char err[160];
	pthread_t th[THREADS];
	enum log_level level = log_get_level();

	REQUIRE(tmp_make(&t, "log"));
	REQUIRE(log_set_file(t.path, err, sizeof(err)) == 0);
	log_set_level(LOG_INFO);
	for (long i = 0; i < THREADS; i++)
		REQUIRE(pthread_create(&th[i], NULL, logger_thread, (void *)(intptr_t)i) == 0);
	for (int i = 0; i < THREADS; i++)
		pthread_join(th[i], NULL);
	restore(level);
	char *s = strdup(tmp_slurp(t.path));
	REQUIRE(s);
	int lines = 0, bad = 0;
	for (char *save, *l = strtok_r(s, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
		long th_id;
		int n, end = 0;
		lines++;
		if (sscanf(l,
			   "tern-vmm: info: thread %ld line %d padding padding padding padding%n",
			   &th_id, &n, &end) != 2 ||
		    l[end])
			bad++;
	}
	CHECK(lines == THREADS * LINES && bad == 0);
	free(s);
	tmp_remove(&t);
}
