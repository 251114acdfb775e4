/* tern: the command-line client of ternd (docs/ternd.md); the work is in cli_main. */
#include "cli/cli.h"

int main(int argc, char **argv)
{
	return cli_main(argc, argv);
}
