/* `tern info NAME` and `tern dumpconfig NAME`: what GET /vms/NAME says, for people. */
#include "cli/cli.h"
#include "cli/fmt.h"

#include <stdio.h>
#include <string.h>

static bool get_num(struct json_object *o, const char *key, double *out)
{
	struct json_object *v;

	if (!o || !json_object_object_get_ex(o, key, &v) ||
	    !(json_object_is_type(v, json_type_int) || json_object_is_type(v, json_type_double)))
		return false;
	*out = json_object_get_double(v);
	return true;
}

static void line(const char *label, const char *value)
{
	printf("%-13s %s\n", label, value);
}

/* How the last run ended: the monitor's status file as ternd recorded it. */
static void print_detail(struct json_object *vm, struct json_object *d)
{
	const char *reason = cli_str(vm, "reason", "");
	char buf[128], when[64];
	double v;

	if (get_num(d, "ended_at", &v)) {
		snprintf(buf, sizeof(buf), "%s (%s)", fmt_time(v, when, sizeof(when)),
			 cli_str(d, "reason", "?"));
		line("Last run:", buf);
	} else if (cli_str(d, "reason", NULL)) {
		line("Last run:", cli_str(d, "reason", NULL));
	}
	if (get_num(d, "signal", &v) && v > 0) {
		snprintf(buf, sizeof(buf), "%d (%s)", (int)v, strsignal((int)v));
		line("Signal:", buf);
	} else if (get_num(d, "exit_status", &v) && v >= 0) {
		snprintf(buf, sizeof(buf), "%d", (int)v);
		line("Exit status:", buf);
	}
	if (cli_str(d, "message", NULL))
		line("Message:", cli_str(d, "message", NULL));
	struct json_object *tail;
	/* The console's last lines say why a guest died; a clean power-off needs none. */
	if ((!strcmp(reason, "crashed") || !strcmp(reason, "failed")) &&
	    json_object_object_get_ex(d, "console_tail", &tail) &&
	    json_object_is_type(tail, json_type_array) && json_object_array_length(tail)) {
		printf("Console (last %zu lines):\n", json_object_array_length(tail));
		for (size_t i = 0; i < json_object_array_length(tail); i++)
			printf("  %s\n",
			       json_object_get_string(json_object_array_get_idx(tail, i)));
	}
}

