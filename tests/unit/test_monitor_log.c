/*
 * Tests for tern-monitor's logs and pid file: size rotation (split at the byte, the
 * oldest dropped, a file left by an earlier run continued), the console tail, and
 * /proc/PID/stat's start time.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "monitor/line_tail.h"
#include "monitor/pid_file.h"
#include "monitor/rotlog.h"
#include "tmpfile.h"
#include "unit.h"

/* PATH.i, or PATH itself for i == 0. */
static const char *nth(const struct tmp *t, unsigned int i)
{
	static char p[128];

	if (i)
		snprintf(p, sizeof(p), "%s.%u", t->path, i);
	else
		snprintf(p, sizeof(p), "%s", t->path);
	return p;
}

static bool exists(const char *path)
{
	return access(path, F_OK) == 0;
}

static void remove_all(struct tmp *t)
{
	for (unsigned int i = 1; i <= 8; i++)
		unlink(nth(t, i));
	tmp_remove(t);
}

static void put(struct rotlog *l, const char *s)
{
	CHECK(rotlog_write(l, s, strlen(s)) == 0);
}

TEST(monitor_log_rotates_at_size)
{
	struct tmp t;
	struct rotlog l;

	REQUIRE(tmp_make(&t, "console.log"));
	REQUIRE(rotlog_open(&l, t.path, 10, 2) == 0);
	put(&l, "0123456");
	CHECK(!exists(nth(&t, 1)));
	/* 3 bytes fill the first file; the rest starts the next one. */
	put(&l, "789abcdefghij");
	CHECK(!strcmp(tmp_slurp(nth(&t, 1)), "0123456789"));
	CHECK(!strcmp(tmp_slurp(t.path), "abcdefghij"));
	CHECK(!exists(nth(&t, 2)));
	/* Exactly full: the next byte rotates, not this write. */
	put(&l, "k");
	CHECK(!strcmp(tmp_slurp(nth(&t, 2)), "0123456789"));
	CHECK(!strcmp(tmp_slurp(nth(&t, 1)), "abcdefghij"));
	CHECK(!strcmp(tmp_slurp(t.path), "k"));
	/* keep=2: the oldest goes. */
	put(&l, "lmnopqrstu");
	CHECK(!strcmp(tmp_slurp(nth(&t, 2)), "abcdefghij"));
	CHECK(!strcmp(tmp_slurp(nth(&t, 1)), "klmnopqrst"));
	CHECK(!strcmp(tmp_slurp(t.path), "u"));
	CHECK(!exists(nth(&t, 3)));
	rotlog_close(&l);
	remove_all(&t);
}

TEST(monitor_log_one_write_spans_many_files)
{
	struct tmp t;
	struct rotlog l;
	char big[45];

	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (char)('A' + i % 26);
	REQUIRE(tmp_make(&t, "vmm.log"));
	REQUIRE(rotlog_open(&l, t.path, 10, 3) == 0);
	CHECK(rotlog_write(&l, big, sizeof(big)) == 0);
	/* 45 bytes: four full files and 5 bytes; with keep=3 the first ten are gone. */
	CHECK(!strcmp(tmp_slurp(nth(&t, 3)), "KLMNOPQRST"));
	CHECK(!strcmp(tmp_slurp(nth(&t, 2)), "UVWXYZABCD"));
	CHECK(!strcmp(tmp_slurp(nth(&t, 1)), "EFGHIJKLMN"));
	CHECK(!strcmp(tmp_slurp(t.path), "OPQRS"));
	CHECK(!exists(nth(&t, 4)));
	rotlog_close(&l);
	remove_all(&t);
}

TEST(monitor_log_continues_an_earlier_file)
{
	struct tmp t;
	struct rotlog l;

	REQUIRE(tmp_make(&t, "console.log"));
	int fd = open(t.path, O_WRONLY | O_CREAT, 0600);
	REQUIRE(fd >= 0);
	CHECK(write(fd, "earlier\n", 8) == 8);
	close(fd);
	REQUIRE(rotlog_open(&l, t.path, 10, 1) == 0);
	put(&l, "now");
	CHECK(!strcmp(tmp_slurp(nth(&t, 1)), "earlier\nno"));
	CHECK(!strcmp(tmp_slurp(t.path), "w"));
	rotlog_close(&l);
	remove_all(&t);

	/* An earlier file already past the size (a smaller --log-size now) rotates first. */
	REQUIRE(tmp_make(&t, "console.log"));
	fd = open(t.path, O_WRONLY | O_CREAT, 0600);
	REQUIRE(fd >= 0);
	CHECK(write(fd, "0123456789abcdef", 16) == 16);
	close(fd);
	REQUIRE(rotlog_open(&l, t.path, 10, 1) == 0);
	put(&l, "x");
	CHECK(!strcmp(tmp_slurp(nth(&t, 1)), "0123456789abcdef"));
	CHECK(!strcmp(tmp_slurp(t.path), "x"));
	rotlog_close(&l);
	remove_all(&t);
}

