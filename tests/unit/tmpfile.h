/*
 * Scratch files for tests that make the code under test write one (a log, a metrics
 * file, a FIFO): a path in a fresh private directory, and the file read back whole.
 */
#ifndef TERN_TESTS_TMPFILE_H
#define TERN_TESTS_TMPFILE_H

#include <stdbool.h>

struct tmp {
	char dir[64];
	char path[96];
};

/* Makes $TMPDIR/tern-unit-XXXXXX (or under /tmp) and sets path to name in it; false on error. */
bool tmp_make(struct tmp *t, const char *name);
/* Removes the file (if any) and the directory. */
void tmp_remove(struct tmp *t);
/*
 * The whole file (up to 256 KiB) as a NUL-terminated string in a static buffer, which the
 * caller may cut up; "" when it cannot be opened. The next call overwrites it.
 */
char *tmp_slurp(const char *path);

#endif
