/*
 * Tests for the status files (src/monitor/run_status.h): tern-vmm's status.vmm written
 * and read back, and the monitor's status composed for each way PROGRAM can end.
 */
#include <errno.h>
#include <json-c/json.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "monitor/run_status.h"
#include "tmpfile.h"
#include "unit.h"

/* W_EXITCODE / W_STOPCODE style words as waitpid() gives them. */
#define EXITED(n) ((n) << 8)
#define KILLED(sig) (sig)

static json_object *parse(const char *text)
{
	return text ? json_tokener_parse(text) : NULL;
}

static const char *str(json_object *o, const char *key)
{
	json_object *v;

	return json_object_object_get_ex(o, key, &v) ? json_object_get_string(v) : "";
}

static int num(json_object *o, const char *key)
{
	json_object *v;

	return json_object_object_get_ex(o, key, &v) ? json_object_get_int(v) : -12345;
}

TEST(monitor_status_vmm_roundtrip)
{
	struct tmp t;
	struct run_status_vmm v;
	struct stat st;

	REQUIRE(tmp_make(&t, "status.vmm"));
	char *text = run_status_format_vmm("debug-exit", 7, "guest wrote \"7\" to the port");
	REQUIRE(text);
	CHECK(!strcmp(text, "{\"reason\":\"debug-exit\",\"exit_status\":7,\"message\":\"guest "
			    "wrote \\\"7\\\" to the port\"}"));
	REQUIRE(run_status_write_file(t.path, text) == 0);
	free(text);
	REQUIRE(stat(t.path, &st) == 0);
	CHECK((st.st_mode & 0777) == 0600);
	char tmp[128];
	snprintf(tmp, sizeof(tmp), "%s.tmp", t.path);
	CHECK(access(tmp, F_OK) < 0);
	REQUIRE(run_status_read_vmm(t.path, &v) == 0);
	CHECK(!strcmp(v.reason, "debug-exit"));
	CHECK(v.exit_status == 7);
	CHECK(!strcmp(v.message, "guest wrote \"7\" to the port"));

	/* Rewritten whole: the second write replaces the first. */
	text = run_status_format_vmm("poweroff", 0, "guest powered off");
	REQUIRE(run_status_write_file(t.path, text) == 0);
	free(text);
	REQUIRE(run_status_read_vmm(t.path, &v) == 0);
	CHECK(!strcmp(v.reason, "poweroff") && v.exit_status == 0);
	tmp_remove(&t);
}

TEST(monitor_status_vmm_refused)
{
	static const char *const bad[] = {
		"",
		"not json",
		"{\"reason\":\"poweroff\",\"exit_status\":0}",
		"{\"reason\":\"sleepy\",\"exit_status\":0,\"message\":\"x\"}",
		"{\"reason\":\"poweroff\",\"exit_status\":\"0\",\"message\":\"x\"}",
		"{\"reason\":1,\"exit_status\":0,\"message\":\"x\"}",
		"[1,2,3]",
	};
	struct tmp t;
	struct run_status_vmm v;

	REQUIRE(tmp_make(&t, "status.vmm"));
	CHECK(run_status_read_vmm(t.path, &v) == -ENOENT);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		REQUIRE(run_status_write_file(t.path, bad[i]) == 0);
		CHECK(run_status_read_vmm(t.path, &v) == -EINVAL);
	}
	tmp_remove(&t);
}

/* A jailed tern-vmm writes status.vmm in a directory it owns: what else it could leave
 * there (a symlink to a file only root reads, a FIFO, a huge file) is no status. */
