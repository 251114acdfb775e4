/*
 * The source's side of a migration to another host's ternd (docs/ternd.md, "Migration"),
 * POST /vms/NAME/migrate. Over TLS, with ternd's client certificate, the destination's
 * ternd is asked to make the VM ready and to open the stream's tunnel; this VM's tern-vmm
 * sends to a Unix socket in the VM's directory (PUT /migrate), and a thread relays that
 * into the tunnel, so the stream is encrypted and both ends authenticated. The job follows
 * tern-vmm's GET /migrate. On success the VM is shut off here (migrated) and runs there;
 * on failure it runs on here, and the destination removes what it made.
 */
#include "daemon/ternd.h"
#include "daemon/vm_jail.h"

#include "api/json_in.h"
#include "core/log.h"
#include "core/tls.h"
#include "core/tls_http.h"
#include "core/util.h"
#include "daemon/relay.h"
#include "daemon/vmm_client.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define DOWNTIME_DEFAULT_MS 300 /* QEMU's and tern-vmm's default */
#define DOWNTIME_MAX_MS 3600000
#define BANDWIDTH_MAX_MIB_S 1048576
/* The destination starts a tern-vmm for the prepare: its start timeout, and a margin. */
#define PREPARE_MS 90000
#define STREAM_MS 30000
#define ACCEPT_MS 15000
#define POLL_MS 500
/* tern-vmm does not answer GET /migrate during the switchover (its loop sends then): this
 * long without an answer, while it lives, is a hang. */
#define SILENT_MAX_MS 600000
/* How long the destination gets to say the VM runs there, after tern-vmm said so. */
#define ARRIVE_MS 30000

struct mig {
	char url[300];
	struct hostport hp;
	bool live, auto_converge, undefine_source, copy_storage, post_copy;
	uint64_t downtime_ms, bandwidth_mib_s;
	/* while it runs */
	struct tls_creds *creds;
	char peer[400];
	char name[VMDEF_NAME_MAX + 1], uuid[VMDEF_UUID_LEN + 1];
};

/* What tern-vmm's GET /migrate says (src/api/res_migrate.c). */
struct vmm_progress {
	char status[16];
	uint64_t round, ram, sent, left, expected_ms, total_ms;
	double downtime_ms;
	char error[512];
};

static long long ms_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

static bool state_is(struct ternd *t, struct vm_entry *e, const char *state)
{
	bool is;

	pthread_mutex_lock(&t->lock);
	is = !strcmp(e->state, state);
	pthread_mutex_unlock(&t->lock);
	return is;
}

static int parse(const char *body, struct mig *m, char *err, size_t n)
{
	static const char *const keys[] = { "host",
					    "live",
					    "downtime_limit_ms",
					    "bandwidth_mib_s",
					    "auto_converge",
					    "copy_storage",
					    "post_copy",
					    "undefine_source",
					    NULL };
	struct json_object *o;
	const char *host = NULL;
	char why[512];
	int r;

	m->downtime_ms = DOWNTIME_DEFAULT_MS;
	if (!body || !*body)
		return fail_msg(err, n, -EINVAL,
				"'host' is required: the destination's ternd as tls://HOST:PORT "
				"(its --listen-tls)");
	if (!(o = jin_parse_object(body, strlen(body), err, n)))
		return -EINVAL;
	if ((r = jin_only(o, keys, "a migration", err, n)) ||
	    (r = jin_string(o, "host", sizeof(m->url) - 1, &host, err, n)) < 0)
		goto out;
	if (!r || !*host) {
		r = fail_msg(err, n, -EINVAL,
			     "'host' is required: the destination's ternd as tls://HOST:PORT (its "
			     "--listen-tls)");
		goto out;
	}
	if (tls_url_parse(host, &m->hp, m->url, sizeof(m->url), why, sizeof(why))) {
		r = fail_msg(err, n, -EINVAL, "'host': %s", why);
		goto out;
	}
	if ((r = jin_bool(o, "live", &m->live, err, n)) < 0 ||
	    (r = jin_u64(o, "downtime_limit_ms", 1, DOWNTIME_MAX_MS, &m->downtime_ms, err, n)) <
		    0 ||
	    (r = jin_u64(o, "bandwidth_mib_s", 0, BANDWIDTH_MAX_MIB_S, &m->bandwidth_mib_s, err,
			 n)) < 0 ||
	    (r = jin_bool(o, "auto_converge", &m->auto_converge, err, n)) < 0 ||
	    (r = jin_bool(o, "undefine_source", &m->undefine_source, err, n)) < 0 ||
	    (r = jin_bool(o, "copy_storage", &m->copy_storage, err, n)) < 0 ||
	    (r = jin_bool(o, "post_copy", &m->post_copy, err, n)) < 0)
		goto out;
	r = 0; /* a field given is 1 */
out:
	json_object_put(o);
	return r;
}

