/* Tests for tern's output helpers: tables, durations and sizes, exit statuses (src/cli/). */
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/fmt.h"
#include "cli/progress.h"
#include "cli/table.h"
#include "unit.h"

static bool text_is(char *got, const char *want)
{
	bool ok = got && !strcmp(got, want);

	if (!ok)
		printf("  got:\n%s  want:\n%s", got ? got : "(null)\n", want);
	free(got);
	return ok;
}

TEST(cli_table_columns)
{
	static const char *const head[] = { "NAME", "STATE", "REASON", "AUTOSTART" };
	static const char *const r1[] = { "web", "running", "booted", "yes" };
	static const char *const r2[] = { "database-01", "shut off", "never", "no" };
	struct table *t = table_new(4, head);

	REQUIRE(t);
	REQUIRE(table_add(t, r1) == 0);
	REQUIRE(table_add(t, r2) == 0);
	/* Two spaces between columns, each as wide as its widest cell; no trailing blanks. */
	CHECK(text_is(table_format(t), "NAME         STATE     REASON  AUTOSTART\n"
				       "web          running   booted  yes\n"
				       "database-01  shut off  never   no\n"));
	table_free(t);
}

TEST(cli_table_header_only)
{
	static const char *const head[] = { "NAME", "STATE" };
	struct table *t = table_new(2, head);

	REQUIRE(t);
	CHECK(text_is(table_format(t), "NAME  STATE\n"));
	table_free(t);
}

TEST(cli_table_missing_and_wide_cells)
{
	static const char *const head[] = { "A", "B", "C" };
	static const char *const r1[] = { NULL, "x", "" };
	/* "é" is two bytes and one column: the padding counts characters. */
	static const char *const r2[] = { "caf\xc3\xa9", "longer cell", "z" };
	struct table *t = table_new(3, head);

	REQUIRE(t);
	REQUIRE(table_add(t, r1) == 0);
	REQUIRE(table_add(t, r2) == 0);
	CHECK(text_is(table_format(t), "A     B            C\n"
				       "-     x\n"
				       "caf\xc3\xa9  longer cell  z\n"));
	table_free(t);
}

TEST(cli_table_many_rows)
{
	static const char *const head[] = { "N" };
	struct table *t = table_new(1, head);
	char *text;

	REQUIRE(t);
	for (int i = 0; i < 100; i++) {
		char cell[16];
		const char *row[] = { cell };
		snprintf(cell, sizeof(cell), "%d", i);
		REQUIRE(table_add(t, row) == 0);
	}
	text = table_format(t);
	REQUIRE(text);
	CHECK(!strncmp(text, "N\n0\n1\n", 6));
	CHECK(strstr(text, "\n99\n") && text[strlen(text) - 1] == '\n');
	free(text);
	table_free(t);
}

TEST(cli_fmt_duration)
{
	char b[32];

	CHECK(!strcmp(fmt_duration(0, b, sizeof(b)), "0s"));
	CHECK(!strcmp(fmt_duration(59.9, b, sizeof(b)), "59s"));
	CHECK(!strcmp(fmt_duration(60, b, sizeof(b)), "00:01:00"));
	CHECK(!strcmp(fmt_duration(3 * 3600 + 62, b, sizeof(b)), "03:01:02"));
	CHECK(!strcmp(fmt_duration(2 * 86400 + 3600 + 1, b, sizeof(b)), "2d 01:00:01"));
	CHECK(!strcmp(fmt_duration(-5, b, sizeof(b)), "0s"));
}

TEST(cli_fmt_kib)
{
	char b[32];

	CHECK(!strcmp(fmt_kib(0, b, sizeof(b)), "0 KiB"));
	CHECK(!strcmp(fmt_kib(1023, b, sizeof(b)), "1023 KiB"));
	CHECK(!strcmp(fmt_kib(1024, b, sizeof(b)), "1.0 MiB"));
	CHECK(!strcmp(fmt_kib(1536, b, sizeof(b)), "1.5 MiB"));
	CHECK(!strcmp(fmt_kib(3LL * 1024 * 1024, b, sizeof(b)), "3.0 GiB"));
	CHECK(!strcmp(fmt_kib(5LL * 1024 * 1024 * 1024, b, sizeof(b)), "5.0 TiB"));
}

