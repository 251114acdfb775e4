/*
 * The last lines of a byte stream (the console, for the status file's console_tail;
 * tern-vmm's log, for its last word). Lines end at '\n'; '\r' is dropped; a line
 * longer than LINE_TAIL_WIDTH keeps its first LINE_TAIL_WIDTH bytes.
 */
#ifndef TERN_MONITOR_LINE_TAIL_H
#define TERN_MONITOR_LINE_TAIL_H

#include <stddef.h>

#define LINE_TAIL_LINES 20
#define LINE_TAIL_WIDTH 512

struct line_tail {
	char lines[LINE_TAIL_LINES][LINE_TAIL_WIDTH + 1];
	unsigned int first, count; /* ring of complete lines, oldest at first */
	char cur[LINE_TAIL_WIDTH + 1];
	size_t cur_len;
};

void line_tail_init(struct line_tail *t);
void line_tail_feed(struct line_tail *t, const char *buf, size_t n);
/*
 * Points out[] at the last lines, oldest first, at most max (and LINE_TAIL_LINES) of
 * them; an unfinished last line counts when it is not empty (a panic that ends without
 * a newline is still worth showing). Returns how many; they live until the next feed.
 */
size_t line_tail_get(const struct line_tail *t, const char **out, size_t max);

#endif
