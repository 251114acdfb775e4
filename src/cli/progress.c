/* Elapsed seconds on stderr while a long request waits (progress.h). */
#include "cli/progress.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct progress {
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool stop;
	char what[128];
	struct timespec t0;
};

static void say(const char *s)
{
	if (write(STDERR_FILENO, s, strlen(s)) < 0)
		return; /* a terminal that went away: nothing to show */
}

static void *run(void *arg)
{
	struct progress *p = arg;
	struct timespec until = p->t0;
	char line[200];

	pthread_mutex_lock(&p->lock);
	for (long s = 1; !p->stop; s++) {
		until.tv_sec = p->t0.tv_sec + s;
		while (!p->stop && pthread_cond_timedwait(&p->cond, &p->lock, &until) == 0)
			;
		if (p->stop)
			break;
		/* \r and erase-to-end: one line, redrawn in place. */
		snprintf(line, sizeof(line), "\r\033[K%s... %lds", p->what, s);
		say(line);
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

struct progress *progress_start(const char *what)
{
	struct progress *p;
	pthread_condattr_t ca;

	if (!isatty(STDERR_FILENO) || !(p = calloc(1, sizeof(*p))))
		return NULL;
	snprintf(p->what, sizeof(p->what), "%s", what);
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
