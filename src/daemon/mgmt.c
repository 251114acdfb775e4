/* ternd's management API (docs/ternd.md): routes, JSON bodies, error statuses. */
#include "daemon/mgmt.h"

#include "api/json_in.h"
#include "core/util.h"
#include "daemon/cgroup_limits.h"
#include "daemon/ternd.h"
#include "daemon/vm_jail.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define EVENTS_MAX 1000
#define EVENTS_WAIT_MAX_S 300

static void reply(struct http_response *resp, int status, struct json_object *o)
{
	resp->status = status;
	resp->body = o ? strdup(json_object_to_json_string_ext(
				 o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)) :
			 NULL;
	json_object_put(o);
}

static void fail(struct http_response *resp, int status, const char *msg)
{
	struct json_object *o = json_object_new_object();

	json_object_object_add(o, "error", json_object_new_string(msg));
	reply(resp, status, o);
}

/* -errno of an operation to an HTTP status (docs/ternd.md). */
static int status_of(int r)
{
	switch (r) {
	case -EINVAL:
		return 400;
	case -ENOENT:
		return 404;
	case -EBUSY:
	case -EEXIST:
	case -ECANCELED:
	case -ENODEV: /* a limit this host cannot hold (io.max without a block device) */
	case -EACCES: /* a file the VM's own uid cannot read (ternd --vm-uids) */
		return 409;
	case -ENOTSUP:
		return 501;
	case -ETIMEDOUT:
		return 504;
	default:
		return 500;
	}
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/*
 * The fields of a /proc .../stat file after the command name (which may hold spaces and
 * parentheses: the last ')' ends it), starting with the state letter, into buf. NULL when
 * the file cannot be read.
 */
static const char *proc_stat_fields(const char *path, char *buf, size_t n)
{
	FILE *f = fopen(path, "re");
	char *p = NULL;

	if (!f)
		return NULL;
	if (fgets(buf, (int)n, f) && (p = strrchr(buf, ')')) && p[1] == ' ')
		p += 2;
	else
		p = NULL;
	fclose(f);
	return p;
}

/* utime + stime (seconds) and VmRSS (KiB) of a process; zeros when it is gone. */
static void proc_usage(pid_t pid, double *cpu_s, long long *rss_kib)
{
	char path[64], buf[4096];
	const char *p;
	unsigned long long ut = 0, st = 0;
	FILE *f;

	*cpu_s = 0;
	*rss_kib = 0;
	if (pid <= 0)
		return;
	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	if ((p = proc_stat_fields(path, buf, sizeof(buf))) &&
	    sscanf(p, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) == 2)
		*cpu_s = (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
	snprintf(path, sizeof(path), "/proc/%d/status", pid);
	if ((f = fopen(path, "re"))) {
		while (fgets(buf, sizeof(buf), f))
			if (sscanf(buf, "VmRSS: %lld kB", rss_kib) == 1)
				break;
		fclose(f);
	}
}

/* PF_IO_WORKER (include/linux/sched.h) in a thread's /proc stat flags. */
#define TASK_IO_WORKER 0x10

/* Whether /proc/PID/task/TID is one of io_uring's kernel workers (iou-wrk-*). */
static bool task_is_io_worker(pid_t pid, const char *tid)
{
	char path[96], buf[512];
	unsigned long flags = 0;
	const char *p;

	snprintf(path, sizeof(path), "/proc/%d/task/%.20s/stat", pid, tid);
	return (p = proc_stat_fields(path, buf, sizeof(buf))) &&
	       sscanf(p, "%*c %*d %*d %*d %*d %*d %lu", &flags) == 1 && (flags & TASK_IO_WORKER);
}

/*
 * What the kernel says of the VM's threads: how many there are and how many run under a
 * seccomp filter (/proc/PID/task/TID/status, "Seccomp: 2"). Seen, not assumed. io_uring's
 * workers are counted apart: they run no user code for a filter to see, and the ring's
 * own list of operations is what holds them (backend/disk_uring.c).
 */
static struct json_object *proc_seccomp(pid_t pid)
{
	char path[96], buf[256];
	int threads = 0, filtered = 0, io_workers = 0;
	struct dirent *d;
	DIR *dir;

	snprintf(path, sizeof(path), "/proc/%d/task", pid);
	if (pid <= 0 || !(dir = opendir(path)))
		return NULL;
	while ((d = readdir(dir))) {
		FILE *f;
		if (d->d_name[0] == '.')
			continue;
		if (task_is_io_worker(pid, d->d_name)) {
			io_workers++;
			continue;
		}
		snprintf(path, sizeof(path), "/proc/%d/task/%.20s/status", pid, d->d_name);
		if (!(f = fopen(path, "re")))
			continue;
		threads++;
		while (fgets(buf, sizeof(buf), f))
			if (!strncmp(buf, "Seccomp:", 8)) {
				filtered += atoi(buf + 8) == 2;
				break;
			}
		fclose(f);
	}
	closedir(dir);
	struct json_object *o = json_object_new_object();
	json_object_object_add(o, "threads", json_object_new_int(threads));
	json_object_object_add(o, "filtered_threads", json_object_new_int(filtered));
	json_object_object_add(o, "io_uring_workers", json_object_new_int(io_workers));
	return o;
}

static struct json_object *summary(struct vm_entry *e)
{
	struct json_object *o = json_object_new_object();

	json_object_object_add(o, "name", json_object_new_string(e->def.name));
	json_object_object_add(o, "uuid", json_object_new_string(e->def.uuid));
	json_object_object_add(o, "state", json_object_new_string(e->state));
	json_object_object_add(o, "reason", json_object_new_string(e->reason));
	json_object_object_add(o, "autostart", json_object_new_boolean(e->def.autostart));
	return o;
}

static int by_name(const void *a, const void *b)
{
	struct json_object *x, *y;

	json_object_object_get_ex(*(struct json_object *const *)a, "name", &x);
	json_object_object_get_ex(*(struct json_object *const *)b, "name", &y);
	return strcmp(json_object_get_string(x), json_object_get_string(y));
}

static void list(struct ternd *t, struct http_response *resp)
{
	struct json_object *o = json_object_new_object(), *a = json_object_new_array();

	pthread_mutex_lock(&t->lock);
	for (struct vm_entry *e = t->vms; e; e = e->next)
		json_object_array_add(a, summary(e));
	pthread_mutex_unlock(&t->lock);
	json_object_array_sort(a, by_name); /* as virsh lists */
	json_object_object_add(o, "vms", a);
	reply(resp, 200, o);
}

static void info(struct ternd *t, struct vm_entry *e, struct http_response *resp)
{
	struct json_object *o, *def = json_tokener_parse(e->def_json), *detail = NULL;
	char path[4200];
	double cpu, started;
	long long rss;
	pid_t pid, mon;
	bool active;

	pthread_mutex_lock(&t->lock);
	o = summary(e);
	pid = vmjail_vmm_pid(e, e->vmm_pid);
	mon = e->mon_pid;
	active = ternd_is_active(e);
	struct json_object *jail = NULL;
	if (active && e->jailed) {
		/* The uid its tern-vmm runs as, and the jail's supervisor (tern-vmm --jail). */
		jail = json_object_new_object();
		json_object_object_add(jail, "uid", json_object_new_int64(e->jail_uid));
		json_object_object_add(jail, "gid", json_object_new_int64(e->jail_uid));
		json_object_object_add(jail, "supervisor_pid", json_object_new_int64(e->vmm_pid));
	}
	started = e->started_at;
	if (e->detail)
		detail = json_tokener_parse(e->detail);
	pthread_mutex_unlock(&t->lock);
	proc_usage(active ? pid : 0, &cpu, &rss);
	json_object_object_add(o, "detail", detail);
	json_object_object_add(o, "jail", jail);
	json_object_object_add(o, "vcpus", json_object_new_int64(e->def.vcpus));
	json_object_object_add(o, "memory_mib", json_object_new_int64((int64_t)e->def.memory_mib));
	if (active) {
		json_object_object_add(o, "pid", json_object_new_int64(pid));
		json_object_object_add(o, "monitor_pid", json_object_new_int64(mon));
		json_object_object_add(o, "started_at", json_object_new_double(started));
		json_object_object_add(o, "uptime_s", json_object_new_double(now() - started));
		json_object_object_add(o, "cpu_time_s", json_object_new_double(cpu));
		json_object_object_add(o, "rss_kib", json_object_new_int64(rss));
		json_object_object_add(o, "seccomp", proc_seccomp(pid));
		if (!t->limits_off && ternd_vm_cgroup(t, e, path, sizeof(path))) {
			json_object_object_add(o, "cgroup", cgroup_limits_read(path));
		} else {
			struct json_object *c = json_object_new_object();
			json_object_object_add(c, "not_applied",
					       json_object_new_string(t->limits_off ?
									      t->limits_off :
									      "no cgroup"));
			json_object_object_add(o, "cgroup", c);
		}
	}
	json_object_object_add(
		o, "api_socket",
		json_object_new_string(ternd_vmm_path(t, e, "api.sock", path, sizeof(path))));
	json_object_object_add(
		o, "console_socket",
		json_object_new_string(ternd_vm_dir(t, e, "console.sock", path, sizeof(path))));
	json_object_object_add(
		o, "console_log",
		json_object_new_string(ternd_vm_dir(t, e, "console.log", path, sizeof(path))));
	json_object_object_add(o, "definition", def);
	reply(resp, 200, o);
}

static void define(struct ternd *t, const struct http_request *req, struct http_response *resp)
{
	struct vmdef d;
	char err[1024];
	int r;

	if ((r = vmdef_parse(req->body, req->body_len, &d, true, err, sizeof(err))))
		return fail(resp, status_of(r), err);
	char name[VMDEF_NAME_MAX + 1];
	strcpy(name, d.name);
	if ((r = ternd_define(t, &d, err, sizeof(err)))) {
		vmdef_free(&d);
		return fail(resp, status_of(r), err);
	}
	struct vm_entry *e = ternd_get(t, name);
	if (!e)
		return fail(resp, 500, "the VM vanished while being defined");
	struct json_object *o = json_tokener_parse(e->def_json);
	ternd_put(t, e);
	reply(resp, 201, o);
}

/* PUT /vms/NAME: a new definition for a shut-off VM (tern edit); the uuid stays. */
static void redefine(struct ternd *t, struct vm_entry *e, const struct http_request *req,
		     struct http_response *resp)
{
	struct vmdef d;
	char err[1024];
	int r;

	if ((r = vmdef_parse(req->body, req->body_len, &d, true, err, sizeof(err))))
		return fail(resp, status_of(r), err);
	if (strcmp(d.uuid, e->def.uuid) && strstr(req->body, "\"uuid\"")) {
		vmdef_free(&d);
		return fail(resp, 400, "'uuid' cannot change: it names the VM for good");
	}
	strcpy(d.uuid, e->def.uuid);
	if (strcmp(d.name, e->def.name)) {
		vmdef_free(&d);
		return fail(resp, 400, "'name' cannot change in an edit (define a clone instead)");
	}
	char *json = vmdef_to_json(&d);
	pthread_mutex_lock(&t->lock);
	if (ternd_is_active(e)) {
		pthread_mutex_unlock(&t->lock);
		free(json);
		vmdef_free(&d);
		return fail(resp, 409, "the VM runs: shut it down to change its definition");
	}
	if (!json || (r = store_vm_set_definition(t->store, e->def.uuid, json))) {
		pthread_mutex_unlock(&t->lock);
		free(json);
		vmdef_free(&d);
		return fail(resp, 500, "cannot write the database");
	}
	vmdef_free(&e->def);
	e->def = d;
	free(e->def_json);
	e->def_json = json;
	store_event_add(t->store, e->def.name, "defined", "updated", NULL);
	pthread_cond_broadcast(&t->changed);
	pthread_mutex_unlock(&t->lock);
	reply(resp, 200, json_tokener_parse(json));
}

/*
 * PATCH /vms/NAME {"autostart": bool, "limits": {...}}: the parts of a definition that may
 * change while the VM runs. Limits given are merged into the definition's; a running VM's
 * cgroup gets them at once, and if it cannot, nothing changes.
 */
static void patch(struct ternd *t, struct vm_entry *e, const struct http_request *req,
		  struct http_response *resp)
{
	static const char *const keys[] = { "autostart", "limits", NULL };
	struct json_object *o = jin_parse_object(req->body, req->body_len, NULL, 0), *lo;
	struct vmdef_limits lim;
	char err[700] = "", cg[4200];
	bool on = false, has_on = false, has_lim = false;
	int r;

	if (!o)
		return fail(
			resp, 400,
			"the body must be a JSON object {\"autostart\": true|false, \"limits\": "
			"{...}}");
	r = jin_only(o, keys, "a PATCH of a VM", err, sizeof(err));
	if (!r && (r = jin_bool(o, "autostart", &on, err, sizeof(err))) > 0)
		has_on = true, r = 0;
	pthread_mutex_lock(&t->lock);
	if (!r && json_object_object_get_ex(o, "limits", &lo)) {
		/* The fields given replace the definition's; the others stay. */
		struct json_object *def = json_tokener_parse(e->def_json), *cur, *m;
		has_lim = true;
		if (!json_object_is_type(lo, json_type_object))
			r = fail_msg(err, sizeof(err), -EINVAL,
				     "'limits' must be an object {\"cpu_max_percent\", "
				     "\"cpu_weight\", \"memory_max_mib\", \"pids_max\"}");
		else if (def && json_object_object_get_ex(def, "limits", &cur) &&
			 json_object_is_type(cur, json_type_object)) {
			json_object_object_foreach(lo, k, v)
			{
				json_object_object_add(cur, k, json_object_get(v));
			}
			m = json_object_new_object();
			json_object_object_add(m, "limits", json_object_get(cur));
			r = vmdef_limits_parse(m, &e->def, &lim, err, sizeof(err));
			json_object_put(m);
		} else {
			r = vmdef_limits_parse(o, &e->def, &lim, err, sizeof(err));
		}
		json_object_put(def);
	}
	json_object_put(o);
	if (!r && !has_on && !has_lim)
		r = fail_msg(err, sizeof(err), -EINVAL,
			     "give 'autostart' (true or false) or 'limits' (an object)");
	if (r < 0) {
		pthread_mutex_unlock(&t->lock);
		return fail(resp, 400, err);
	}
	struct vmdef_limits was_lim = e->def.limits;
	bool was = e->def.autostart;
	if (has_lim)
		e->def.limits = lim;
	if (has_on)
		e->def.autostart = on;
	if (has_lim && ternd_is_active(e) && !t->limits_off &&
	    ternd_vm_cgroup(t, e, cg, sizeof(cg))) {
		if ((r = cgroup_limits_apply(cg, &e->def, err, sizeof(err)))) {
			/* Put back what was there: the kernel may have taken part of it. */
			e->def.limits = was_lim;
			cgroup_limits_apply(cg, &e->def, NULL, 0);
			e->def.autostart = was;
			pthread_mutex_unlock(&t->lock);
			return fail(resp, 409, err);
		}
	}
	char *json = vmdef_to_json(&e->def);
	if (!json || store_vm_set_definition(t->store, e->def.uuid, json)) {
		e->def.autostart = was;
		e->def.limits = was_lim;
		pthread_mutex_unlock(&t->lock);
		free(json);
		return fail(resp, 500, "cannot write the database");
	}
	free(e->def_json);
	e->def_json = json;
	store_event_add(t->store, e->def.name, "defined",
			has_lim ? "limits changed" :
			on	? "autostart on" :
				  "autostart off",
			NULL);
	pthread_cond_broadcast(&t->changed);
	pthread_mutex_unlock(&t->lock);
	reply(resp, 200, json_tokener_parse(json));
}

static long long query_num(const char *query, const char *key, long long dflt, long long max)
{
	size_t k = strlen(key);

	for (const char *p = query; p && *p; p = strchr(p, '&') ? strchr(p, '&') + 1 : NULL) {
		uint64_t v;
		char num[32];
		if (strncmp(p, key, k) || p[k] != '=')
			continue;
		size_t len = strcspn(p + k + 1, "&");
		if (len >= sizeof(num))
			return -1;
		memcpy(num, p + k + 1, len);
		num[len] = 0;
		return parse_u64(num, 0, (uint64_t)max, &v) ? (long long)v : -1;
	}
	return dflt;
}

static void events(struct ternd *t, const struct http_request *req, struct http_response *resp)
{
	/* after=-1: from now on (what `tern events --follow` starts with). */
	long long after = strstr(req->query, "after=-1") ?
				  store_last_event(t->store) :
				  query_num(req->query, "after", 0, INT64_MAX);
	long long wait = query_num(req->query, "wait", 0, EVENTS_WAIT_MAX_S);
	struct store_event *ev = NULL;
	size_t n = 0;
	struct timespec until;

	if (after < 0 || wait < 0)
		return fail(resp, 400,
			    "query: 'after' must be an event id (0 or more, or -1: the newest), "
			    "'wait' 0 "
			    "to 300 seconds");
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += wait;
	for (;;) {
		if (store_events(t->store, after, EVENTS_MAX, &ev, &n))
			return fail(resp, 500, "cannot read the events");
		if (n || !wait)
			break;
		store_events_free(ev, n);
		pthread_mutex_lock(&t->lock);
		int r = store_last_event(t->store) > after ?
				0 :
				pthread_cond_timedwait(&t->changed, &t->lock, &until);
		pthread_mutex_unlock(&t->lock);
		if (r == ETIMEDOUT)
			wait = 0;
	}
	struct json_object *o = json_object_new_object(), *a = json_object_new_array();
	for (size_t i = 0; i < n; i++) {
		struct json_object *x = json_object_new_object();
		json_object_object_add(x, "id", json_object_new_int64(ev[i].id));
		json_object_object_add(x, "at", json_object_new_double(ev[i].at));
		json_object_object_add(x, "name", json_object_new_string(ev[i].name));
		json_object_object_add(x, "state", json_object_new_string(ev[i].state));
		json_object_object_add(x, "reason", json_object_new_string(ev[i].reason));
		json_object_object_add(x, "detail",
				       ev[i].detail ? json_tokener_parse(ev[i].detail) : NULL);
		json_object_array_add(a, x);
	}
	json_object_object_add(o, "events", a);
	json_object_object_add(o, "last", json_object_new_int64(n ? ev[n - 1].id : after));
	store_events_free(ev, n);
	reply(resp, 200, o);
}

static void operation(struct ternd *t, struct vm_entry *e, const char *op,
		      const struct http_request *req, struct http_response *resp)
{
	char err[1024];
	int r;

	pthread_mutex_lock(&e->op);
	r = e->removed ? fail_msg(err, sizeof(err), -ENOENT, "no VM named %s", e->def.name) :
			 ops_do(t, e, op, req->body, err, sizeof(err));
	pthread_mutex_unlock(&e->op);
	if (r)
		return fail(resp, status_of(r), err);
	pthread_mutex_lock(&t->lock);
	struct json_object *o = summary(e);
	pthread_mutex_unlock(&t->lock);
	reply(resp, 200, o);
}

static void undefine(struct ternd *t, struct vm_entry *e, const struct http_request *req,
		     struct http_response *resp)
{
	long long storage = query_num(req->query, "remove_storage", 0, 1);
	char err[1024];
	int r;

	if (storage < 0)
		return fail(resp, 400, "query: 'remove_storage' must be 0 or 1");
	pthread_mutex_lock(&e->op);
	r = e->removed ? fail_msg(err, sizeof(err), -ENOENT, "no VM named %s", e->def.name) :
			 ternd_undefine(t, e, storage == 1, err, sizeof(err));
	pthread_mutex_unlock(&e->op);
	if (r)
		return fail(resp, status_of(r), err);
	resp->status = 204;
}

static bool is(const struct http_request *req, const char *m)
{
	return !strcmp(req->method_name, m);
}

/* GET /vms/NAME/job: how far it is; DELETE: stop it (a migration; virsh domjobabort). */
static void job_route(struct ternd *t, struct vm_entry *e, const struct http_request *req,
		      struct http_response *resp)
{
	char err[300];
	int r;

	if (is(req, "GET"))
		return reply(resp, 200, job_get(t, e));
	if (!is(req, "DELETE"))
		return fail(resp, 405, "GET or DELETE only");
	if ((r = job_cancel(t, e, err, sizeof(err))))
		return fail(resp, r == -ENOENT ? 409 : status_of(r), err);
	reply(resp, 202, job_get(t, e));
}

/* POST /vms/NAME/migrate: the VM's summary (shut off, migrated) with the migration's numbers. */
static void migrate_route(struct ternd *t, struct vm_entry *e, const struct http_request *req,
			  struct http_response *resp)
{
	struct json_object *report = NULL;
	char err[1024];
	int r;

	pthread_mutex_lock(&e->op);
	r = e->removed ? fail_msg(err, sizeof(err), -ENOENT, "no VM named %s", e->def.name) :
			 migrate_out(t, e, req->body, &report, err, sizeof(err));
	pthread_mutex_unlock(&e->op);
	if (r)
		return fail(resp, status_of(r), err);
	pthread_mutex_lock(&t->lock);
	struct json_object *o = summary(e);
	pthread_mutex_unlock(&t->lock);
	json_object_object_add(o, "migration", report);
	reply(resp, 200, o);
}

/*
 * /vms/NAME/incoming[/stream]: a migration's destination (another host's ternd asks);
 * NAME need not be defined here yet. rest is what follows "/incoming".
 */
static void incoming_route(struct ternd *t, const char *name, const char *rest,
			   const struct http_request *req, struct http_response *resp)
{
	struct json_object *o = NULL;
	char err[1024];
	int r;

	if (*rest && strcmp(rest, "/stream"))
		return fail(resp, 404, "no such path: see docs/ternd.md");
	if (!is(req, "POST"))
		return fail(resp, 405, "POST only");
	r = *rest ? migrate_in_stream(t, name, req->body, &o, err, sizeof(err)) :
		    migrate_in_prepare(t, name, req->body, &o, err, sizeof(err));
	if (r)
		return fail(resp, status_of(r), err);
	reply(resp, 200, o);
}

/* A VM migrating in is its migration's: only destroy may stop it meanwhile. */
static bool refused_while_incoming(struct ternd *t, struct vm_entry *e, const char *op,
				   const struct http_request *req, struct http_response *resp)
{
	char msg[200];
	bool in;

	if (is(req, "GET") || (!strcmp(op, "destroy") && is(req, "POST")))
		return false;
	pthread_mutex_lock(&t->lock);
	in = !strcmp(e->state, "migrating in");
	pthread_mutex_unlock(&t->lock);
	if (!in)
		return false;
	snprintf(msg, sizeof(msg), "%s is migrating in: wait until it runs here (or destroy it)",
		 e->def.name);
	fail(resp, 409, msg);
	return true;
}

/* GET /vms/NAME/stats */
static void stats(struct ternd *t, struct vm_entry *e, struct http_response *resp)
{
	char err[1024];
	int status;
	struct json_object *o = stats_get(t, e, &status, err, sizeof(err));

	if (!o)
		return fail(resp, status, err);
	reply(resp, 200, o);
}

/* POST /vms/NAME/clone: 201 with the new VM's summary. */
static void clone_route(struct ternd *t, struct vm_entry *e, const struct http_request *req,
			struct http_response *resp)
{
	char err[1024], name[VMDEF_NAME_MAX + 1];
	int r;

	pthread_mutex_lock(&e->op);
	r = e->removed ? fail_msg(err, sizeof(err), -ENOENT, "no VM named %s", e->def.name) :
			 clone_vm(t, e, req->body, name, err, sizeof(err));
	pthread_mutex_unlock(&e->op);
	if (r)
		return fail(resp, status_of(r), err);
	struct vm_entry *c = ternd_get(t, name);
	if (!c)
		return fail(resp, 500, "the clone vanished while being defined");
	pthread_mutex_lock(&t->lock);
	struct json_object *o = summary(c);
	pthread_mutex_unlock(&t->lock);
	ternd_put(t, c);
	reply(resp, 201, o);
}

/*
 * /vms/NAME/snapshots (GET: list, POST {"name"}: create), /vms/NAME/snapshots/SNAP
 * (DELETE), /vms/NAME/snapshots/SNAP/revert (POST). rest is what follows "/snapshots".
 */
static void snapshots(struct ternd *t, struct vm_entry *e, const char *rest,
		      const struct http_request *req, struct http_response *resp)
{
	char snap[VMDEF_NAME_MAX + 2] = "", err[1024], verb[16] = "";
	int r;

	if (!*rest && is(req, "GET")) {
		struct json_object *o = snap_list(t, e);
		return o ? reply(resp, 200, o) : fail(resp, 500, "cannot read the database");
	}
	if (*rest &&
	    (sscanf(rest, "/%64[^/]/%15s", snap, verb) < 1 || strlen(snap) > VMDEF_NAME_MAX ||
	     strlen(rest) != 1 + strlen(snap) + (verb[0] ? strlen(verb) + 1 : 0)))
		return fail(resp, 404, "no such path: see docs/ternd.md");
	bool create = !*rest && is(req, "POST");
	bool revert = snap[0] && !strcmp(verb, "revert") && is(req, "POST");
	bool del = snap[0] && !verb[0] && is(req, "DELETE");
	if (!create && !revert && !del)
		return fail(resp, 405, "not a method this path takes: see docs/ternd.md");
	pthread_mutex_lock(&e->op);
	if (e->removed)
		r = fail_msg(err, sizeof(err), -ENOENT, "no VM named %s", e->def.name);
	else if (create)
		r = snap_create(t, e, req->body, snap, err, sizeof(err));
	else if (revert)
		r = snap_revert(t, e, snap, err, sizeof(err));
	else
		r = snap_delete(t, e, snap, err, sizeof(err));
	pthread_mutex_unlock(&e->op);
	if (r)
		return fail(resp, status_of(r), err);
	if (del) {
		resp->status = 204;
		return;
	}
	pthread_mutex_lock(&t->lock);
	struct json_object *o = summary(e);
	pthread_mutex_unlock(&t->lock);
	json_object_object_add(o, "snapshot", json_object_new_string(snap));
	reply(resp, create ? 201 : 200, o);
}

void mgmt_handle(void *opaque, const struct http_request *req, struct http_response *resp)
{
	const struct mgmt_listener *l = opaque;
	struct ternd *t = l->ternd;
	char name[128], op[32];
	const char *p = req->path;

	if (l->readonly && !is(req, "GET"))
		return fail(resp, 403,
			    "this socket is read-only: use ternd.sock to change anything");
	if (!strcmp(p, "/")) {
		if (!is(req, "GET"))
			return fail(resp, 405, "GET only");
		struct json_object *o = json_object_new_object();
		json_object_object_add(o, "name", json_object_new_string("ternd"));
		json_object_object_add(o, "state_dir", json_object_new_string(t->state_dir));
		json_object_object_add(o, "read_only", json_object_new_boolean(l->readonly));
		return reply(resp, 200, o);
	}
	if (!strcmp(p, "/events"))
		return is(req, "GET") ? events(t, req, resp) : fail(resp, 405, "GET only");
	if (!strcmp(p, "/vms")) {
		if (is(req, "GET"))
			return list(t, resp);
		if (is(req, "POST"))
			return define(t, req, resp);
		return fail(resp, 405, "GET or POST only");
	}
	op[0] = 0;
	const char *snaps = NULL;
	if (sscanf(p, "/vms/%127[^/]/%31[^/]", name, op) == 2 && !strcmp(op, "incoming"))
		return incoming_route(t, name,
				      p + strlen("/vms/") + strlen(name) + strlen("/incoming"), req,
				      resp);
	if (sscanf(p, "/vms/%127[^/]/%31[^/]", name, op) == 2 && !strcmp(op, "snapshots"))
		snaps = p + strlen("/vms/") + strlen(name) + strlen("/snapshots");
	else if (sscanf(p, "/vms/%127[^/]/%31[^/]", name, op) < 1 ||
		 strlen(p) != strlen("/vms/") + strlen(name) + (op[0] ? strlen(op) + 1 : 0))
		return fail(resp, 404, "no such path: see docs/ternd.md");
	struct vm_entry *e = ternd_get(t, name);
	if (!e) {
		char msg[200];
		snprintf(msg, sizeof(msg), "no VM named %.64s", name);
		return fail(resp, 404, msg);
	}
	if (refused_while_incoming(t, e, op, req, resp))
		;
	else if (snaps)
		snapshots(t, e, snaps, req, resp);
	else if (!strcmp(op, "job"))
		job_route(t, e, req, resp);
	else if (!strcmp(op, "stats"))
		is(req, "GET") ? stats(t, e, resp) : fail(resp, 405, "GET only");
	else if (!strcmp(op, "clone"))
		is(req, "POST") ? clone_route(t, e, req, resp) : fail(resp, 405, "POST only");
	else if (!strcmp(op, "migrate"))
		is(req, "POST") ? migrate_route(t, e, req, resp) : fail(resp, 405, "POST only");
	else if (!op[0] && is(req, "GET"))
		info(t, e, resp);
	else if (!op[0] && is(req, "PUT"))
		redefine(t, e, req, resp);
	else if (!op[0] && is(req, "PATCH"))
		patch(t, e, req, resp);
	else if (!op[0] && is(req, "DELETE"))
		undefine(t, e, req, resp);
	else if (op[0] && is(req, "POST"))
		operation(t, e, op, req, resp);
	else
		fail(resp, 405, "not a method this path takes: see docs/ternd.md");
	ternd_put(t, e);
}
