/* Parsing --jail's spec. Every refusal names the key and what it accepts. */
#include "jail/jail.h"
#include "core/util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KEYS "uid, gid, netns, nofile, nproc, fsize_mib"

/* A uid or gid for the VM: never root's, never the kernel's "no id" (-1). */
static bool parse_id(const char *v, uint64_t *out)
{
	return parse_u64(v, 1, 4294967294ULL, out);
}

int jail_parse(const char *spec, struct jail_config *c, char *err, size_t n)
{
	char *copy = strdup(spec), *save = NULL;
	bool have_uid = false, have_gid = false;
	uint64_t v64;
	int r = -EINVAL;

	memset(c, 0, sizeof(*c));
	c->nofile = JAIL_DEFAULT_NOFILE;
	c->nproc = JAIL_DEFAULT_NPROC;
	if (!copy)
		return fail_msg(err, n, -ENOMEM, "out of memory");
	for (char *kv = strtok_r(copy, ",", &save); kv; kv = strtok_r(NULL, ",", &save)) {
		char *v = strchr(kv, '=');
		if (!v) {
			fail_msg(err, n, r, "'%s' is not key=value (keys: %s)", kv, KEYS);
			goto out;
		}
		*v++ = 0;
		if (!strcmp(kv, "uid") || !strcmp(kv, "gid")) {
			if (!parse_id(v, &v64)) {
				fail_msg(err, n, r,
					 "%s='%s' is not a whole number from 1 to 4294967294 (the "
					 "VM's own %s; never root's)",
					 kv, v, kv[0] == 'u' ? "user" : "group");
				goto out;
			}
			if (kv[0] == 'u') {
				c->uid = (uid_t)v64;
				have_uid = true;
			} else {
				c->gid = (gid_t)v64;
				have_gid = true;
			}
		} else if (!strcmp(kv, "netns")) {
			if (v[0] != '/' || strlen(v) >= sizeof(c->netns)) {
				fail_msg(err, n, r,
					 "netns='%s' is not an absolute path under %zu characters "
					 "(a network namespace such as /run/netns/NAME)",
					 v, sizeof(c->netns));
				goto out;
			}
			strcpy(c->netns, v);
		} else if (!strcmp(kv, "nofile")) {
			if (!parse_u64(v, 64, 1048576, &c->nofile)) {
				fail_msg(err, n, r,
					 "nofile='%s' is not a whole number from 64 to 1048576", v);
				goto out;
			}
		} else if (!strcmp(kv, "nproc")) {
			if (!parse_u64(v, 16, 65536, &c->nproc)) {
				fail_msg(err, n, r,
					 "nproc='%s' is not a whole number from 16 to 65536", v);
				goto out;
			}
		} else if (!strcmp(kv, "fsize_mib")) {
			if (!parse_u64(v, 1, 1ULL << 40, &c->fsize_mib)) {
				fail_msg(
					err, n, r,
					"fsize_mib='%s' is not a whole number from 1 to %llu (MiB)",
					v, 1ULL << 40);
				goto out;
			}
		} else {
			fail_msg(err, n, r, "unknown key '%s' (keys: %s)", kv, KEYS);
			goto out;
		}
	}
	if (!have_uid || !have_gid) {
		fail_msg(err, n, r, "%s= is required (uid=N,gid=N: the VM's own user and group)",
			 have_uid ? "gid" : "uid");
		goto out;
	}
	c->on = true;
	r = 0;
out:
	free(copy);
	if (r)
		memset(c, 0, sizeof(*c));
	return r;
}
