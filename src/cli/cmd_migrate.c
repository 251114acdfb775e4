/*
 * `tern migrate NAME HOST`: a running or paused VM to another host's ternd, over TLS
 * (docs/ternd.md, "Migration"); ternd does the work, tern shows how far it is.
 */
#include "cli/cli.h"
#include "cli/progress.h"

#include "core/log.h"
#include "core/tls_http.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#define DOWNTIME_DEFAULT_MS 300 /* ternd's default */
#define DOWNTIME_MAX_MS 3600000
#define BANDWIDTH_MAX_MIB_S 1048576
/* ternd ends a migration that stops moving by itself: this only bounds a lost answer. */
#define MIGRATE_TIMEOUT_MS (24 * 3600 * 1000)

static double num(struct json_object *o, const char *key)
{
	struct json_object *x;

	return o && json_object_object_get_ex(o, key, &x) ? json_object_get_double(x) : 0;
}

/*
 * Ctrl-C while the migration runs: the migration is cancelled (DELETE /vms/NAME/job, as
 * tern abort) rather than tern leaving it running unseen, and tern waits for its end. A
 * thread waits for SIGINT, which the others block.
 */
struct interrupt {
	pthread_t th;
	const struct cli *c;
	char job[160];
	atomic_bool done;
};

static void *interrupt_thread(void *arg)
{
	struct interrupt *in = arg;
	sigset_t set;
	int sig;

	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	while (!sigwait(&set, &sig) && !atomic_load(&in->done)) {
		struct cli_reply r;
		fprintf(stderr, "\ncancelling the migration (it ends as cancelled; the VM runs on "
				"here)\n");
		if (cli_request(in->c, "DELETE", in->job, NULL, 30000, &r))
			fprintf(stderr, "tern: cannot cancel it: %s\n", r.err);
		cli_reply_free(&r);
	}
	return NULL;
}

int cmd_migrate(struct cli *c, int argc, char **argv)
{
	bool live = false, converge = false, copy = false, undefine = false, post = false;
	uint64_t downtime = DOWNTIME_DEFAULT_MS, bandwidth = 0;
	const struct cli_opt opts[] = {
		{ .name = "live", .kind = CLI_OPT_FLAG, .out = &live },
		{ .name = "downtime",
		  .kind = CLI_OPT_U64,
		  .out = &downtime,
		  .min = 1,
		  .max = DOWNTIME_MAX_MS,
		  .unit = "milliseconds" },
		{ .name = "bandwidth",
		  .kind = CLI_OPT_U64,
		  .out = &bandwidth,
		  .min = 0,
		  .max = BANDWIDTH_MAX_MIB_S,
		  .unit = "MiB/s (0: no limit)" },
		{ .name = "auto-converge", .kind = CLI_OPT_FLAG, .out = &converge },
		{ .name = "post-copy", .kind = CLI_OPT_FLAG, .out = &post },
		{ .name = "copy-storage", .kind = CLI_OPT_FLAG, .out = &copy },
		{ .name = "undefine-source", .kind = CLI_OPT_FLAG, .out = &undefine },
	};
	const char *pos[2];
	char path[160], url[300], why[512], body[800], doing[400];
	struct hostport hp;
	struct json_object *o, *m = NULL;
	struct progress *p;
	int e;

	if (cli_args(c, argc, argv, opts, sizeof(opts) / sizeof(opts[0]), pos, 2))
		return CLI_OK;
	cli_vm_path(pos[0], "/migrate", path, sizeof(path));
	if (tls_url_parse(pos[1], &hp, url, sizeof(url), why, sizeof(why)))
		die_usage("migrate: HOST: %s; the port is required (the destination's ternd "
			  "--listen-tls ADDR:PORT)",
			  why);
	snprintf(body, sizeof(body),
		 "{\"host\": \"%s\", \"live\": %s, \"downtime_limit_ms\": %llu, "
		 "\"bandwidth_mib_s\": %llu, \"auto_converge\": %s, \"post_copy\": %s, "
		 "\"copy_storage\": %s, \"undefine_source\": %s}",
		 url, live ? "true" : "false", (unsigned long long)downtime,
		 (unsigned long long)bandwidth, converge ? "true" : "false",
		 post ? "true" : "false", copy ? "true" : "false", undefine ? "true" : "false");
	snprintf(doing, sizeof(doing), "migrating %s", pos[0]);
	struct interrupt in = { .c = c };
	sigset_t intr, old;
	sigemptyset(&intr);
	sigaddset(&intr, SIGINT);
	cli_vm_path(pos[0], "/job", in.job, sizeof(in.job));
	pthread_sigmask(SIG_BLOCK, &intr, &old);
	bool watching = !pthread_create(&in.th, NULL, interrupt_thread, &in);
	p = progress_start_job(c, doing, pos[0]);
	e = cli_call(c, "POST", path, body, MIGRATE_TIMEOUT_MS, &o);
	progress_stop(p);
	if (watching) {
		atomic_store(&in.done, true);
		pthread_kill(in.th, SIGINT);
		pthread_join(in.th, NULL);
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (e)
		return e;
	if (c->json) {
		cli_print_json(o);
		json_object_put(o);
		return CLI_OK;
	}
	json_object_object_get_ex(o, "migration", &m);
	struct json_object *gone = NULL;
	const char *here = "";
	if (m && json_object_object_get_ex(m, "source_undefined", &gone))
		here = json_object_get_boolean(gone) ?
			       ", and undefined here" :
			       "; it could not be undefined here (ternd's log says why)";
	printf("Migrated %s to %s in %.1f s (downtime %.1f ms, %.0f rounds, %.0f MiB sent); it is "
	       "%s there%s\n",
	       cli_str(o, "name", pos[0]), url, num(m, "total_ms") / 1000.0, num(m, "downtime_ms"),
	       num(m, "rounds"), num(m, "bytes_sent") / (1024.0 * 1024.0),
	       cli_str(m, "destination_state", "unknown"), here);
	json_object_put(o);
	return CLI_OK;
}