static void print_info(struct json_object *vm)
{
	struct json_object *def = NULL, *a, *d;
	char buf[256];
	double v, mon;

	json_object_object_get_ex(vm, "definition", &def);
	line("Name:", cli_str(vm, "name", "?"));
	line("UUID:", cli_str(vm, "uuid", "?"));
	snprintf(buf, sizeof(buf), "%s (%s)", cli_str(vm, "state", "?"),
		 cli_str(vm, "reason", "?"));
	line("State:", buf);
	line("Autostart:",
	     json_object_object_get_ex(vm, "autostart", &a) && json_object_get_boolean(a) ? "yes" :
											    "no");
	if (get_num(vm, "vcpus", &v)) {
		snprintf(buf, sizeof(buf), "%.0f", v);
		line("vCPUs:", buf);
	}
	if (get_num(vm, "memory_mib", &v)) {
		snprintf(buf, sizeof(buf), "%.0f MiB", v);
		line("Memory:", buf);
	}
	if (get_num(vm, "uptime_s", &v))
		line("Uptime:", fmt_duration(v, buf, sizeof(buf)));
	if (get_num(vm, "cpu_time_s", &v)) {
		snprintf(buf, sizeof(buf), "%.1fs", v);
		line("CPU time:", buf);
	}
	if (get_num(vm, "rss_kib", &v))
		line("RSS:", fmt_kib((long long)v, buf, sizeof(buf)));
	if (get_num(vm, "pid", &v)) {
		if (get_num(vm, "monitor_pid", &mon))
			snprintf(buf, sizeof(buf), "%.0f (monitor %.0f)", v, mon);
		else
			snprintf(buf, sizeof(buf), "%.0f", v);
		line("PID:", buf);
	}
	if (json_object_object_get_ex(vm, "seccomp", &d) && get_num(d, "threads", &v) &&
	    get_num(d, "filtered_threads", &mon)) {
		snprintf(buf, sizeof(buf), "%s (%.0f of %.0f threads filtered)",
			 mon == v && v > 0 ? "on" :
			 mon > 0	   ? "partly on" :
					     "off",
			 mon, v);
		line("Seccomp:", buf);
	}
	if (json_object_object_get_ex(vm, "jail", &d) && json_object_is_type(d, json_type_object) &&
	    get_num(d, "uid", &v) && get_num(d, "gid", &mon)) {
		double sup = 0;
		get_num(d, "supervisor_pid", &sup);
		snprintf(buf, sizeof(buf), "uid %.0f, gid %.0f (supervisor pid %.0f)", v, mon, sup);
		line("Jail:", buf);
	} else if (json_object_object_get_ex(vm, "jail", &d) && get_num(vm, "pid", &v)) {
		line("Jail:", "none (ternd runs without --vm-uids)");
	}
	if (json_object_object_get_ex(vm, "cgroup", &d) &&
	    json_object_is_type(d, json_type_object)) {
		double w, mx, cur, pm, pc;
		char cpu[48] = "no CPU cap", mem[96] = "", pids[64] = "";
		if (cli_str(d, "not_applied", NULL)) {
			snprintf(buf, sizeof(buf), "not applied (%.200s)",
				 cli_str(d, "not_applied", ""));
			line("Limits:", buf);
		} else {
			if (get_num(d, "cpu_max_percent", &v))
				snprintf(cpu, sizeof(cpu), "CPU %.0f%% of one", v);
			if (get_num(d, "memory_max_bytes", &mx) && get_num(d, "memory_bytes", &cur))
				snprintf(mem, sizeof(mem), ", memory %.0f MiB (%.0f MiB used)",
					 mx / 1048576, cur / 1048576);
			else if (get_num(d, "memory_bytes", &cur))
				snprintf(mem, sizeof(mem), ", no memory cap (%.0f MiB used)",
					 cur / 1048576);
			if (get_num(d, "pids_max", &pm) && get_num(d, "pids", &pc))
				snprintf(pids, sizeof(pids), ", %.0f pids (%.0f used)", pm, pc);
			if (!get_num(d, "cpu_weight", &w))
				w = 0;
			snprintf(buf, sizeof(buf), "%s, weight %.0f%s%s", cpu, w, mem, pids);
			line("Limits:", buf);
			/* io.max, one line per capped block device: "7:0 rbps=max ... riops=50" */
			struct json_object *io;
			if (json_object_object_get_ex(d, "io_max", &io) &&
			    json_object_is_type(io, json_type_object)) {
				json_object_object_foreach(io, dev, val)
				{
					snprintf(buf, sizeof(buf), "device %s: %s", dev,
						 json_object_get_string(val));
					line("Disk I/O:", buf);
				}
			}
		}
	}
	if (def && cli_str(def, "kernel", NULL))
		line("Kernel:", cli_str(def, "kernel", NULL));
	if (cli_str(vm, "console_log", NULL))
		line("Console log:", cli_str(vm, "console_log", NULL));
	if (json_object_object_get_ex(vm, "detail", &d) &&
	    json_object_is_type(d, json_type_object) && !get_num(vm, "pid", &v))
		print_detail(vm, d);
}

static int get_vm(struct cli *c, int argc, char **argv, struct json_object **vm)
{
	const char *name;
	char path[128];

	*vm = NULL;
	if (cli_args(c, argc, argv, NULL, 0, &name, 1))
		return -1;
	return cli_call(c, "GET", cli_vm_path(name, NULL, path, sizeof(path)), NULL,
			CLI_GET_TIMEOUT_MS, vm);
}

int cmd_info(struct cli *c, int argc, char **argv)
{
	struct json_object *vm;
	int e = get_vm(c, argc, argv, &vm);

	if (e)
		return e < 0 ? CLI_OK : e;
	if (c->json)
		cli_print_json(vm);
	else
		print_info(vm);
	json_object_put(vm);
	return CLI_OK;
}

int cmd_dumpconfig(struct cli *c, int argc, char **argv)
{
	struct json_object *vm, *def;
	const char *name;
	int e;

	if (cli_args(c, argc, argv, NULL, 0, &name, 1))
		return CLI_OK;
	if ((e = cli_get_definition(c, name, &vm, &def)))
		return e;
	cli_print_json(def);
	json_object_put(vm);
	return CLI_OK;
}
