/*
 * `tern create`'s command line to a VM definition (docs/ternd.md's fields), checked
 * here so that a mistake is named by its option (--disk, --memory ...) rather than by
 * the definition field ternd would name. Only what the options give is written:
 * ternd fills in its defaults.
 */
#ifndef TERN_CLI_CREATE_OPTS_H
#define TERN_CLI_CREATE_OPTS_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>

struct create_opts {
	struct json_object *def; /* the definition to POST (json_object_put it) */
	bool start;		 /* false with --no-start */
	bool json;
	bool help; /* --help: nothing else was parsed */
};

/*
 * Parses argv (argv[0] is "create"; getopt may reorder argv). 0, or -EINVAL with err
 * naming the option and what it accepts (o->def is then NULL).
 */
int create_opts_parse(int argc, char **argv, struct create_opts *o, char *err, size_t n);
/* One --disk PATH[,readonly][,cache=none|writeback][,id=ID] to a "disks" entry. */
int create_opts_disk(const char *spec, struct json_object **out, char *err, size_t n);
/* One --nic user[,mac=M][,hostfwd=tcp::H-:G]... or bridge=BR[,mac=M] to a "nics" entry. */
int create_opts_nic(const char *spec, struct json_object **out, char *err, size_t n);
/* path made absolute against the working directory (malloc'd), as ternd needs it. */
char *create_opts_abspath(const char *path);

#endif