TEST(monitor_log_mode_0600)
{
	struct tmp t;
	struct rotlog l;
	struct stat st;

	REQUIRE(tmp_make(&t, "console.log"));
	REQUIRE(rotlog_open(&l, t.path, 4, 1) == 0);
	put(&l, "abcdef");
	REQUIRE(stat(t.path, &st) == 0);
	CHECK((st.st_mode & 0777) == 0600);
	rotlog_close(&l);
	remove_all(&t);
}

TEST(monitor_log_unwritable_reports)
{
	struct rotlog l;

	CHECK(rotlog_open(&l, "/nonexistent-tern-dir/console.log", 10, 1) < 0);
	CHECK(rotlog_write(&l, "x", 1) < 0);
	rotlog_close(&l);
}

TEST(monitor_tail_last_lines)
{
	static struct line_tail t;
	const char *out[LINE_TAIL_LINES];
	char line[32];

	line_tail_init(&t);
	CHECK(line_tail_get(&t, out, LINE_TAIL_LINES) == 0);
	for (int i = 0; i < 25; i++) {
		snprintf(line, sizeof(line), "line %d\r\n", i);
		/* Fed in two pieces: lines cross reads. */
		line_tail_feed(&t, line, 3);
		line_tail_feed(&t, line + 3, strlen(line) - 3);
	}
	REQUIRE(line_tail_get(&t, out, LINE_TAIL_LINES) == 20);
	CHECK(!strcmp(out[0], "line 5"));
	CHECK(!strcmp(out[19], "line 24"));
	/* An unfinished line counts, and pushes the oldest out. */
	line_tail_feed(&t, "Kernel panic", 12);
	REQUIRE(line_tail_get(&t, out, LINE_TAIL_LINES) == 20);
	CHECK(!strcmp(out[0], "line 6"));
	CHECK(!strcmp(out[19], "Kernel panic"));
	REQUIRE(line_tail_get(&t, out, 1) == 1);
	CHECK(!strcmp(out[0], "Kernel panic"));
	/* Empty lines are lines. */
	line_tail_feed(&t, "\n\n", 2);
	REQUIRE(line_tail_get(&t, out, 2) == 2);
	CHECK(!strcmp(out[0], "Kernel panic"));
	CHECK(!strcmp(out[1], ""));
}

TEST(monitor_tail_long_line_cut)
{
	static struct line_tail t;
	static char big[LINE_TAIL_WIDTH * 3];
	const char *out[LINE_TAIL_LINES];

	line_tail_init(&t);
	memset(big, 'x', sizeof(big));
	line_tail_feed(&t, big, sizeof(big));
	line_tail_feed(&t, "\nshort\n", 7);
	REQUIRE(line_tail_get(&t, out, LINE_TAIL_LINES) == 2);
	CHECK(strlen(out[0]) == LINE_TAIL_WIDTH);
	CHECK(!strcmp(out[1], "short"));
}

TEST(monitor_pid_start_time)
{
	unsigned long long start = 0, again = 0;

	/* comm may hold spaces and parentheses: the fields count from the last ')'. */
	CHECK(pid_file_parse_start("42 (a) b (c) S 1 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 "
				   "0 987654 1000 200",
				   &start) == 0);
	CHECK(start == 987654);
	CHECK(pid_file_parse_start("42 (x) S 1 2 3", &start) < 0);
	CHECK(pid_file_parse_start("no parenthesis", &start) < 0);
	REQUIRE(pid_file_start_time(getpid(), &start) == 0);
	REQUIRE(pid_file_start_time(getpid(), &again) == 0);
	CHECK(start > 0 && start == again);
	CHECK(pid_file_start_time(0x7ffffff0, &start) == -ESRCH);
}

TEST(monitor_pid_file)
{
	struct tmp t;
	unsigned long long start;
	char want[160];

	REQUIRE(tmp_make(&t, "pid"));
	REQUIRE(pid_file_start_time(getpid(), &start) == 0);
	REQUIRE(pid_file_write(t.path, getpid(), getpid()) == 0);
	snprintf(want, sizeof(want), "%d %llu %d %llu\n", (int)getpid(), start, (int)getpid(),
		 start);
	CHECK(!strcmp(tmp_slurp(t.path), want));
	snprintf(want, sizeof(want), "%s.tmp", t.path);
	CHECK(!exists(want));
	tmp_remove(&t);
}
