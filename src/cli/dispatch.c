/* tern's entry: the options before the command, then the command itself. */
#include "cli/cli.h"

#include "api/api.h"
#include "core/log.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { G_SOCKET = 1000, G_STATE_DIR, G_CONNECT, G_TLS_DIR, G_JSON, G_VERSION, G_HELP };

int cli_main(int argc, char **argv)
{
	static const struct option longs[] = {
		{ "socket", required_argument, NULL, G_SOCKET },
		{ "state-dir", required_argument, NULL, G_STATE_DIR },
		{ "connect", required_argument, NULL, G_CONNECT },
		{ "tls-dir", required_argument, NULL, G_TLS_DIR },
		{ "json", no_argument, NULL, G_JSON },
		{ "version", no_argument, NULL, G_VERSION },
		{ "help", no_argument, NULL, G_HELP },
		{ 0 },
	};
	static struct cli c;
	const char *socket = NULL, *state_dir = NULL, *connect = NULL, *tls_dir = NULL;
	const char *env = getenv("TERN_CONNECT"), *connect_name = "--connect";
	const struct cli_command *k;
	int ch;

	log_set_program("tern");
	log_set_show_level(false); /* "tern: MESSAGE", as every other error line */
	opterr = 0;
	/* "+": stop at the command, whose own options come after it. */
	while ((ch = getopt_long(argc, argv, "+:h", longs, NULL)) != -1) {
		switch (ch) {
		case G_SOCKET:
			socket = optarg;
			break;
		case G_STATE_DIR:
			state_dir = optarg;
			break;
		case G_CONNECT:
			connect = optarg;
			break;
		case G_TLS_DIR:
			tls_dir = optarg;
			break;
		case G_JSON:
			c.json = true;
			break;
		case G_VERSION:
			printf("tern %s\n", TERN_VERSION);
			return CLI_OK;
		case G_HELP:
		case 'h':
			return help_print(NULL);
		case ':':
			die_usage("option '%s' needs a value (tern help)", argv[optind - 1]);
		default:
			die_usage("unknown option '%s' before the command (tern help lists them)",
				  argv[optind - 1]);
		}
	}
	if (socket && state_dir)
		die_usage("--socket and --state-dir: give one or the other");
	if (socket && !*socket)
		die_usage("--socket: the path is empty");
	if (state_dir && !*state_dir)
		die_usage("--state-dir: the path is empty");
	if (connect && (socket || state_dir))
		die_usage("--connect and %s: give one or the other",
			  socket ? "--socket" : "--state-dir");
	if (tls_dir && !*tls_dir)
		die_usage("--tls-dir: the path is empty");
	/* The command line wins over the environment: a local option ignores TERN_CONNECT. */
	if (!connect && !socket && !state_dir && env && *env) {
		connect = env;
		connect_name = "TERN_CONNECT";
	}
	if (tls_dir && !connect)
		die_usage("--tls-dir: only with --connect tls://HOST:PORT (or TERN_CONNECT)");
	if (optind == argc)
		die_usage("no command given (tern help lists them)");
	argv += optind;
	argc -= optind;
	if (!strcmp(argv[0], "help")) {
		if (argc > 2)
			die_usage("help: one COMMAND at most");
		return help_print(argc == 2 ? argv[1] : NULL);
	}
	if (!(k = cli_command_find(argv[0])))
		die_usage("unknown command '%s' (tern help lists them)", argv[0]);
	if (connect)
		cli_set_remote(&c, connect, connect_name, tls_dir);
	else
		cli_set_socket(&c, socket, state_dir);
	return k->fn(&c, argc, argv);
}