TEST(monitor_status_vmm_hostile_files)
{
	struct tmp t;
	struct run_status_vmm v;
	char target[200];

	REQUIRE(tmp_make(&t, "status.vmm"));
	char *text = run_status_format_vmm("poweroff", 0, "guest powered off");
	REQUIRE(text);
	snprintf(target, sizeof(target), "%s.real", t.path);
	REQUIRE(run_status_write_file(target, text) == 0);
	REQUIRE(run_status_read_vmm(target, &v) == 0);
	REQUIRE(symlink(target, t.path) == 0);
	CHECK(run_status_read_vmm(t.path, &v) == -EINVAL);
	unlink(t.path);
	REQUIRE(mkfifo(t.path, 0600) == 0);
	CHECK(run_status_read_vmm(t.path, &v) == -EINVAL); /* and it did not block */
	unlink(t.path);
	/* Valid JSON, but past the bound: spaces after the object. */
	size_t len = strlen(text), big = RUN_STATUS_VMM_MAX + 1;
	char *huge = malloc(big + 1);
	REQUIRE(huge);
	memset(huge, ' ', big);
	memcpy(huge, text, len);
	huge[big] = 0;
	REQUIRE(run_status_write_file(t.path, huge) == 0);
	CHECK(run_status_read_vmm(t.path, &v) == -EINVAL);
	huge[big - 1] = 0; /* at the bound: read */
	REQUIRE(run_status_write_file(t.path, huge) == 0);
	CHECK(run_status_read_vmm(t.path, &v) == 0);
	free(huge);
	free(text);
	unlink(target);
	tmp_remove(&t);
}

TEST(monitor_status_write_fails_cleanly)
{
	CHECK(run_status_write_file("/nonexistent-tern-dir/status", "{}") == -ENOENT);
}

static const char *const tail3[] = { "one", "two", "three" };

TEST(monitor_status_from_vmm)
{
	struct run_status_vmm v = { "crash", 3, "guest crashed" };
	struct run_status_in in = {
		.ran = true,
		.wait_status = EXITED(3),
		.ended_at = 1764921600.25,
		.program = "tern-vmm",
		.vmm = &v,
		.last_log_line = "tern-vmm: error: RIP ...",
		.tail = tail3,
		.ntail = 3,
	};
	char *text = run_status_compose(&in);
	json_object *o = parse(text), *tail, *ended;

	REQUIRE(o);
	CHECK(!strncmp(text,
		       "{\"exit_status\":3,\"signal\":0,\"reason\":\"crash\",\"ended_at\":"
		       "1764921600.250,\"message\":\"guest crashed\",\"console_tail\":[",
		       strlen("{\"exit_status\":3,\"signal\":0,\"reason\":\"crash\",\"ended_at\":"
			      "1764921600.250,\"message\":\"guest crashed\",\"console_tail\":[")));
	CHECK(json_object_object_get_ex(o, "ended_at", &ended) &&
	      json_object_is_type(ended, json_type_double) &&
	      json_object_get_double(ended) == 1764921600.25);
	REQUIRE(json_object_object_get_ex(o, "console_tail", &tail));
	REQUIRE(json_object_array_length(tail) == 3);
	CHECK(!strcmp(json_object_get_string(json_object_array_get_idx(tail, 0)), "one"));
	CHECK(!strcmp(json_object_get_string(json_object_array_get_idx(tail, 2)), "three"));
	json_object_put(o);
	free(text);

	/* status.vmm says how it ended even when a signal came after it was written. */
	struct run_status_vmm off = { "poweroff", 0, "guest powered off" };
	in.vmm = &off;
	in.wait_status = KILLED(SIGKILL);
	text = run_status_compose(&in);
	o = parse(text);
	REQUIRE(o);
	CHECK(!strcmp(str(o, "reason"), "poweroff"));
	CHECK(num(o, "exit_status") == 128 + SIGKILL && num(o, "signal") == SIGKILL);
	json_object_put(o);
	free(text);
}

TEST(monitor_status_seccomp_kill_names_the_call)
{
	struct run_status_in in = {
		.ran = true,
		.wait_status = KILLED(SIGSYS),
		.ended_at = 1.5,
		.program = "tern-vmm",
		.last_log_line = "tern-vmm: error: seccomp: thread vcpu0 (vcpu list) called socket "
				 "(41) for address family 2, which its list does not allow",
	};
	char *text = run_status_compose(&in);
	json_object *o = parse(text);

	REQUIRE(o);
	CHECK(num(o, "signal") == SIGSYS && !strcmp(str(o, "reason"), "killed"));
	CHECK(strstr(str(o, "message"), "signal 31") != NULL);
	CHECK(strstr(str(o, "message"), "vcpu0 (vcpu list) called socket (41)") != NULL);
	json_object_put(o);
	free(text);
}