/*
 * The destination's answer that was not the one wanted: -EBUSY (409) when it refused
 * (its 4xx: a VM of that name there, a file missing there ...), else -EIO, with what it said.
 */
static int remote_failed(const struct mig *m, int status, const char *resp, const char *why,
			 const char *what, char *err, size_t n)
{
	struct json_object *o = status > 0 && resp ? json_tokener_parse(resp) : NULL, *x;
	const char *said =
		o && json_object_object_get_ex(o, "error", &x) ? json_object_get_string(x) : resp;
	int r;

	if (status < 0)
		r = fail_msg(err, n, status == -ETIMEDOUT ? -ETIMEDOUT : -EIO, "%s: %s", what, why);
	else
		r = fail_msg(err, n, status >= 400 && status < 500 ? -EBUSY : -EIO,
			     "%s: the destination (%s) answered %d: %s", what, m->url, status,
			     said && *said ? said : "(nothing)");
	json_object_put(o);
	return r;
}

static int peer_call(struct mig *m, const char *method, const char *suffix, const char *body,
		     int timeout_ms, char **resp, struct tls_conn **tunnel, char *why, size_t wn)
{
	char path[200];

	snprintf(path, sizeof(path), "/vms/%s%s", m->name, suffix);
	return tls_http_request(m->creds, &m->hp, m->peer, method, path, body, timeout_ms, resp,
				tunnel, why, wn);
}

/* Asks the destination to make the VM ready, then opens the stream's tunnel. */
static int open_tunnel(struct ternd *t, struct vm_entry *e, struct mig *m, struct tls_conn **out,
		       char *err, size_t n)
{
	char why[1024], *resp = NULL, body[128];
	int r;

	pthread_mutex_lock(&t->lock);
	struct json_object *def = json_tokener_parse(e->def_json);
	pthread_mutex_unlock(&t->lock);
	struct json_object *o = json_object_new_object();
	json_object_object_add(o, "definition", def);
	if (m->copy_storage)
		json_object_object_add(o, "copy_storage", json_object_new_boolean(true));
	/* Jailed here: the destination gives the disks back to their first owners in the end. */
	uid_t uid = 0;
	struct json_object *files = vmjail_records(t, e, &uid);
	if (uid) {
		struct json_object *j = json_object_new_object();
		json_object_object_add(j, "uid", json_object_new_int64(uid));
		json_object_object_add(j, "files", json_object_get(files));
		json_object_object_add(o, "jail", j);
	}
	json_object_put(files);
	r = peer_call(m, "POST", "/incoming",
		      json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
								JSON_C_TO_STRING_NOSLASHESCAPE),
		      PREPARE_MS, &resp, NULL, why, sizeof(why));
	json_object_put(o);
	if (r != 200) {
		r = remote_failed(m, r, resp, why, "the destination did not make the VM ready", err,
				  n);
		free(resp);
		return r;
	}
	free(resp);
	snprintf(body, sizeof(body), "{\"uuid\": \"%s\"}", m->uuid);
	r = peer_call(m, "POST", "/incoming/stream", body, STREAM_MS, &resp, out, why, sizeof(why));
	if (r != 200)
		r = remote_failed(m, r, resp, why, "the destination did not open the stream", err,
				  n);
	else
		r = 0;
	free(resp);
	return r;
}

