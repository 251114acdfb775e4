/*
 * The destination's side of a migration between hosts (docs/ternd.md, "Migration"). The
 * source's ternd asks over TLS for the VM to be made ready (POST /vms/NAME/incoming: its
 * definition; a tern-vmm listening for the stream on incoming.sock in the VM's directory),
 * then opens the stream (POST /vms/NAME/incoming/stream), which becomes a tunnel to that
 * socket. A thread follows the VM until it runs here; one that does not arrive leaves
 * nothing: its tern-vmm exits, and a definition made for it is removed.
 */
#include "daemon/ternd.h"
#include "daemon/vm_jail.h"

#include "api/json_in.h"
#include "core/log.h"
#include "core/util.h"
#include "daemon/server.h"
#include "daemon/vmm_client.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/* The source opens the stream right after the prepare: a tern-vmm still waiting for it this
 * long after is stopped (the source's ternd died, or gave up before the stream). */
#define STREAM_WAIT_MS 60000
/* tern-vmm listens once the loop that answered PUT /migrate/incoming returns. */
#define LISTEN_WAIT_MS 10000
#define FOLLOW_POLL_MS 250

static long long ms_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

static bool is_socket(const char *path)
{
	struct stat st;

	return !lstat(path, &st) && S_ISSOCK(st.st_mode);
}

static struct json_object *summary(struct ternd *t, struct vm_entry *e)
{
	struct json_object *o = json_object_new_object();

	pthread_mutex_lock(&t->lock);
	json_object_object_add(o, "name", json_object_new_string(e->def.name));
	json_object_object_add(o, "uuid", json_object_new_string(e->def.uuid));
	json_object_object_add(o, "state", json_object_new_string(e->state));
	json_object_object_add(o, "reason", json_object_new_string(e->reason));
	json_object_object_add(o, "autostart", json_object_new_boolean(e->def.autostart));
	pthread_mutex_unlock(&t->lock);
	return o;
}

/*
 * With copy_storage the writable disks come with the stream: tern-vmm makes each image at
 * its path, and never over a file, a raw image whatever the source's was (a qcow2 image
 * comes flattened), which the definition here then says. What else the VM needs must be
 * here already.
 */
static int fit_copy_storage(struct vmdef *d, char *err, size_t n)
{
	if (access(d->kernel, R_OK))
		return fail_msg(err, n, -EINVAL, "'kernel': %.200s: %s", d->kernel,
				strerror(errno));
	if (d->initrd && access(d->initrd, R_OK))
		return fail_msg(err, n, -EINVAL, "'initrd': %.200s: %s", d->initrd,
				strerror(errno));
	for (unsigned int i = 0; i < d->ndisks; i++) {
		struct vmdef_disk *k = &d->disks[i];
		char dir[VMDEF_PATH_MAX + 1], *slash;
		if (k->readonly) {
			if (access(k->path, R_OK))
				return fail_msg(err, n, -EINVAL,
						"'disks[%u].path': %.200s: %s (read-only disks are "
						"not copied: they must be here)",
						i, k->path, strerror(errno));
			continue;
		}
		if (k->format == DISK_FORMAT_OVERLAY)
			return fail_msg(err, n, -EINVAL,
					"'disks[%u]': a tern overlay; copy_storage copies raw and "
					"qcow2 images",
					i);
		if (!access(k->path, F_OK))
			return fail_msg(
				err, n, -EEXIST,
				"'disks[%u].path': %.200s exists on this host: copy_storage "
				"makes a new image and never writes over a file",
				i, k->path);
		snprintf(dir, sizeof(dir), "%s", k->path);
		if ((slash = strrchr(dir, '/')))
			*(slash == dir ? slash + 1 : slash) = 0;
		if (access(dir, W_OK | X_OK))
			return fail_msg(err, n, -EINVAL,
					"'disks[%u].path': cannot make %.200s here: %.200s: %s", i,
					k->path, dir, strerror(errno));
		k->format = DISK_FORMAT_RAW;
	}
	return 0;
}

/*
 * The definition in body, checked as a define checks one (its files must be here too, or
 * with copy_storage its writable disks must not be).
 */
/* What a jailed source says of its disks: its uid, and who owned them before (vm_jail.c). */
struct mig_jail {
	uid_t uid;
	char *files; /* JSON array, or NULL */
};

/* "jail": {"uid": N, "files": [...]} from a jailed source (vm_jail.c's records). */
static int parse_jail(struct json_object *o, struct mig_jail *j, char *err, size_t n)
{
	static const char *const keys[] = { "uid", "files", NULL };
	struct json_object *v, *files;
	uint64_t uid = 0;
	int r;

	if (!json_object_object_get_ex(o, "jail", &v))
		return 0;
	if (!json_object_is_type(v, json_type_object))
		return fail_msg(err, n, -EINVAL, "'jail' must be an object {\"uid\", \"files\"}");
	if ((r = jin_only(v, keys, "jail", err, n)) ||
	    (r = jin_u64(v, "uid", 1, 4294967294ULL, &uid, err, n)) < 0)
		return r < 0 ? r : -EINVAL;
	if (!json_object_object_get_ex(v, "files", &files) ||
	    !json_object_is_type(files, json_type_array))
		return fail_msg(err, n, -EINVAL, "'jail.files' must be an array");
	j->uid = (uid_t)uid;
	j->files = strdup(json_object_to_json_string_ext(
		files, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
	return j->files ? 0 : -ENOMEM;
}

static int parse_prepare(const char *name, const char *body, struct vmdef *d, bool *copy,
			 struct mig_jail *jail, char *err, size_t n)
{
	static const char *const keys[] = { "definition", "copy_storage", "jail", NULL };
	struct json_object *o = jin_parse_object(body, strlen(body), err, n), *def, *uuid;
	char why[1024];
	int r;

	*copy = false;
	if (!o)
		return -EINVAL;
	if ((r = jin_only(o, keys, "an incoming migration", err, n)) ||
	    (r = jin_bool(o, "copy_storage", copy, err, n)) < 0 ||
	    (r = parse_jail(o, jail, err, n)) < 0)
		goto out;
	r = 0;
	if (!json_object_object_get_ex(o, "definition", &def) ||
	    !json_object_is_type(def, json_type_object)) {
		r = fail_msg(err, n, -EINVAL,
			     "'definition' is required: the VM's definition, an object as GET "
			     "/vms/NAME gives it");
		goto out;
	}
	if (!json_object_object_get_ex(def, "uuid", &uuid)) {
		r = fail_msg(err, n, -EINVAL,
			     "'definition.uuid' is required: a migrated VM keeps its uuid");
		goto out;
	}
	const char *text = json_object_to_json_string_ext(def, JSON_C_TO_STRING_PLAIN);
	if (vmdef_parse(text, strlen(text), d, !*copy, why, sizeof(why))) {
		r = fail_msg(err, n, -EINVAL, "the definition does not fit this host: %s", why);
		goto out;
	}
	if (*copy && (r = fit_copy_storage(d, why, sizeof(why)))) {
		vmdef_free(d);
		r = fail_msg(err, n, r == -EEXIST ? -EBUSY : -EINVAL,
			     "the definition does not fit this host: %s", why);
		goto out;
	}
	if (strcmp(d->name, name)) {
		r = fail_msg(err, n, -EINVAL, "'definition.name' is %s, but the path names %.64s",
			     d->name, name);
		vmdef_free(d);
	}
out:
	json_object_put(o);
	return r;
}

/* Tells the waiting tern-vmm where the stream comes from; 0 once it listens there. */
static int listen_for_stream(struct ternd *t, struct vm_entry *e, char *err, size_t n)
{
	char sock[4200], vsock[4200];
	struct json_object *o = json_object_new_object();
	long long deadline;
	int r;

	ternd_vmm_path(t, e, "incoming.sock", sock, sizeof(sock));
	ternd_vmm_path(t, e, "vsock.sock", vsock, sizeof(vsock));
	char uri[4300];
	snprintf(uri, sizeof(uri), "unix:%s", sock);
	json_object_object_add(o, "source", json_object_new_string(uri));
	/* The vsock socket is in the VM's directory here; TAP names come from the uuid and are
	 * the same on every host, so the NICs need no override. */
	if (e->def.has_vsock) {
		struct json_object *v = json_object_new_object();
		json_object_object_add(v, "uds_path", json_object_new_string(vsock));
		json_object_object_add(o, "vsock_override", v);
	}
	r = ops_vmm_call(t, e, "PUT", "/migrate/incoming",
			 json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
								   JSON_C_TO_STRING_NOSLASHESCAPE),
			 API_TIMEOUT_MS, err, n);
	json_object_put(o);
	if (r)
		return r;
	for (deadline = ms_now() + LISTEN_WAIT_MS; !is_socket(sock); usleep(20000)) {
		bool alive;
		pthread_mutex_lock(&t->lock);
		alive = !strcmp(e->state, "migrating in");
		pthread_mutex_unlock(&t->lock);
		if (!alive)
			return fail_msg(err, n, -EIO,
					"%s: tern-vmm ended before it listened for the "
					"stream",
					e->def.name);
		if (ms_now() > deadline)
			return fail_msg(err, n, -ETIMEDOUT,
					"%s: tern-vmm did not listen on %s within %d ms",
					e->def.name, sock, LISTEN_WAIT_MS);
	}
	return 0;
}

/* A socket path must fit sun_path: the state directory decides. */
static int check_paths(struct ternd *t, struct vm_entry *e, char *err, size_t n)
{
	struct sockaddr_un a;
	char sock[4200];

	if (strlen(ternd_vmm_path(t, e, "incoming.sock", sock, sizeof(sock))) >= sizeof(a.sun_path))
		return fail_msg(err, n, -ENAMETOOLONG,
				"%s is longer than a socket path may be (%zu bytes): ternd's state "
				"directory is too deep for migrations",
				sock, sizeof(a.sun_path) - 1);
	return 0;
}

/* Under e's op lock: the VM, defined here (created) or found shut off, starts waiting. */
static int make_ready(struct ternd *t, struct vm_entry *e, bool created, struct vmdef *d,
		      struct mig_jail *jail, char *err, size_t n)
{
	char save[4200];
	struct stat st;
	int r;

	if (e->removed)
		return fail_msg(err, n, -EBUSY, "%s was undefined here meanwhile", e->def.name);
	if (ternd_is_active(e))
		return fail_msg(err, n, -EBUSY, "%s is %s here already", e->def.name, e->state);
	if (!created) {
		/* Started later, a stale save here would bring back an older VM. */
		if (!stat(ternd_vm_dir(t, e, "save/vm.state", save, sizeof(save)), &st))
			return fail_msg(err, n, -EBUSY,
					"%s has a managed save here: start and destroy it, or "
					"undefine it here, first",
					e->def.name);
		if ((r = ternd_store_definition(t, e, d, err, n)))
			return r;
	}
	if ((r = check_paths(t, e, err, n)))
		return r;
	pthread_mutex_lock(&t->lock);
	e->mig_created = created;
	e->mig_streamed = false;
	e->mig_uid = jail->uid;
	free(e->mig_owners);
	e->mig_owners = jail->files;
	jail->files = NULL;
	pthread_mutex_unlock(&t->lock);
	if ((r = run_start_incoming(t, e, err, n)))
		return r;
	if ((r = listen_for_stream(t, e, err, n))) {
		char why[512];
		/* Its end is recorded as failed, and the definition goes (migrate_in_ended). */
		if (run_kill(t, e, "failed", why, sizeof(why)))
			log_error("%s: %s", e->def.name, why);
		return r;
	}
	migrate_in_follow(t, e);
	return 0;
}

int migrate_in_prepare(struct ternd *t, const char *name, const char *body,
		       struct json_object **out, char *err, size_t n)
{
	struct vmdef d;
	struct vm_entry *e;
	struct mig_jail jail = { 0 };
	bool created = false, copy;
	int r;

	*out = NULL;
	if ((r = parse_prepare(name, body, &d, &copy, &jail, err, n))) {
		free(jail.files);
		return r;
	}
	if (!(e = ternd_get(t, name))) {
		char uuid[VMDEF_UUID_LEN + 1];
		strcpy(uuid, d.uuid);
		if ((r = ternd_define(t, &d, err, n))) {
			vmdef_free(&d);
			free(jail.files);
			return r;
		}
		if (!(e = ternd_get(t, name)) || strcmp(e->def.uuid, uuid)) {
			if (e)
				ternd_put(t, e);
			free(jail.files);
			return fail_msg(err, n, -EBUSY, "%s was redefined here meanwhile", name);
		}
		created = true;
	} else if (strcmp(e->def.uuid, d.uuid)) {
		r = fail_msg(err, n, -EBUSY, "a different VM named %s (uuid %s) is defined here",
			     name, e->def.uuid);
		vmdef_free(&d);
		free(jail.files);
		ternd_put(t, e);
		return r;
	}
	pthread_mutex_lock(&e->op);
	r = make_ready(t, e, created, &d, &jail, err, n);
	free(jail.files); /* what make_ready did not take */
	if (r && created && !e->removed && !ternd_is_active(e)) {
		char why[512];
		pthread_mutex_lock(&t->lock);
		e->mig_created = false;
		pthread_mutex_unlock(&t->lock);
		if (ternd_undefine(t, e, false, why, sizeof(why)))
			log_error("%s: cannot undefine it after the failed prepare: %s", name, why);
	}
	pthread_mutex_unlock(&e->op);
	vmdef_free(&d); /* what make_ready did not take */
	if (!r)
		*out = summary(t, e);
	else
		log_error("%s: incoming migration refused: %s", name, err);
	ternd_put(t, e);
	return r;
}

int migrate_in_stream(struct ternd *t, const char *name, const char *body, struct json_object **out,
		      char *err, size_t n)
{
	static const char *const keys[] = { "uuid", NULL };
	struct json_object *o = jin_parse_object(body, strlen(body), err, n);
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	struct vm_entry *e = NULL;
	const char *uuid = NULL;
	char label[128];
	int r, fd = -1;

	*out = NULL;
	if (!o)
		return -EINVAL;
	if ((r = jin_only(o, keys, "a migration stream", err, n)) ||
	    (r = jin_string(o, "uuid", VMDEF_UUID_LEN, &uuid, err, n)) < 0)
		goto out;
	if (!r) {
		r = fail_msg(err, n, -EINVAL, "'uuid' is required: the VM's uuid");
		goto out;
	}
	r = 0;
	if (!(e = ternd_get(t, name))) {
		r = fail_msg(err, n, -ENOENT, "no VM named %.64s", name);
		goto out;
	}
	pthread_mutex_lock(&t->lock);
	if (strcmp(e->state, "migrating in"))
		r = fail_msg(err, n, -EBUSY, "%s is not waiting for a migration here (it is %s)",
			     e->def.name, e->state);
	else if (strcmp(e->def.uuid, uuid))
		r = fail_msg(err, n, -EBUSY, "%s here has uuid %s, not %s", e->def.name,
			     e->def.uuid, uuid);
	else if (e->mig_streamed)
		r = fail_msg(err, n, -EBUSY, "the stream of %s's migration is open already",
			     e->def.name);
	else
		e->mig_streamed = true; /* one stream: taken before the lock is let go */
	pthread_mutex_unlock(&t->lock);
	if (r)
		goto out;
	ternd_vmm_path(t, e, "incoming.sock", a.sun_path, sizeof(a.sun_path));
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
	    connect(fd, (struct sockaddr *)&a, sizeof(a))) {
		r = fail_msg(err, n, -EIO, "%s: its tern-vmm does not take the stream: %s",
			     e->def.name, strerror(errno));
		if (fd >= 0)
			close(fd);
		goto out;
	}
	snprintf(label, sizeof(label), "%s: incoming tern-vmm", e->def.name);
	server_tunnel_after_reply(fd, label);
	*out = summary(t, e);
out:
	if (e)
		ternd_put(t, e);
	json_object_put(o);
	return r;
}

struct follow {
	struct ternd *t;
	struct vm_entry *e;
};

/* tern-vmm's report of the migration that arrived (GET /migrate), or NULL. */
static char *arrival_report(const char *api)
{
	char *resp = NULL, why[256];

	if (vmm_request(api, "GET", "/migrate", NULL, 2000, &resp, why, sizeof(why)) == 200)
		return resp;
	free(resp);
	return NULL;
}

static void *follow_thread(void *arg)
{
	struct follow *f = arg;
	struct ternd *t = f->t;
	struct vm_entry *e = f->e;
	long long deadline = ms_now() + STREAM_WAIT_MS;
	char api[4200], sock[4200];

	ternd_vmm_path(t, e, "api.sock", api, sizeof(api));
	ternd_vmm_path(t, e, "incoming.sock", sock, sizeof(sock));
	for (;;) {
		char *resp = NULL, why[512];
		bool waiting;
		pthread_mutex_lock(&t->lock);
		waiting = !strcmp(e->state, "migrating in") && !e->removed;
		pthread_mutex_unlock(&t->lock);
		if (!waiting)
			break;
		/* tern-vmm removes the socket once the stream connected. */
		if (is_socket(sock) && ms_now() > deadline) {
			log_error("%s: no migration stream came within %d s: stopping its tern-vmm",
				  e->def.name, STREAM_WAIT_MS / 1000);
			pthread_mutex_lock(&e->op);
			if (run_kill(t, e, "failed", why, sizeof(why)))
				log_error("%s: %s", e->def.name, why);
			pthread_mutex_unlock(&e->op);
			break;
		}
		/* GET / says Running or Paused once the VM runs here ("Not started" while it arrives). */
		int r = vmm_request(api, "GET", "/", NULL, 1000, &resp, why, sizeof(why));
		bool paused = r == 200 && resp && strstr(resp, "\"Paused\"");
		bool running = r == 200 && resp && strstr(resp, "\"Running\"");
		free(resp);
		if (paused || running) {
			char *rep = arrival_report(api);
			vmjail_arrived(t, e);
			if (ternd_set_state_from(t, e, "migrating in",
						 paused ? "paused" : "running", "migrated", rep)) {
				pthread_mutex_lock(&t->lock);
				e->mig_created = false; /* it lives here now */
				pthread_mutex_unlock(&t->lock);
			}
			free(rep);
			break;
		}
		if (r != -ETIMEDOUT)
			usleep(FOLLOW_POLL_MS * 1000);
	}
	ternd_put(t, e);
	free(f);
	return NULL;
}

void migrate_in_follow(struct ternd *t, struct vm_entry *e)
{
	struct follow *f = malloc(sizeof(*f));
	pthread_t th;

	pthread_mutex_lock(&t->lock);
	e->refs++;
	pthread_mutex_unlock(&t->lock);
	if (f) {
		*f = (struct follow){ t, e };
		if (!pthread_create(&th, NULL, follow_thread, f)) {
			pthread_detach(th);
			return;
		}
		free(f);
	}
	log_error("%s: cannot start a thread to follow its migration", e->def.name);
	ternd_put(t, e);
}

static void *undefine_thread(void *arg)
{
	struct follow *f = arg;
	struct vm_entry *e = f->e;
	char why[512];
	bool go;

	pthread_mutex_lock(&e->op);
	pthread_mutex_lock(&f->t->lock);
	go = e->mig_created && !e->removed && !ternd_is_active(e);
	e->mig_created = false;
	pthread_mutex_unlock(&f->t->lock);
	if (go && ternd_undefine(f->t, e, false, why, sizeof(why)))
		log_error("%s: cannot undefine it after the failed migration: %s", e->def.name,
			  why);
	else if (go)
		log_info("%s: undefined: it was defined here for a migration that did not arrive",
			 e->def.name);
	pthread_mutex_unlock(&e->op);
	ternd_put(f->t, e);
	free(f);
	return NULL;
}

void migrate_in_ended(struct ternd *t, struct vm_entry *e)
{
	struct follow *f;
	pthread_t th;
	bool created;

	pthread_mutex_lock(&t->lock);
	created = e->mig_created;
	if (created)
		e->refs++;
	pthread_mutex_unlock(&t->lock);
	if (!created)
		return;
	/* The op lock may be held (a prepare that is failing): not on the watch thread. */
	if ((f = malloc(sizeof(*f)))) {
		*f = (struct follow){ t, e };
		if (!pthread_create(&th, NULL, undefine_thread, f)) {
			pthread_detach(th);
			return;
		}
		free(f);
	}
	log_error("%s: cannot start a thread to undefine it", e->def.name);
	ternd_put(t, e);
}