TEST(cli_exit_statuses)
{
	CHECK(cli_exit_of_status(200) == CLI_OK);
	CHECK(cli_exit_of_status(201) == CLI_OK);
	CHECK(cli_exit_of_status(204) == CLI_OK);
	CHECK(cli_exit_of_status(400) == CLI_USAGE);
	CHECK(cli_exit_of_status(403) == CLI_FAILED);
	CHECK(cli_exit_of_status(404) == CLI_FAILED);
	CHECK(cli_exit_of_status(409) == CLI_FAILED);
	CHECK(cli_exit_of_status(500) == CLI_FAILED);
	CHECK(cli_exit_of_status(504) == CLI_FAILED);
	CHECK(cli_exit_of_status(0) == CLI_UNREACHABLE);
}

TEST(cli_socket_choice)
{
	struct cli c = { 0 };

	unsetenv("TERN_SOCKET");
	cli_set_socket(&c, NULL, NULL);
	CHECK(!strcmp(c.socket, "/var/lib/tern/ternd.sock"));
	CHECK(!strcmp(c.ro_socket, "/var/lib/tern/ternd-ro.sock"));
	cli_set_socket(&c, NULL, "/srv/t");
	CHECK(!strcmp(c.socket, "/srv/t/ternd.sock"));
	CHECK(!strcmp(c.ro_socket, "/srv/t/ternd-ro.sock"));
	/* A socket named like ternd's has the read-only one beside it; another has none. */
	cli_set_socket(&c, "/run/x/ternd.sock", NULL);
	CHECK(!strcmp(c.socket, "/run/x/ternd.sock"));
	CHECK(!strcmp(c.ro_socket, "/run/x/ternd-ro.sock"));
	cli_set_socket(&c, "api.sock", NULL);
	CHECK(!strcmp(c.socket, "api.sock") && !c.ro_socket[0]);
	/* $TERN_SOCKET when no option names one. */
	setenv("TERN_SOCKET", "/e/ternd.sock", 1);
	cli_set_socket(&c, NULL, NULL);
	CHECK(!strcmp(c.socket, "/e/ternd.sock"));
	cli_set_socket(&c, NULL, "/srv/t");
	CHECK(!strcmp(c.socket, "/srv/t/ternd.sock"));
	unsetenv("TERN_SOCKET");
}

/* The progress line: a bar when ternd knows the total, bytes written when not, else time. */
TEST(cli_progress_line)
{
	char b[200];

	progress_format(b, sizeof(b), "cloning web", 12, 128LL << 20, 256LL << 20);
	CHECK(!strcmp(b, "cloning web [##########          ]  50% 128/256 MiB 12s"));
	progress_format(b, sizeof(b), "cloning web", 3, 0, 10LL << 20);
	CHECK(!strcmp(b, "cloning web [                    ]   0% 0/10 MiB 3s"));
	/* Never past the end, whatever ternd says. */
	progress_format(b, sizeof(b), "x", 1, 30LL << 20, 10LL << 20);
	CHECK(!strcmp(b, "x [####################] 100% 10/10 MiB 1s"));
	progress_format(b, sizeof(b), "saving web", 7, 100LL << 20, 0);
	CHECK(!strcmp(b, "saving web... 100 MiB written, 7s"));
	progress_format(b, sizeof(b), "saving web", 2, 0, 0);
	CHECK(!strcmp(b, "saving web... 2s"));
	/* A short buffer is cut, not overrun. */
	progress_format(b, 8, "saving web", 2, 0, 0);
	CHECK(!strcmp(b, "saving "));
}
