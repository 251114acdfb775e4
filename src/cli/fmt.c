/* Human-readable durations, sizes and times for tern's output. */
#include "cli/fmt.h"

#include <stdio.h>
#include <time.h>

const char *fmt_duration(double seconds, char *buf, size_t n)
{
	long long s = seconds > 0 ? (long long)seconds : 0;
	long long d = s / 86400, h = s / 3600 % 24, m = s / 60 % 60, sec = s % 60;

	if (s < 60)
		snprintf(buf, n, "%llds", s);
	else if (!d)
		snprintf(buf, n, "%02lld:%02lld:%02lld", h, m, sec);
	else
		snprintf(buf, n, "%lldd %02lld:%02lld:%02lld", d, h, m, sec);
	return buf;
}

const char *fmt_kib(long long kib, char *buf, size_t n)
{
	static const char *const units[] = { "MiB", "GiB", "TiB" };
	double v = (double)kib / 1024;
	unsigned int u = 0;

	if (kib < 1024) {
		snprintf(buf, n, "%lld KiB", kib < 0 ? 0 : kib);
		return buf;
	}
	while (v >= 1024 && u + 1 < sizeof(units) / sizeof(units[0])) {
		v /= 1024;
		u++;
	}
	snprintf(buf, n, "%.1f %s", v, units[u]);
	return buf;
}

const char *fmt_time(double t, char *buf, size_t n)
{
	time_t s = (time_t)t;
	struct tm tm;

	if (!localtime_r(&s, &tm) || !strftime(buf, n, "%Y-%m-%d %H:%M:%S", &tm))
		snprintf(buf, n, "%.0f", t);
	return buf;
}
