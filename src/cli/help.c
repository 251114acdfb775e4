/* `tern help [COMMAND]`: the overview, the exit statuses, and each command's usage. */
#include "cli/cli.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

static const char overview_head[] = "usage: tern [--socket PATH | --state-dir DIR | --connect "
				    "tls://HOST:PORT [--tls-dir DIR]]\n"
				    "            [--json] COMMAND [ARGS]\n"
				    "       tern help [COMMAND]\n"
				    "       tern --version\n"
				    "\n"
				    "The client of ternd, the tern host manager (docs/ternd.md).\n"
				    "\n"
				    "Commands:\n";

static const char overview_tail[] =
	"\n"
	"Options before the command:\n"
	"  --socket PATH     ternd's API socket (default: DIR/ternd.sock, or $TERN_SOCKET\n"
	"                    when neither option is given)\n"
	"  --state-dir DIR   ternd's state directory (default /var/lib/tern)\n"
	"  --connect tls://HOST:PORT\n"
	"                    a ternd on another host (ternd --listen-tls), over TLS: HOST is a\n"
	"                    name, an IPv4 or a [bracketed] IPv6 address, port 1 to 65535;\n"
	"                    its certificate must be signed by our CA and name HOST (default:\n"
	"                    $TERN_CONNECT when no --socket or --state-dir is given)\n"
	"  --tls-dir DIR     cacert.pem, clientcert.pem, clientkey.pem for --connect\n"
	"                    (default /etc/tern/pki)\n"
	"  --json            print the API's JSON, one document (commands that print also\n"
	"                    take it after the command)\n"
	"Reading commands fall back to ternd-ro.sock when ternd.sock refuses the user.\n"
	"Every command works over --connect but console, whose socket is on ternd's host.\n"
	"\n"
	"Exit status:\n"
	"  0  done\n"
	"  1  the operation failed: no such VM, the VM is in the wrong state (409), a\n"
	"     duplicate name, or ternd failed (5xx)\n"
	"  2  bad usage, or input ternd refused (400); the message names the option or the\n"
	"     field and what it accepts\n"
	"  3  ternd is not reachable: no socket, connection refused or not permitted, a\n"
	"     certificate refused (either way), or no answer in time\n"
	"\n"
	"`tern help COMMAND` or `tern COMMAND --help` shows a command's options and an example.\n";

int help_print(const char *command)
{
	const struct cli_command *k;

	if (!command) {
		fputs(overview_head, stdout);
		for (k = cli_commands; k->name; k++)
			if (k->summary[0] != '=') /* virsh-style aliases: under their command */
				printf("  %-11s %s\n", k->name, k->summary);
		fputs(overview_tail, stdout);
		return CLI_OK;
	}
	if (!(k = cli_command_find(command))) {
		cli_error("no command '%s' (tern help lists them)", command);
		return CLI_USAGE;
	}
	if (k->summary[0] == '=') {
		/* The help of the command it stands for: its first word (img, snapshot). */
		const char *to = k->summary + 2;
		printf("usage: tern %s %s\n\nThe same as `tern %s` (tern help %.*s).\n", k->name,
		       k->synopsis, to, (int)strcspn(to, " "), to);
		return CLI_OK;
	}
	printf("usage: tern %s %s\n\n%c%s.\n", k->name, k->synopsis, toupper(k->summary[0]),
	       k->summary + 1);
	if (k->details[0])
		printf("\n%s", k->details);
	if (k->prints)
		printf("  --json   print the API's JSON instead of text\n");
	printf("\nExample:\n  %s\n", k->example);
	return CLI_OK;
}
