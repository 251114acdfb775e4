/* Text tables for tern's listings (table.h). */
#include "cli/table.h"

#include "cli/cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct table {
	size_t ncols, nrows, cap; /* rows, the header included */
	char **cells;		  /* nrows * ncols */
};

/* Characters, not bytes: a UTF-8 continuation byte adds no width. */
static size_t width(const char *s)
{
	size_t w = 0;

	for (; *s; s++)
		w += ((unsigned char)*s & 0xc0) != 0x80;
	return w;
}

struct table *table_new(size_t ncols, const char *const *headers)
{
	struct table *t = calloc(1, sizeof(*t));

	if (!t)
		return NULL;
	t->ncols = ncols;
	if (table_add(t, headers)) {
		table_free(t);
		return NULL;
	}
	return t;
}

int table_add(struct table *t, const char *const *cells)
{
	if (t->nrows == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 8;
		char **c = realloc(t->cells, cap * t->ncols * sizeof(*c));
		if (!c)
			return -ENOMEM;
		t->cells = c;
		t->cap = cap;
	}
	char **row = t->cells + t->nrows * t->ncols;
	for (size_t i = 0; i < t->ncols; i++) {
		row[i] = strdup(cells[i] ? cells[i] : "-");
		if (!row[i]) {
			while (i--)
				free(row[i]);
			return -ENOMEM;
		}
	}
	t->nrows++;
	return 0;
}

char *table_format(const struct table *t)
{
	size_t *w = calloc(t->ncols ? t->ncols : 1, sizeof(*w)), len = 1;
	char *out, *p;

	if (!w)
		return NULL;
	for (size_t r = 0; r < t->nrows; r++)
		for (size_t i = 0; i < t->ncols; i++) {
			const char *s = t->cells[r * t->ncols + i];
			if (width(s) > w[i])
				w[i] = width(s);
			len += strlen(s) + 2;
		}
	for (size_t i = 0; i < t->ncols; i++)
		len += t->nrows * w[i];
	len += t->nrows; /* newlines */
	if (!(out = malloc(len))) {
		free(w);
		return NULL;
	}
	p = out;
	for (size_t r = 0; r < t->nrows; r++) {
		char *start = p;
		for (size_t i = 0; i < t->ncols; i++) {
			const char *s = t->cells[r * t->ncols + i];
			size_t n = strlen(s);
			memcpy(p, s, n);
			p += n;
			if (i + 1 == t->ncols)
				break;
			/* Padding up to the column's width, then the two-space gap. */
			for (size_t k = width(s); k < w[i] + 2; k++)
				*p++ = ' ';
		}
		/* Empty last cells would leave the padding before them at the end. */
		while (p > start && p[-1] == ' ')
			p--;
		*p++ = '\n';
	}
	*p = 0;
	free(w);
	return out;
}

void table_free(struct table *t)
{
	if (!t)
		return;
	for (size_t k = 0; k < t->nrows * t->ncols; k++)
		free(t->cells[k]);
	free(t->cells);
	free(t);
}

int table_print(struct table *t)
{
	char *text = t ? table_format(t) : NULL;

	table_free(t);
	if (!text) {
		cli_error("out of memory");
		return CLI_FAILED;
	}
	fputs(text, stdout);
	free(text);
	return CLI_OK;
}
