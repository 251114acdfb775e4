/*
 * The long operation running on a VM (save, snapshot, revert, clone, migrate) and how far
 * it is, for GET /vms/NAME/job (virsh domjobinfo) and tern's progress bar. Disk copies
 * count their bytes as they go; tern-vmm's memory writes (save, snapshot) are read from its
 * /proc/PID/io "wchar", since tern-vmm is busy writing and does not answer meanwhile; a
 * migration's owner asks tern-vmm (GET /migrate) and says what it learnt (job_set).
 */
#include "daemon/ternd.h"
#include "daemon/vm_jail.h"
#include "core/log.h"
#include "core/util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Bytes pid has written with write(2) and friends so far; 0 when unknown. */
static unsigned long long wchar(pid_t pid)
{
	char path[64], line[128];
	unsigned long long v = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/io", pid);
	if (pid <= 0 || !(f = fopen(path, "re")))
		return 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "wchar: %llu", &v) == 1)
			break;
	fclose(f);
	return v;
}

void job_begin(struct ternd *t, struct vm_entry *e, const char *op, uint64_t total, bool writes)
{
	pthread_mutex_lock(&t->lock);
	snprintf(e->job.op, sizeof(e->job.op), "%s", op);
	e->job.done = 0;
	e->job.total = total;
	e->job.started = now();
	e->job.writer = writes ? vmjail_vmm_pid(e, e->vmm_pid) : 0;
	e->job.wbase = writes ? wchar(e->job.writer) : 0;
	pthread_mutex_unlock(&t->lock);
}

void job_progress(void *opaque, uint64_t bytes)
{
	struct job_ctx *j = opaque;

	pthread_mutex_lock(&j->t->lock);
	j->e->job.done += bytes;
	pthread_mutex_unlock(&j->t->lock);
}

void job_set(struct ternd *t, struct vm_entry *e, uint64_t done, uint64_t total, const char *detail,
	     const char *migration_json)
{
	char *m = migration_json ? strdup(migration_json) : NULL;

	pthread_mutex_lock(&t->lock);
	e->job.done = done;
	e->job.total = total;
	snprintf(e->job.detail, sizeof(e->job.detail), "%s", detail ? detail : "");
	free(e->job.migration);
	e->job.migration = m;
	pthread_mutex_unlock(&t->lock);
}

void job_end(struct ternd *t, struct vm_entry *e)
{
	pthread_mutex_lock(&t->lock);
	free(e->job.migration);
	memset(&e->job, 0, sizeof(e->job));
	pthread_mutex_unlock(&t->lock);
}

int job_cancel(struct ternd *t, struct vm_entry *e, char *err, size_t n)
{
	int r = 0;

	pthread_mutex_lock(&t->lock);
	if (!e->job.op[0])
		r = fail_msg(err, n, -ENOENT, "no job runs on %s", e->def.name);
	else if (strcmp(e->job.op, "migrate"))
		r = fail_msg(err, n, -EBUSY, "%s's %s cannot be cancelled (only a migration can)",
			     e->def.name, e->job.op);
	else
		e->job.cancel = true;
	pthread_mutex_unlock(&t->lock);
	if (!r)
		log_info("%s: cancelling its %s", e->def.name, "migration");
	return r;
}

bool job_cancelled(struct ternd *t, struct vm_entry *e)
{
	bool c;

	pthread_mutex_lock(&t->lock);
	c = e->job.cancel;
	pthread_mutex_unlock(&t->lock);
	return c;
}

struct json_object *job_get(struct ternd *t, struct vm_entry *e)
{
	struct json_object *o = json_object_new_object();
	uint64_t done, total;
	double elapsed;
	pid_t writer;
	unsigned long long base;
	char op[16], detail[sizeof(e->job.detail)];
	struct json_object *mig = NULL;

	pthread_mutex_lock(&t->lock);
	snprintf(op, sizeof(op), "%s", e->job.op);
	done = e->job.done;
	total = e->job.total;
	elapsed = op[0] ? now() - e->job.started : 0;
	writer = e->job.writer;
	base = e->job.wbase;
	snprintf(detail, sizeof(detail), "%s", e->job.detail);
	bool cancelling = e->job.cancel;
	if (e->job.migration)
		mig = json_tokener_parse(e->job.migration);
	json_object_object_add(o, "name", json_object_new_string(e->def.name));
	pthread_mutex_unlock(&t->lock);
	if (writer) {
		unsigned long long w = wchar(writer);
		done += w > base ? w - base : 0;
	}
	json_object_object_add(o, "operation", op[0] ? json_object_new_string(op) : NULL);
	json_object_object_add(o, "done_bytes", json_object_new_int64((int64_t)done));
	json_object_object_add(o, "total_bytes", json_object_new_int64((int64_t)total));
	json_object_object_add(o, "elapsed_s", json_object_new_double(elapsed));
	if (detail[0])
		json_object_object_add(o, "detail", json_object_new_string(detail));
	if (mig)
		json_object_object_add(o, "migration", mig);
	if (cancelling)
		json_object_object_add(o, "cancelling", json_object_new_boolean(true));
	return o;
}