static int listen_unix(const char *path, char *err, size_t n)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	int fd;

	if (strlen(path) >= sizeof(a.sun_path))
		return fail_msg(err, n, -ENAMETOOLONG,
				"%s is longer than a socket path may be: ternd's state directory "
				"is too deep for migrations",
				path);
	strcpy(a.sun_path, path);
	unlink(path);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		return fail_msg(err, n, -errno, "socket: %s", strerror(errno));
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) || listen(fd, 1)) {
		int e = errno;
		close(fd);
		return fail_msg(err, n, -e, "%s: %s", path, strerror(e));
	}
	return fd;
}

static int accept_within(int lfd, int timeout_ms)
{
	struct pollfd p = { .fd = lfd, .events = POLLIN };
	int r = poll(&p, 1, timeout_ms);

	if (r <= 0)
		return r == 0 ? -ETIMEDOUT : -errno;
	r = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	return r < 0 ? -errno : r;
}

static uint64_t num(struct json_object *o, const char *k)
{
	struct json_object *x;

	return json_object_object_get_ex(o, k, &x) ? (uint64_t)json_object_get_int64(x) : 0;
}

/* GET /migrate of the VM's tern-vmm into p (and its JSON into *json); the HTTP status or
 * -errno. */
static int vmm_progress(struct ternd *t, struct vm_entry *e, struct vmm_progress *p, char **json)
{
	char api[4200], why[256], *resp = NULL;
	struct json_object *o, *x;
	int r = vmm_request(ternd_vmm_path(t, e, "api.sock", api, sizeof(api)), "GET", "/migrate",
			    NULL, 2000, &resp, why, sizeof(why));

	*json = NULL;
	if (r != 200 || !resp || !(o = json_tokener_parse(resp))) {
		free(resp);
		return r == 200 ? -EPROTO : r;
	}
	memset(p, 0, sizeof(*p));
	if (json_object_object_get_ex(o, "status", &x))
		snprintf(p->status, sizeof(p->status), "%s", json_object_get_string(x));
	if (json_object_object_get_ex(o, "error", &x))
		snprintf(p->error, sizeof(p->error), "%s", json_object_get_string(x));
	if (json_object_object_get_ex(o, "downtime_ms", &x))
		p->downtime_ms = json_object_get_double(x);
	p->round = num(o, "round");
	p->ram = num(o, "ram_bytes");
	p->sent = num(o, "bytes_sent");
	p->left = num(o, "bytes_left");
	p->expected_ms = num(o, "expected_downtime_ms");
	p->total_ms = num(o, "total_ms");
	json_object_put(o);
	*json = resp;
	return 200;
}

/* Where it is, in words, for the job (tern's progress line). */
static void describe(const struct vmm_progress *p, char *buf, size_t n)
{
	if (!strcmp(p->status, "active"))
		snprintf(buf, n, "round %llu, %.1f MiB left, ~%llu ms downtime",
			 (unsigned long long)p->round, p->left / 1048576.0,
			 (unsigned long long)p->expected_ms);
	else if (!strcmp(p->status, "setup"))
		snprintf(buf, n, "setting up");
	else if (!strcmp(p->status, "switchover"))
		snprintf(buf, n, "switching over");
	else if (!strcmp(p->status, "postcopy"))
		snprintf(buf, n, "post-copy: it runs there, %.1f MiB left", p->left / 1048576.0);
	else
		snprintf(buf, n, "%s", p->status);
}

/* The job's view of the last GET /migrate, with the destination added. */
static void job_update(struct ternd *t, struct vm_entry *e, const struct mig *m,
		       const struct vmm_progress *p, const char *json)
{
	struct json_object *o = json ? json_tokener_parse(json) : NULL;
	char words[160];

	if (o)
		json_object_object_add(o, "destination", json_object_new_string(m->url));
	describe(p, words, sizeof(words));
	job_set(t, e, p->sent, p->ram ? p->ram : e->def.memory_mib << 20, words,
		o ? json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN) : NULL);
	json_object_put(o);
}

