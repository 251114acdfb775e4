/* Elapsed seconds and ternd's job progress on stderr while a long request waits (progress.h). */
#include "cli/progress.h"

#include "cli/cli.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

struct progress {
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool stop;
	char what[128];
	struct timespec t0;
	const struct cli *c;
	char job_path[200]; /* "" when there is no job to follow */
};

#define MIB (1024.0 * 1024.0)
#define BAR 20

void progress_format(char *buf, size_t n, const char *what, long secs, long long done,
		     long long total)
{
	if (total > 0) {
		char bar[BAR + 1];
		long long d = done < total ? done : total;
		int fill = (int)(d * BAR / total);
		memset(bar, '#', (size_t)fill);
		memset(bar + fill, ' ', (size_t)(BAR - fill));
		bar[BAR] = 0;
		snprintf(buf, n, "%s [%s] %3d%% %.0f/%.0f MiB %lds", what, bar,
			 (int)(d * 100 / total), d / MIB, total / MIB, secs);
	} else if (done > 0) {
		snprintf(buf, n, "%s... %.0f MiB written, %lds", what, done / MIB, secs);
	} else {
		snprintf(buf, n, "%s... %lds", what, secs);
	}
}

/* ternd's view of the job: done and total bytes (zeros when it has none or is not asked)
 * and where it is in words ("round 3, ..." of a migration; "" when it says none). */
static void job_bytes(struct progress *p, long long *done, long long *total, char *detail,
		      size_t dn)
{
	struct cli_reply r;
	struct json_object *x;

	*done = *total = 0;
	detail[0] = 0;
	if (!p->job_path[0] || cli_request(p->c, "GET", p->job_path, NULL, 2000, &r)) {
		if (p->job_path[0])
			cli_reply_free(&r);
		return;
	}
	if (r.body && json_object_object_get_ex(r.body, "done_bytes", &x))
		*done = json_object_get_int64(x);
	if (r.body && json_object_object_get_ex(r.body, "total_bytes", &x))
		*total = json_object_get_int64(x);
	if (r.body && json_object_object_get_ex(r.body, "detail", &x) &&
	    json_object_is_type(x, json_type_string))
		snprintf(detail, dn, ", %s", json_object_get_string(x));
	cli_reply_free(&r);
}

static void say(const char *s)
{
	if (write(STDERR_FILENO, s, strlen(s)) < 0)
		return; /* a terminal that went away: nothing to show */
}

static void *run(void *arg)
{
	struct progress *p = arg;
	struct timespec until = p->t0;
	char line[400], detail[200];
	long long done, total;

	pthread_mutex_lock(&p->lock);
	for (long half = 1; !p->stop; half++) {
		until.tv_sec = p->t0.tv_sec + half / 2;
		until.tv_nsec = p->t0.tv_nsec + (half % 2) * 500000000L;
		if (until.tv_nsec >= 1000000000L) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000L;
		}
		while (!p->stop && pthread_cond_timedwait(&p->cond, &p->lock, &until) == 0)
			;
		if (p->stop)
			break;
		pthread_mutex_unlock(&p->lock); /* ternd's answer may take a while */
		job_bytes(p, &done, &total, detail, sizeof(detail));
		pthread_mutex_lock(&p->lock);
		if (p->stop)
			break;
		/* \r and erase-to-end: one line, redrawn in place. */
		strcpy(line, "\r\033[K");
		progress_format(line + strlen(line), sizeof(line) - strlen(line), p->what, half / 2,
				done, total);
		snprintf(line + strlen(line), sizeof(line) - strlen(line), "%s", detail);
		/* A line that wraps would not be redrawn in place: cut it at the width. */
		struct winsize ws;
		size_t prefix = strlen("\r\033[K");
		if (!ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) && ws.ws_col > 1 &&
		    strlen(line) - prefix >= ws.ws_col)
			line[prefix + ws.ws_col - 1] = 0;
		say(line);
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

struct progress *progress_start_job(const struct cli *c, const char *what, const char *vm)
{
	struct progress *p;
	pthread_condattr_t ca;

	if (!isatty(STDERR_FILENO) || !(p = calloc(1, sizeof(*p))))
		return NULL;
	snprintf(p->what, sizeof(p->what), "%s", what);
	p->c = c;
	if (c && vm)
		cli_vm_path(vm, "/job", p->job_path, sizeof(p->job_path));
	pthread_mutex_init(&p->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&p->cond, &ca);
	pthread_condattr_destroy(&ca);
	clock_gettime(CLOCK_MONOTONIC, &p->t0);
	say(p->what);
	say("...");
	if (pthread_create(&p->thread, NULL, run, p)) {
		say("\r\033[K");
		free(p);
		return NULL;
	}
	return p;
}

void progress_stop(struct progress *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->lock);
	p->stop = true;
	pthread_cond_signal(&p->cond);
	pthread_mutex_unlock(&p->lock);
	pthread_join(p->thread, NULL);
	say("\r\033[K");
	pthread_cond_destroy(&p->cond);
	pthread_mutex_destroy(&p->lock);
	free(p);
}
