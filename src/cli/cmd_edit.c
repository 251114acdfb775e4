/*
 * `tern edit NAME`: the definition in the user's editor, PUT back when changed. ternd
 * checks it; when it refuses, the user sees why and edits the same file again.
 */
#include "cli/cli.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define FILE_MAX (1u << 20)

static const char *editor(void)
{
	const char *e = getenv("VISUAL");

	if (!e || !*e)
		e = getenv("EDITOR");
	return e && *e ? e : "vi";
}

/*
 * Runs the editor on path through the shell, so that EDITOR="code --wait" works; the
 * path goes as $1, never parsed by the shell. tern ignores ^C meanwhile, as system() does.
 */
static int run_editor(const char *path)
{
	char cmd[1024];
	struct sigaction ign = { .sa_handler = SIG_IGN }, oint, oquit;
	int st;
	pid_t pid;

	snprintf(cmd, sizeof(cmd), "%s \"$1\"", editor());
	sigaction(SIGINT, &ign, &oint);
	sigaction(SIGQUIT, &ign, &oquit);
	pid = fork();
	if (pid == 0) {
		sigaction(SIGINT, &oint, NULL);
		sigaction(SIGQUIT, &oquit, NULL);
		execl("/bin/sh", "sh", "-c", cmd, "sh", path, (char *)NULL);
		_exit(127);
	}
	while (pid > 0 && waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	sigaction(SIGINT, &oint, NULL);
	sigaction(SIGQUIT, &oquit, NULL);
	if (pid < 0) {
		cli_error("cannot run the editor: %s", strerror(errno));
		return -1;
	}
	if (!WIFEXITED(st) || WEXITSTATUS(st)) {
		cli_error("the editor (%s) failed (%s %d): nothing sent", editor(),
			  WIFEXITED(st) ? "exit status" : "signal",
			  WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
		return -1;
	}
	return 0;
}

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "re");
	char *buf = malloc(FILE_MAX + 1);
	size_t n = 0;

	if (f && buf)
		n = fread(buf, 1, FILE_MAX + 1, f);
	if (!f || !buf || ferror(f) || n > FILE_MAX) {
		cli_error("%s: %s", path,
			  !f ? strerror(errno) : "cannot read it back (over 1 MiB?)");
		free(buf);
		buf = NULL;
	} else {
		buf[n] = 0;
	}
	if (f)
		fclose(f);
	return buf;
}

/* "Edit again?" on the terminal: true unless the user says no (or stdin ends). */
static bool again(void)
{
	char answer[16];

	fprintf(stderr, "Edit again? [Y/n] ");
	fflush(stderr);
	if (!fgets(answer, sizeof(answer), stdin))
		return false;
	return answer[0] != 'n' && answer[0] != 'N';
}

static int write_temp(const char *name, const char *text, char *path, size_t n)
{
	const char *dir = getenv("TMPDIR");
	size_t len = strlen(text);
	int fd;

	snprintf(path, n, "%s/tern-%s-XXXXXX.json", dir && *dir ? dir : "/tmp", name);
	if ((fd = mkstemps(path, 5)) < 0) {
		cli_error("cannot make a temporary file %s: %s", path, strerror(errno));
		return -1;
	}
	if (write(fd, text, len) != (ssize_t)len || close(fd)) {
		cli_error("%s: %s", path, strerror(errno));
		unlink(path);
		return -1;
	}
	return 0;
}

/* *last: what the file held before the editor ran (replaced by each version sent). */
static int edit_loop(struct cli *c, const char *vm, const char *name, const char *tmp, char **last)
{
	bool refused = false;
	struct cli_reply r;
	char *text;
	int e;

	for (;;) {
		if (run_editor(tmp))
			return CLI_FAILED;
		if (!(text = slurp(tmp)))
			return CLI_FAILED;
		if (!strcmp(text, *last)) {
			free(text);
			if (refused) {
				cli_error("%s: the definition ternd refused is unchanged: nothing "
					  "sent",
					  name);
				return CLI_USAGE;
			}
			printf("Definition of %s unchanged: nothing sent\n", name);
			return CLI_OK;
		}
		e = cli_request(c, "PUT", vm, text, CLI_OP_TIMEOUT_MS, &r);
		free(*last);
		*last = text;
		if (!e) {
			cli_reply_free(&r);
			printf("Definition of %s updated\n", name);
			return CLI_OK;
		}
		cli_error("%s", r.err);
		cli_reply_free(&r);
		if (e != CLI_USAGE) {
			cli_error("your edits are in %s", tmp);
			return -e; /* keep the file */
		}
		refused = true;
		/* Without a terminal nobody could answer: a script gets status 2 at once. */
		if (!isatty(STDIN_FILENO) || !again())
			return CLI_USAGE;
	}
}

int cmd_edit(struct cli *c, int argc, char **argv)
{
	const char *name;
	struct json_object *vm, *def;
	char path[160], tmp[4200], *text;
	int e;

	if (cli_args(c, argc, argv, NULL, 0, &name, 1))
		return CLI_OK;
	if ((e = cli_get_definition(c, name, &vm, &def)))
		return e;
	cli_vm_path(name, NULL, path, sizeof(path));
	if (asprintf(&text, "%s\n",
		     json_object_to_json_string_ext(
			     def, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
					  JSON_C_TO_STRING_NOSLASHESCAPE)) < 0)
		text = NULL;
	json_object_put(vm);
	if (!text || write_temp(name, text, tmp, sizeof(tmp))) {
		free(text);
		return CLI_FAILED;
	}
	/* Negative: the edits were not stored, and the file keeps them. */
	e = edit_loop(c, path, name, tmp, &text);
	free(text);
	if (e >= 0)
		unlink(tmp);
	return e < 0 ? -e : e;
}