/*
 * Follows tern-vmm's migration to its end: 0 when it completed (last holds its final
 * numbers, when it said them before it exited), else -errno with err.
 */
static int follow(struct ternd *t, struct vm_entry *e, const struct mig *m,
		  struct vmm_progress *last, char *err, size_t n)
{
	long long answered = ms_now();
	bool told = false;

	for (;;) {
		struct vmm_progress p;
		char *json = NULL;
		char why[300];
		/* tern abort: tern-vmm stops sending, the source runs on, the stream closes. */
		if (!told && job_cancelled(t, e)) {
			told = true;
			if (ops_vmm_call(t, e, "PUT", "/migrate/cancel", "{}", API_TIMEOUT_MS, why,
					 sizeof(why)))
				log_warn("%s: cannot cancel the migration: %s", e->def.name, why);
		}
		int r = vmm_progress(t, e, &p, &json);
		if (r == 200) {
			answered = ms_now();
			job_update(t, e, m, &p, json);
			free(json);
			if (!strcmp(p.status, "completed")) {
				*last = p;
				return 0;
			}
			if (!strcmp(p.status, "cancelled"))
				return fail_msg(err, n, -ECANCELED,
						"the migration was cancelled (tern abort)");
			if (!strcmp(p.status, "failed"))
				return fail_msg(err, n, -EIO, "the migration %s: %s", p.status,
						p.error[0] ? p.error : "(tern-vmm gave no reason)");
		} else if (run_wait_off(t, e, 0)) {
			/* It exited before we saw the end: its status file says how. */
			char reason[16];
			pthread_mutex_lock(&t->lock);
			snprintf(reason, sizeof(reason), "%s", e->reason);
			pthread_mutex_unlock(&t->lock);
			if (!strcmp(reason, "migrated"))
				return 0;
			return fail_msg(err, n, -EIO,
					"%s's tern-vmm ended during the migration (%s): see tern "
					"info %s",
					e->def.name, reason, e->def.name);
		} else if (ms_now() - answered > SILENT_MAX_MS) {
			return fail_msg(err, n, -ETIMEDOUT,
					"%s's tern-vmm has not answered GET /migrate for %d s",
					e->def.name, SILENT_MAX_MS / 1000);
		}
		usleep(POLL_MS * 1000);
	}
}

struct tunnel {
	pthread_t th;
	int stop; /* an eventfd: the migration ended without tern-vmm closing its end */
	struct relay_end vmm, peer;
	char vmm_name[128];
	char err[1024];
};

static void *tunnel_thread(void *arg)
{
	struct tunnel *tn = arg;

	relay_run(&tn->vmm, &tn->peer, -1, tn->stop, tn->err, sizeof(tn->err));
	log_info("%s: migration stream ended (%llu bytes sent, %llu received): %s", tn->vmm_name,
		 (unsigned long long)tn->vmm.bytes_in, (unsigned long long)tn->peer.bytes_in,
		 tn->err);
	return NULL;
}

/* The destination's view of the VM: its state into state ("" when it has none). */
static struct json_object *remote_vm(struct mig *m, char *state, size_t sn)
{
	char *resp = NULL, why[512];
	struct json_object *o = NULL, *x;
	int r = peer_call(m, "GET", "", NULL, API_TIMEOUT_MS, &resp, NULL, why, sizeof(why));

	state[0] = 0;
	if (r == 200 && resp && (o = json_tokener_parse(resp)) &&
	    json_object_object_get_ex(o, "state", &x))
		snprintf(state, sn, "%s", json_object_get_string(x));
	else if (r == 404)
		snprintf(state, sn, "undefined");
	free(resp);
	return o;
}

/* After success: waits until the destination says the VM runs there; its info, or NULL. */
static struct json_object *wait_arrived(struct mig *m)
{
	long long end = ms_now() + ARRIVE_MS;
	char state[32];

