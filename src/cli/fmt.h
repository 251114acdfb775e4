/* Human-readable durations, sizes and times for tern's output. */
#ifndef TERN_CLI_FMT_H
#define TERN_CLI_FMT_H

#include <stddef.h>

/* "42s", "05:03:02", "3d 04:05:06"; into buf, which it returns. */
const char *fmt_duration(double seconds, char *buf, size_t n);
/* "512 KiB", "1.5 MiB", "2.0 GiB" (binary units, one decimal from MiB up). */
const char *fmt_kib(long long kib, char *buf, size_t n);
/* Local time "2025-12-05 08:59:01" of a Unix time in seconds. */
const char *fmt_time(double t, char *buf, size_t n);

#endif
