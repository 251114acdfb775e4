/* `tern events [--follow] [--since ID]`: the event log, and new events as they come. */
#include "cli/cli.h"
#include "cli/fmt.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#define PAGE_MAX 1000 /* ternd answers at most this many events at a time */
#define WAIT_S 60     /* one long poll (ternd takes up to 300) */

/* One page of events after *after; *after moves to the last one. */
static int page(struct cli *c, long long *after, int wait_s, struct json_object **events)
{
	struct json_object *o, *last;
	char path[96];
	int e;

	snprintf(path, sizeof(path), "/events?after=%lld&wait=%d", *after, wait_s);
	*events = NULL;
	if ((e = cli_call(c, "GET", path, NULL, (wait_s + CLI_SLACK_S) * 1000, &o)))
		return e;
	if (!json_object_object_get_ex(o, "events", events) ||
	    !json_object_is_type(*events, json_type_array)) {
		json_object_put(o);
		cli_error("ternd's answer to GET /events has no \"events\" array");
		return CLI_FAILED;
	}
	json_object_get(*events);
	if (json_object_object_get_ex(o, "last", &last))
		*after = json_object_get_int64(last);
	json_object_put(o);
	return CLI_OK;
}

static void print_event(struct cli *c, struct json_object *ev, bool stream)
{
	struct json_object *v;
	char when[64];

	if (stream && c->json) {
		/* --follow --json: one compact object per line, for line-reading scripts. */
		printf("%s\n",
		       json_object_to_json_string_ext(ev, JSON_C_TO_STRING_PLAIN |
								  JSON_C_TO_STRING_NOSLASHESCAPE));
	} else if (!c->json) {
		printf("%s  %s  %s  %s  #%" PRId64 "\n",
		       fmt_time(json_object_object_get_ex(ev, "at", &v) ?
					json_object_get_double(v) :
					0,
				when, sizeof(when)),
		       cli_str(ev, "name", "?"), cli_str(ev, "state", "?"),
		       cli_str(ev, "reason", "?"),
		       json_object_object_get_ex(ev, "id", &v) ? json_object_get_int64(v) : 0);
	}
}

/* Every event after *after, page by page; printed, and collected into all when wanted. */
static int drain(struct cli *c, long long *after, bool print, struct json_object *all)
{
	for (;;) {
		struct json_object *evs;
		int e = page(c, after, 0, &evs);
		if (e)
			return e;
		size_t n = json_object_array_length(evs);
		for (size_t i = 0; i < n; i++) {
			struct json_object *ev = json_object_array_get_idx(evs, i);
			if (print)
				print_event(c, ev, false);
			if (all)
				json_object_array_add(all, json_object_get(ev));
		}
		json_object_put(evs);
		if (n < PAGE_MAX)
			return CLI_OK;
	}
}

int cmd_events(struct cli *c, int argc, char **argv)
{
	bool follow = false;
	/* A sentinel tells "--since 0" (everything) from no --since (only what comes). */
	uint64_t since = UINT64_MAX;
	const struct cli_opt opts[] = {
		{ .name = "follow", .kind = CLI_OPT_FLAG, .out = &follow },
		{ .name = "since",
		  .kind = CLI_OPT_U64,
		  .out = &since,
		  .min = 0,
		  .max = INT64_MAX,
		  .unit = "(an event id)" },
	};
	bool since_given;
	long long after;
	int e;

	if (cli_args(c, argc, argv, opts, 2, NULL, 0))
		return CLI_OK;
	since_given = since != UINT64_MAX;
	after = since_given ? (long long)since : 0;
	if (!follow) {
		struct json_object *all = c->json ? json_object_new_array() : NULL;
		if ((e = drain(c, &after, !c->json, all))) {
			json_object_put(all);
			return e;
		}
		if (c->json) {
			struct json_object *o = json_object_new_object();
			json_object_object_add(o, "events", all);
			json_object_object_add(o, "last", json_object_new_int64(after));
			cli_print_json(o);
			json_object_put(o);
		}
		return CLI_OK;
	}
	/* The API has no "newest id": reading to the end finds it. */
	if (!since_given && (e = drain(c, &after, false, NULL)))
		return e;
	for (;;) {
		struct json_object *evs;
		if ((e = page(c, &after, WAIT_S, &evs)))
			return e;
		for (size_t i = 0; i < json_object_array_length(evs); i++)
			print_event(c, json_object_array_get_idx(evs, i), true);
		json_object_put(evs);
		fflush(stdout);
	}
}