	for (;;) {
		struct json_object *o = remote_vm(m, state, sizeof(state));
		if (!strcmp(state, "running") || !strcmp(state, "paused"))
			return o;
		json_object_put(o);
		if (ms_now() > end)
			return NULL;
		usleep(200000);
	}
}

/*
 * After a failure, tern-vmm runs the VM on unless it was paused: by the user before (it
 * stays so), by us (not live), or by tern-vmm for a switchover the destination did not
 * confirm. In the last two it may run on only once the destination says it does not run it.
 */
static void recover(struct ternd *t, struct vm_entry *e, struct mig *m, bool user_paused)
{
	char api[4200], *resp = NULL, why[512], state[32] = "";
	long long end = ms_now() + ARRIVE_MS;
	int r = vmm_request(ternd_vmm_path(t, e, "api.sock", api, sizeof(api)), "GET", "/", NULL,
			    API_TIMEOUT_MS, &resp, why, sizeof(why));
	bool paused = r == 200 && resp && strstr(resp, "\"Paused\"");

	free(resp);
	if (r != 200 || (paused && user_paused))
		return;
	if (!paused) {
		if (!state_is(t, e, "running"))
			ternd_set_state(t, e, "running", "unpaused", NULL);
		return;
	}
	/* The destination's VM ends soon after a failure there: wait for its word. */
	do {
		json_object_put(remote_vm(m, state, sizeof(state)));
		if (strcmp(state, "migrating in"))
			break;
		usleep(200000);
	} while (ms_now() < end);
	if (strcmp(state, "undefined") && strcmp(state, "shut off")) {
		log_error("%s: left paused after the failed migration: the destination says it is "
			  "'%s' there; resume it here only if it does not run there",
			  e->def.name, state[0] ? state : "unreachable");
		ternd_set_state(t, e, "paused", "migration", NULL);
		return;
	}
	if (ops_vmm_call(t, e, "PATCH", "/vm", "{\"state\": \"Resumed\"}", API_TIMEOUT_MS, why,
			 sizeof(why))) {
		log_error("%s: cannot resume it after the failed migration: %s", e->def.name, why);
		ternd_set_state(t, e, "paused", "migration", NULL);
	} else {
		ternd_set_state(t, e, "running", "unpaused", NULL);
	}
}

/* The report of a completed migration, and what is left to do after it. */
static struct json_object *completed(struct ternd *t, struct vm_entry *e, struct mig *m,
				     const struct vmm_progress *p, bool paused_here)
{
	struct json_object *o = json_object_new_object(), *there, *d = NULL;
	char why[1024], *resp = NULL;

	if (!run_wait_off(t, e, 30000))
		log_warn("%s: migrated, but its tern-vmm has not ended within 30 s", e->def.name);
	there = wait_arrived(m);
	/* tern-vmm may exit before its last GET /migrate: the destination's tern-vmm heard
	 * the same report, and its ternd keeps it as the VM's detail. */
	struct vmm_progress fin = { 0 };
	if (!strcmp(p->status, "completed")) {
		fin = *p;
	} else if (there && json_object_object_get_ex(there, "detail", &d) && d) {
		struct json_object *x;
		if (json_object_object_get_ex(d, "downtime_ms", &x))
			fin.downtime_ms = json_object_get_double(x);
		fin.total_ms = num(d, "total_ms");
		fin.round = num(d, "round");
		fin.sent = num(d, "bytes_sent");
	}
	json_object_object_add(o, "destination", json_object_new_string(m->url));
	json_object_object_add(o, "downtime_ms", json_object_new_double(fin.downtime_ms));
	json_object_object_add(o, "total_ms", json_object_new_int64((int64_t)fin.total_ms));
	json_object_object_add(o, "rounds", json_object_new_int64((int64_t)fin.round));
	json_object_object_add(o, "bytes_sent", json_object_new_int64((int64_t)fin.sent));
	json_object_object_add(o, "ram_bytes",
			       json_object_new_int64((int64_t)(e->def.memory_mib << 20)));
	/* Not live: it was paused here first and goes on there (libvirt's non-live). */
	if (there && paused_here) {
		int r = peer_call(m, "POST", "/resume", "{}", API_TIMEOUT_MS, &resp, NULL, why,
				  sizeof(why));
		if (r != 200)
			log_error("%s: migrated, but the destination did not resume it (%d): %s",
				  e->def.name, r, r > 0 && resp ? resp : why);
		free(resp);
		json_object_put(there);
		there = wait_arrived(m);
	}
	struct json_object *st = NULL;
	if (there && json_object_object_get_ex(there, "state", &st))
		json_object_object_add(o, "destination_state", json_object_get(st));
	else
		json_object_object_add(o, "destination_state", json_object_new_string("unknown"));
	json_object_put(there);
	if (m->undefine_source) {
		bool gone = !ternd_undefine(t, e, false, why, sizeof(why));
		if (!gone)
			log_error("%s: migrated, but not undefined here: %s", e->def.name, why);
		json_object_object_add(o, "source_undefined", json_object_new_boolean(gone));
	}
	return o;
}

