/*
 * Text tables for tern's listings: a header row and data rows, left-aligned columns
 * two spaces apart, no trailing blanks; widths in characters (UTF-8 aware).
 */
#ifndef TERN_CLI_TABLE_H
#define TERN_CLI_TABLE_H

#include <stddef.h>

struct table;

/* A table of ncols columns with these headers; NULL when out of memory. */
struct table *table_new(size_t ncols, const char *const *headers);
/* Appends a row of ncols cells (copied; NULL prints "-"). 0 or -ENOMEM. */
int table_add(struct table *t, const char *const *cells);
/* The whole table as text, every line ending in "\n" (malloc'd; NULL when out of memory). */
char *table_format(const struct table *t);
void table_free(struct table *t);
/* Prints t on stdout and frees it: CLI_OK, or CLI_FAILED ("out of memory") when t is NULL. */
int table_print(struct table *t);

#endif