TEST(monitor_status_killed)
{
	struct run_status_in in = {
		.ran = true,
		.wait_status = KILLED(SIGKILL),
		.ended_at = 1.5,
		.program = "tern-vmm",
		.last_log_line = "tern-vmm: info: something",
	};
	char *text = run_status_compose(&in);
	json_object *o = parse(text), *tail;

	REQUIRE(o);
	CHECK(num(o, "exit_status") == 137);
	CHECK(num(o, "signal") == 9);
	CHECK(!strcmp(str(o, "reason"), "killed"));
	CHECK(strstr(str(o, "message"), "signal 9") != NULL);
	CHECK(json_object_object_get_ex(o, "console_tail", &tail) &&
	      json_object_array_length(tail) == 0);
	json_object_put(o);
	free(text);
}

TEST(monitor_status_error)
{
	struct run_status_in in = {
		.ran = true,
		.wait_status = EXITED(2),
		.ended_at = 2,
		.program = "tern-vmm",
		.last_log_line = "tern-vmm: error: --kernel: '/x' cannot be opened",
	};
	char *text = run_status_compose(&in);
	json_object *o = parse(text);

	/* No status.vmm: its last log line is the best word on why. */
	REQUIRE(o);
	CHECK(num(o, "exit_status") == 2 && num(o, "signal") == 0);
	CHECK(!strcmp(str(o, "reason"), "error"));
	CHECK(!strcmp(str(o, "message"), "tern-vmm: error: --kernel: '/x' cannot be opened"));
	json_object_put(o);
	free(text);

	/* Silent, and exit 0 without status.vmm: still an error, saying what is known. */
	in.wait_status = EXITED(0);
	in.last_log_line = NULL;
	text = run_status_compose(&in);
	o = parse(text);
	REQUIRE(o);
	CHECK(num(o, "exit_status") == 0 && !strcmp(str(o, "reason"), "error"));
	CHECK(strstr(str(o, "message"), "exited with status 0") != NULL);
	json_object_put(o);
	free(text);

	/* The monitor's own reason (exec failed) comes before PROGRAM's log. */
	in.wait_status = EXITED(127);
	in.failure = "cannot run 'tern-vmm': No such file or directory";
	in.last_log_line = "unrelated";
	text = run_status_compose(&in);
	o = parse(text);
	REQUIRE(o);
	CHECK(num(o, "exit_status") == 127 && !strcmp(str(o, "reason"), "error"));
	CHECK(!strcmp(str(o, "message"), in.failure));
	json_object_put(o);
	free(text);

	/* Never forked at all. */
	in.ran = false;
	in.failure = "console.sock: Permission denied";
	text = run_status_compose(&in);
	o = parse(text);
	REQUIRE(o);
	CHECK(num(o, "exit_status") == -1 && num(o, "signal") == 0);
	CHECK(!strcmp(str(o, "message"), in.failure));
	json_object_put(o);
	free(text);
}

TEST(monitor_status_text_made_valid)
{
	/* Bad UTF-8 (a lone continuation, an overlong, a surrogate, a cut sequence) and ESC. */
	static const char *const tail[] = { "ok \xc3\xa9",
					    "bad \x80 \xc0\xaf \xed\xa0\x80 \xe2\x82",
					    "\x1b[1mbold" };
	struct run_status_in in = {
		.ran = true,
		.wait_status = KILLED(SIGTERM),
		.program = "p",
		.tail = tail,
		.ntail = 3,
	};
	char *text = run_status_compose(&in);
	json_object *o = parse(text), *t;

	REQUIRE(o);
	REQUIRE(json_object_object_get_ex(o, "console_tail", &t));
	CHECK(!strcmp(json_object_get_string(json_object_array_get_idx(t, 0)), "ok \xc3\xa9"));
	CHECK(!strcmp(
		json_object_get_string(json_object_array_get_idx(t, 1)),
		"bad \xef\xbf\xbd \xef\xbf\xbd\xef\xbf\xbd \xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd "
		"\xef\xbf\xbd\xef\xbf\xbd"));
	CHECK(!strcmp(json_object_get_string(json_object_array_get_idx(t, 2)), "\x1b[1mbold"));
	CHECK(strstr(text, "\\u001b") != NULL);
	json_object_put(o);
	free(text);
}
