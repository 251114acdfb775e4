/*
 * tern, the CLI of ternd (docs/ternd.md): what its commands share. One request per
 * ternd call (vmm_request, with a deadline), errors as one "tern: ..." line, and the
 * exit statuses below, which `tern help` documents.
 */
#ifndef TERN_CLI_CLI_H
#define TERN_CLI_CLI_H

#include "core/tcp.h"

#include <json-c/json.h>
#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum cli_exit {
	CLI_OK = 0,
	CLI_FAILED = 1,	     /* the operation failed: unknown VM, wrong state, ternd's 5xx */
	CLI_USAGE = 2,	     /* bad usage, or input ternd refused (400) */
	CLI_UNREACHABLE = 3, /* no socket, refused, timed out */
};

/* Deadlines: reads never wait for an operation in ternd; operations may (save: minutes). */
#define CLI_GET_TIMEOUT_MS 30000
#define CLI_OP_TIMEOUT_MS 660000 /* ternd's save bound (600 s) and a margin */
#define CLI_SLACK_S 30		 /* over a timeout ternd enforces itself (shutdown) */

struct tls_creds;

struct cli {
	char socket[PATH_MAX];	  /* read-write ternd.sock */
	char ro_socket[PATH_MAX]; /* ternd-ro.sock beside it; "" when unknown */
	bool json;
	/* --connect tls://HOST:PORT: a ternd on another host, over mutual TLS (remote.c) */
	bool remote;
	struct hostport addr;
	char url[300];
	struct tls_creds *tls;
};

struct cli_reply {
	int status;		  /* HTTP status; 0 when ternd was not reached */
	struct json_object *body; /* parsed answer; NULL when none or not JSON */
	char err[1024];		  /* what went wrong, for the "tern: " line */
};

/*
 * Sends one request; a GET refused with EACCES on the read-write socket goes to the
 * read-only one. Returns the exit status it means (CLI_OK for a 2xx) and fills r
 * (cli_reply_free); prints nothing.
 */
int cli_request(const struct cli *c, const char *method, const char *path, const char *body,
		int timeout_ms, struct cli_reply *r);
void cli_reply_free(struct cli_reply *r);
/* cli_request, and on failure the "tern: ..." line; *out gets the body (caller puts it). */
int cli_call(const struct cli *c, const char *method, const char *path, const char *body,
	     int timeout_ms, struct json_object **out);
/*
 * GET /vms/NAME: *vm gets the answer (caller puts it), *def its "definition" member.
 * On failure the "tern: ..." line is printed and the exit status returned (*vm NULL).
 */
int cli_get_definition(const struct cli *c, const char *name, struct json_object **vm,
		       struct json_object **def);
/* The exit status of an HTTP status (cli_exit). */
int cli_exit_of_status(int status);
/* One "tern: ..." line on stderr. */
void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Chooses the sockets: --socket, else --state-dir, else $TERN_SOCKET, else the default. */
void cli_set_socket(struct cli *c, const char *socket, const char *state_dir);

/*
 * remote.c: `--connect tls://HOST:PORT` (what names it: "--connect" or "TERN_CONNECT")
 * with the client certificate from tls_dir (NULL: the default). Bad input ends tern with
 * status 2 and a line naming the option or the file.
 */
void cli_set_remote(struct cli *c, const char *url, const char *what, const char *tls_dir);
/* One request to the remote ternd: the HTTP status with the body in *text (malloc'd), or
 * -errno with err saying why (-EACCES: a certificate was refused, either way). */
int cli_remote_request(const struct cli *c, const char *method, const char *path, const char *body,
		       int timeout_ms, char **text, char *err, size_t errlen);

/* Prints o as one pretty JSON document on stdout. */
void cli_print_json(struct json_object *o);
/* o's string member, or dflt when absent or not a string. */
const char *cli_str(struct json_object *o, const char *key, const char *dflt);
/* "/vms/NAME" + suffix into buf, after checking NAME's syntax (a usage error if bad). */
const char *cli_vm_path(const char *name, const char *suffix, char *buf, size_t n);

/* Options of one command, for cli_args. */
enum cli_opt_kind { CLI_OPT_FLAG, CLI_OPT_U64, CLI_OPT_STR };
struct cli_opt {
	const char *name; /* without the dashes */
	enum cli_opt_kind kind;
	void *out; /* bool *, uint64_t *, const char ** */
	uint64_t min, max;
	const char *unit; /* CLI_OPT_U64: "seconds" ... for the range message */
};

/*
 * Parses argv (argv[0] is the command) against opts (n of them), --json (when the
 * command prints) and --help; exactly npos operands go to pos. Bad usage ends tern
 * with status 2 and a line naming the option and what it accepts. Returns true when
 * --help was given (the help is printed: the command should return 0).
 */
bool cli_args(struct cli *c, int argc, char **argv, const struct cli_opt *opts, size_t n,
	      const char **pos, size_t npos);

/* The commands: argv[0] is the command's name; each returns an exit status. */
typedef int cli_cmd_fn(struct cli *c, int argc, char **argv);
cli_cmd_fn cmd_list, cmd_info, cmd_dumpconfig, cmd_define, cmd_create, cmd_edit, cmd_undefine,
	cmd_start, cmd_shutdown, cmd_destroy, cmd_reboot, cmd_suspend, cmd_resume, cmd_save,
	cmd_autostart, cmd_events, cmd_console, cmd_snapshot, cmd_snapshot_create,
	cmd_snapshot_list, cmd_snapshot_revert, cmd_snapshot_delete, cmd_clone, cmd_stats,
	cmd_restore, cmd_migrate, cmd_abort, cmd_set, cmd_img, cmd_img_info, cmd_img_create,
	cmd_img_commit, cmd_img_convert, cmd_img_resize, cmd_blockresize;

struct cli_command {
	const char *name;
	cli_cmd_fn *fn;
	bool prints;	      /* takes --json */
	const char *synopsis; /* after "tern NAME " */
	const char *summary;  /* one line for `tern help` */
	const char *details;  /* options and behaviour, for `tern help NAME` */
	const char *example;
};

extern const struct cli_command cli_commands[];
const struct cli_command *cli_command_find(const char *name);
/* `tern help [COMMAND]`; 0, or 2 for an unknown command. */
int help_print(const char *command);
/* The whole CLI: global options, then a command. Returns the exit status. */
int cli_main(int argc, char **argv);

#endif
