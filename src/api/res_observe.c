/* /logger and /metrics: where tern-vmm's log and Firecracker-style metrics go. */
#include "api/api.h"
#include "api/json_in.h"
#include "core/log.h"

#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define PATH_LEN_MAX 4095
#define METRICS_PERIOD_NS (60ULL * 1000000000) /* Firecracker flushes every 60 s */

int res_logger(struct api *a, struct json_object *o, char *err, size_t n)
{
	static const char *const keys[] = { "level",	       "log_path", "show_level",
					    "show_log_origin", "module",   NULL };
	const char *level = NULL, *path = NULL;
	/* tern's own log format shows the level; Firecracker's default (false) only if asked. */
	bool show_level = true, show_origin = false;
	int has_show_level, has_show_origin;
	enum log_level lvl = LOG_INFO;
	int r;

	if ((r = api_preboot(a, err, n)) || (r = jin_only(o, keys, "/logger", err, n)) ||
	    (r = api_not_implemented(o, "module", "/logger", err, n)))
		return r;
	if ((r = jin_string(o, "level", 16, &level, err, n)) < 0)
		return r;
	if (level && log_level_parse(level, &lvl))
		return api_fail(err, n,
				"'level' is \"%s\"; it must be one of Error, Warning, Info, "
				"Debug, Trace, Off (any case)",
				level);
	if ((r = jin_string(o, "log_path", PATH_LEN_MAX, &path, err, n)) < 0)
		return r;
	if ((has_show_level = jin_bool(o, "show_level", &show_level, err, n)) < 0)
		return has_show_level;
	if ((has_show_origin = jin_bool(o, "show_log_origin", &show_origin, err, n)) < 0)
		return has_show_origin;
	char *copy = path ? strdup(path) : NULL;
	if (path && !copy)
		return api_fail(err, n, "out of memory");
	if (path) {
		char why[200];
		if (log_set_file(path, why, sizeof(why))) {
			free(copy);
			return api_fail(err, n, "'log_path': %s", why);
		}
	}
	/* Only what the body names changes, as Firecracker. */
	if (level)
		log_set_level(lvl);
	if (has_show_level)
		log_set_show_level(show_level);
	if (has_show_origin)
		log_set_show_origin(show_origin);
	free(a->logger.path);
	a->logger = (struct api_logger){
		.set = true, .path = copy, .show_level = show_level, .show_origin = show_origin
	};
	snprintf(a->logger.level, sizeof(a->logger.level), "%s", level ? level : "Info");
	return 0;
}

static void on_metrics_timer(void *opaque, uint32_t events)
{
	struct api *a = opaque;
	uint64_t ticks;

	if (read(a->metrics_timer, &ticks, sizeof(ticks)) < 0)
		return;
	metrics_flush(&a->metrics, a->vm);
}

struct json_object *res_metrics_get(struct api *a)
{
	static const struct metrics_sample zero;
	struct metrics_sample now;
	struct timespec ts;

	/* Firecracker has no GET /metrics; the file's lines are deltas, this is the sum. */
	clock_gettime(CLOCK_REALTIME, &ts);
	metrics_sample_read(&a->metrics, a->vm, &now);
	return metrics_format(&now, &zero,
			      (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000);
}

int res_metrics(struct api *a, struct json_object *o, char *err, size_t n)
{
	static const char *const keys[] = { "metrics_path", "emit_id", "properties", NULL };
	const char *path;
	int r;

	if ((r = api_preboot(a, err, n)) || (r = jin_only(o, keys, "/metrics", err, n)) ||
	    (r = api_not_implemented(o, "emit_id", "/metrics", err, n)) ||
	    (r = api_not_implemented(o, "properties", "/metrics", err, n)))
		return r;
	if ((r = jin_string(o, "metrics_path", PATH_LEN_MAX, &path, err, n)) < 0)
		return r;
	if (!r || !*path)
		return api_fail(err, n, "'metrics_path' is required (a file or named pipe)");
	if (a->metrics_on)
		return api_fail(err, n, "metrics are already configured (to '%s')",
				a->metrics_path);
	char *copy = strdup(path);
	if (!copy)
		return api_fail(err, n, "out of memory");
	char why[200];
	if (metrics_open(&a->metrics, path, why, sizeof(why))) {
		free(copy);
		return api_fail(err, n, "'metrics_path': %s", why);
	}
	/* Metrics keep flowing while the VM is paused, as Firecracker's. */
	a->metrics_timer = loop_add_timer(a->loop, METRICS_PERIOD_NS, METRICS_PERIOD_NS,
					  on_metrics_timer, a, true);
	if (a->metrics_timer < 0) {
		metrics_close(&a->metrics);
		free(copy);
		return api_fail(err, n, "cannot start the metrics timer");
	}
	a->metrics.api = &a->counters;
	a->metrics_path = copy;
	a->metrics_on = true;
	return 0;
}
