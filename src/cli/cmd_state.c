/* The lifecycle commands: start, shutdown, destroy, reboot, suspend, resume, save. */
#include "cli/cli.h"
#include "cli/progress.h"

#include <stdio.h>
#include <string.h>

#define START_TIMEOUT_MS 3630000 /* ternd bounds a start by --start-timeout (at most 3600 s) */
#define SHUTDOWN_DEFAULT_S 60	 /* ternd's default */
#define SHUTDOWN_MAX_S 86400

struct op {
	const char *op;	   /* the path's last part */
	const char *doing; /* for the progress line: "saving" */
	const char *done;  /* "Started": printed before the name */
	const char *body;  /* request body, or NULL */
	int timeout_ms;
};

static int run_op(struct cli *c, const char *name, const struct op *op)
{
	struct json_object *vm;
	struct progress *p = NULL;
	char path[160], what[160];
	int e;

	cli_vm_path(name, NULL, path, sizeof(path));
	strcat(path, "/");
	strcat(path, op->op);
	if (op->doing) {
		snprintf(what, sizeof(what), "%s %s", op->doing, name);
		p = progress_start_job(c, what, name);
	}
	e = cli_call(c, "POST", path, op->body, op->timeout_ms, &vm);
	progress_stop(p);
	if (e)
		return e;
	if (c->json) {
		cli_print_json(vm);
	} else {
		printf("%s %s", op->done, cli_str(vm, "name", name));
		if (!strcmp(op->op, "start") && !strcmp(cli_str(vm, "reason", ""), "restored"))
			printf(" (restored from its managed save)");
		if (!strcmp(op->op, "save"))
			printf(": tern start restores it");
		printf("\n");
	}
	json_object_put(vm);
	return CLI_OK;
}

static int simple(struct cli *c, int argc, char **argv, const struct op *op)
{
	const char *name;

	if (cli_args(c, argc, argv, NULL, 0, &name, 1))
		return CLI_OK;
	return run_op(c, name, op);
}

int cmd_start(struct cli *c, int argc, char **argv)
{
	static const struct op op = { "start", NULL, "Started", NULL, START_TIMEOUT_MS };

	return simple(c, argc, argv, &op);
}

int cmd_restore(struct cli *c, int argc, char **argv)
{
	static const struct op op = { "restore", NULL, "Restored", NULL, START_TIMEOUT_MS };

	return simple(c, argc, argv, &op);
}

int cmd_destroy(struct cli *c, int argc, char **argv)
{
	static const struct op op = { "destroy", NULL, "Destroyed", NULL, CLI_OP_TIMEOUT_MS };

	return simple(c, argc, argv, &op);
}

int cmd_reboot(struct cli *c, int argc, char **argv)
{
	static const struct op op = { "reboot", NULL, "Sent Ctrl-Alt-Del to", NULL,
				      CLI_OP_TIMEOUT_MS };

	return simple(c, argc, argv, &op);
}

int cmd_suspend(struct cli *c, int argc, char **argv)
{
	static const struct op op = { "suspend", NULL, "Suspended", NULL, CLI_OP_TIMEOUT_MS };

	return simple(c, argc, argv, &op);
}

int cmd_resume(struct cli *c, int argc, char **argv)
{
	static const struct op op = { "resume", NULL, "Resumed", NULL, CLI_OP_TIMEOUT_MS };

	return simple(c, argc, argv, &op);
}

int cmd_save(struct cli *c, int argc, char **argv)
{
	static const struct op op = { "save", "saving", "Saved", NULL, CLI_OP_TIMEOUT_MS };

	return simple(c, argc, argv, &op);
}

int cmd_shutdown(struct cli *c, int argc, char **argv)
{
	uint64_t timeout = SHUTDOWN_DEFAULT_S;
	const struct cli_opt opts[] = {
		{ .name = "timeout",
		  .kind = CLI_OPT_U64,
		  .out = &timeout,
		  .min = 0,
		  .max = SHUTDOWN_MAX_S,
		  .unit = "seconds" },
	};
	const char *name;
	char body[64];

	if (cli_args(c, argc, argv, opts, 1, &name, 1))
		return CLI_OK;
	snprintf(body, sizeof(body), "{\"timeout\": %llu}", (unsigned long long)timeout);
	/* ternd waits up to the timeout, then destroys: the answer comes a little later. */
	const struct op op = { "shutdown", "shutting down", "Shut down", body,
			       (int)(timeout + CLI_SLACK_S) * 1000 };
	return run_op(c, name, &op);
}
