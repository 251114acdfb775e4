/* The last lines of a stream (line_tail.h). */
#include "monitor/line_tail.h"

#include <string.h>

void line_tail_init(struct line_tail *t)
{
	memset(t, 0, sizeof(*t));
}

static void push(struct line_tail *t)
{
	unsigned int slot = (t->first + t->count) % LINE_TAIL_LINES;

	memcpy(t->lines[slot], t->cur, t->cur_len);
	t->lines[slot][t->cur_len] = 0;
	if (t->count < LINE_TAIL_LINES)
		t->count++;
	else
		t->first = (t->first + 1) % LINE_TAIL_LINES;
	t->cur_len = 0;
}

void line_tail_feed(struct line_tail *t, const char *buf, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char c = buf[i];
		if (c == '\n')
			push(t);
		else if (c != '\r' && t->cur_len < LINE_TAIL_WIDTH)
			t->cur[t->cur_len++] = c;
	}
	t->cur[t->cur_len] = 0;
}

size_t line_tail_get(const struct line_tail *t, const char **out, size_t max)
{
	size_t partial = t->cur_len ? 1 : 0, n = t->count + partial;

	if (max > LINE_TAIL_LINES)
		max = LINE_TAIL_LINES;
	if (n > max)
		n = max;
	size_t whole = n - (n ? partial : 0);
	for (size_t i = 0; i < whole; i++)
		out[i] = t->lines[(t->first + t->count - whole + i) % LINE_TAIL_LINES];
	if (n && partial)
		out[whole] = t->cur;
	return n;
}