int migrate_out(struct ternd *t, struct vm_entry *e, const char *body, struct json_object **report,
		char *err, size_t n)
{
	struct mig m = { 0 };
	struct tls_conn *stream = NULL;
	struct tunnel *tn = NULL;
	struct vmm_progress last = { 0 };
	char sock[4200], uri[4300], why[1024], req[4600];
	bool paused_here = false, user_paused;
	int lfd = -1, vfd = -1, r;

	*report = NULL;
	if ((r = parse(body, &m, err, n)) ||
	    (r = ops_need_state(t, e, "running", "paused", "migrate", err, n)))
		return r;
	for (unsigned int i = 0; m.copy_storage && i < e->def.ndisks; i++) {
		enum disk_format f;
		if (disk_format_resolve(e->def.disks[i].path, e->def.disks[i].format, &f))
			f = DISK_FORMAT_RAW; /* unreadable: tern-vmm's own check words it */
		if (f == DISK_FORMAT_OVERLAY && !e->def.disks[i].readonly)
			return fail_msg(err, n, -EINVAL,
					"'copy_storage': disk %u of %s is a tern overlay; raw and "
					"qcow2 images are copied",
					i, e->def.name);
	}
	user_paused = state_is(t, e, "paused");
	snprintf(m.name, sizeof(m.name), "%s", e->def.name);
	snprintf(m.uuid, sizeof(m.uuid), "%s", e->def.uuid);
	snprintf(m.peer, sizeof(m.peer), "ternd at %s", m.url);
	if (tls_creds_load(&m.creds, TLS_CLIENT, t->tls_dir, why, sizeof(why)))
		return fail_msg(err, n, -EIO,
				"no client certificate for the migration: %s (ternd --tls-dir; "
				"docs/ternd.md, \"Remote management over TLS\")",
				why);
	job_begin(t, e, "migrate", e->def.memory_mib << 20, false);
	snprintf(why, sizeof(why), "connecting to %s", m.url);
	job_set(t, e, 0, e->def.memory_mib << 20, why, NULL);
	log_info("%s: migrating to %s (%s%s%s)", m.name, m.url, m.live ? "live" : "paused first",
		 m.copy_storage ? ", copying its disks" : "", m.post_copy ? ", post-copy" : "");
	if ((r = open_tunnel(t, e, &m, &stream, err, n)))
		goto out;
	if (job_cancelled(t, e)) {
		r = fail_msg(err, n, -ECANCELED, "the migration was cancelled (tern abort)");
		goto out;
	}
	/* tern-vmm sends to this socket; ternd relays into the tunnel. */
	ternd_vmm_path(t, e, "migrate.sock", sock, sizeof(sock));
	if ((lfd = r = listen_unix(sock, err, n)) < 0)
		goto out;
	/* A jailed tern-vmm connects as its own uid. */
	if (e->jailed && lchown(sock, e->jail_uid, e->jail_uid)) {
		r = fail_msg(err, n, -errno, "%s: %s", sock, strerror(errno));
		goto out;
	}
	if (!m.live && !user_paused) {
		if ((r = ops_vmm_call(t, e, "PATCH", "/vm", "{\"state\": \"Paused\"}",
				      API_TIMEOUT_MS, err, n)))
			goto out;
		paused_here = true;
		ternd_set_state(t, e, "paused", "migration", NULL);
	}
	snprintf(uri, sizeof(uri), "unix:%s", sock);
	struct json_object *o = json_object_new_object();
	json_object_object_add(o, "destination", json_object_new_string(uri));
	json_object_object_add(o, "downtime_limit_ms",
			       json_object_new_int64((int64_t)m.downtime_ms));
	json_object_object_add(o, "bandwidth_mib_s",
			       json_object_new_int64((int64_t)m.bandwidth_mib_s));
	json_object_object_add(o, "auto_converge", json_object_new_boolean(m.auto_converge));
	json_object_object_add(o, "copy_storage", json_object_new_boolean(m.copy_storage));
	json_object_object_add(o, "post_copy", json_object_new_boolean(m.post_copy));
	snprintf(req, sizeof(req), "%s",
		 json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
							   JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(o);
	pthread_mutex_lock(&t->lock);
	e->mig_copied = m.copy_storage;
	pthread_mutex_unlock(&t->lock);
	if ((r = ops_vmm_call(t, e, "PUT", "/migrate", req, API_TIMEOUT_MS, err, n)))
		goto out;
	if ((vfd = accept_within(lfd, ACCEPT_MS)) < 0) {
		r = fail_msg(err, n, vfd, "%s's tern-vmm did not connect to %s within %d s: %s",
			     m.name, sock, ACCEPT_MS / 1000, strerror(-vfd));
		goto out;
	}
	close(lfd);
	lfd = -1;
	unlink(sock);
	if (!(tn = calloc(1, sizeof(*tn))) || (tn->stop = eventfd(0, EFD_CLOEXEC)) < 0) {
		free(tn);
		tn = NULL;
		r = fail_msg(err, n, -ENOMEM, "cannot set up the stream's relay");
		goto out;
	}
	snprintf(tn->vmm_name, sizeof(tn->vmm_name), "%s", m.name);
	tn->vmm = (struct relay_end){ .fd = vfd, .name = "tern-vmm" };
	tn->peer = (struct relay_end){ .fd = -1, .tls = stream, .name = m.peer };
	if ((r = -pthread_create(&tn->th, NULL, tunnel_thread, tn))) {
		close(tn->stop);
		free(tn);
		tn = NULL;
		fail_msg(err, n, r, "cannot start the stream's thread");
		goto out;
	}
	vfd = -1;
	stream = NULL; /* the tunnel's now */
	r = follow(t, e, &m, &last, err, n);
out:
	if (tn) {
		/* tern-vmm closes its end of the stream when the migration ends, either way; one
		 * that hangs does not hold the tunnel open. */
		uint64_t one = 1;
		if (r && write(tn->stop, &one, sizeof(one)) < 0)
			log_warn("%s: cannot stop the stream's relay: %s", m.name, strerror(errno));
		pthread_join(tn->th, NULL);
		close(tn->stop);
		free(tn);
	}
	if (vfd >= 0)
		close(vfd);
	if (lfd >= 0) {
		close(lfd);
		unlink(sock);
	}
	/* Closed before the stream carried anything: the destination's tern-vmm gives up. */
	if (stream)
		tls_close_linger(stream);
	if (!r) {
		*report = completed(t, e, &m, &last, paused_here);
		log_info("%s: migrated to %s", m.name, m.url);
	} else {
		log_error("%s: migration to %s failed: %s", m.name, m.url, err);
		if (!run_wait_off(t, e, 0))
			recover(t, e, &m, user_paused);
	}
	job_end(t, e);
	tls_creds_free(m.creds);
	return r;
}
