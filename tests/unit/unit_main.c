/* Runs every registered unit case (optionally only those whose name contains argv[1]). */
#include "unit.h"

#include <string.h>

static struct unit_case *cases;
int unit_case_failed;

void unit_register(struct unit_case *c)
{
	/* Keep registration order so output follows the source files. */
	struct unit_case **p = &cases;

	while (*p)
		p = &(*p)->next;
	*p = c;
}

void unit_fail(const char *file, int line, const char *expr)
{
	printf("  %s:%d: check failed: %s\n", file, line, expr);
	unit_case_failed = 1;
}

int main(int argc, char **argv)
{
	int passed = 0, failed = 0;

	for (struct unit_case *c = cases; c; c = c->next) {
		if (argc > 1 && !strstr(c->name, argv[1]))
			continue;
		unit_case_failed = 0;
		c->fn();
		printf("%s unit/%s\n", unit_case_failed ? "FAIL" : "ok", c->name);
		fflush(stdout);
		if (unit_case_failed)
			failed++;
		else
			passed++;
	}
	printf("%d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}
