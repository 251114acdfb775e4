/* A command's options and operands: one table per command, every refusal naming what it takes. */
#include "cli/cli.h"

#include "core/log.h"
#include "core/util.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_OPTS 16

enum { OPT_JSON = 1000, OPT_HELP };

static const char *synopsis_of(const char *cmd)
{
	const struct cli_command *k = cli_command_find(cmd);

	return k ? k->synopsis : "";
}

bool cli_args(struct cli *c, int argc, char **argv, const struct cli_opt *opts, size_t n,
	      const char **pos, size_t npos)
{
	const struct cli_command *k = cli_command_find(argv[0]);
	struct option longs[MAX_OPTS + 3] = { { 0 } };
	size_t i, got = 0;
	int ch;

	for (i = 0; i < n && i < MAX_OPTS; i++)
		longs[i] = (struct option){ opts[i].name,
					    opts[i].kind == CLI_OPT_FLAG ? no_argument :
									   required_argument,
					    NULL, (int)i };
	if (k && k->prints)
		longs[i++] = (struct option){ "json", no_argument, NULL, OPT_JSON };
	longs[i] = (struct option){ "help", no_argument, NULL, OPT_HELP };
	optind = 0; /* GNU: start afresh (the global options used getopt before) */
	opterr = 0;
	while ((ch = getopt_long(argc, argv, ":h", longs, NULL)) != -1) {
		if (ch == OPT_JSON) {
			c->json = true;
		} else if (ch == OPT_HELP || ch == 'h') {
			help_print(argv[0]);
			return true;
		} else if (ch == ':') {
			die_usage("%s: option '%s' needs a value (tern help %s)", argv[0],
				  argv[optind - 1], argv[0]);
		} else if (ch == '?') {
			die_usage("%s: unknown option '%s' (tern help %s lists them)", argv[0],
				  argv[optind - 1], argv[0]);
		} else {
			const struct cli_opt *o = &opts[ch];
			uint64_t v;
			switch (o->kind) {
			case CLI_OPT_FLAG:
				*(bool *)o->out = true;
				break;
			case CLI_OPT_U64:
				if (!parse_u64(optarg, o->min, o->max, &v))
					die_usage("--%s: '%s' must be %llu to %llu %s", o->name,
						  optarg, (unsigned long long)o->min,
						  (unsigned long long)o->max,
						  o->unit ? o->unit : "");
				*(uint64_t *)o->out = v;
				break;
			case CLI_OPT_STR:
				*(const char **)o->out = optarg;
				break;
			}
		}
	}
	for (; optind < argc; optind++) {
		if (got == npos)
			die_usage("%s: unexpected argument '%s' (usage: tern %s %s)", argv[0],
				  argv[optind], argv[0], synopsis_of(argv[0]));
		pos[got++] = argv[optind];
	}
	if (got < npos)
		die_usage("%s: missing operand (usage: tern %s %s)", argv[0], argv[0],
			  synopsis_of(argv[0]));
	return false;
}
