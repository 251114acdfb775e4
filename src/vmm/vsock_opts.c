/* Parsing and checking --vsock cid=N,uds=PATH. */
#include "vmm/vsock_opts.h"
#include "core/util.h"
#include "virtio/vsock.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int vsock_opts_parse(const char *spec, struct vsock_config *c, char *err, size_t errlen)
{
	char *copy = strdup(spec), *save = NULL;
	bool have_cid = false, have_path = false;
	int r = -EINVAL;

	memset(c, 0, sizeof(*c));
	if (!copy) {
		snprintf(err, errlen, "out of memory");
		return -EINVAL;
	}
	for (char *kv = strtok_r(copy, ",", &save); kv; kv = strtok_r(NULL, ",", &save)) {
		char *v = strchr(kv, '=');
		if (!v) {
			snprintf(err, errlen, "'%s' is not key=value (keys: cid, uds)", kv);
			goto out;
		}
		*v++ = 0;
		if (!strcmp(kv, "cid")) {
			if (!parse_u64(v, VSOCK_CID_MIN, VSOCK_CID_MAX, &c->cid)) {
				snprintf(err, errlen,
					 "cid='%s' is not a whole number from %llu to %llu (0, 1 "
					 "and "
					 "2 are reserved, 2 is the host)",
					 v, VSOCK_CID_MIN, VSOCK_CID_MAX);
				goto out;
			}
			have_cid = true;
		} else if (!strcmp(kv, "uds")) {
			if (vsock_uds_check_path(v, err, errlen) < 0)
				goto out;
			memcpy(c->path, v, strlen(v) + 1); /* length checked just above */
			have_path = true;
		} else {
			snprintf(err, errlen, "unknown key '%s' (keys: cid, uds)", kv);
			goto out;
		}
	}
	if (!have_cid || !have_path) {
		snprintf(err, errlen, "%s= is required (cid=N,uds=PATH)", have_cid ? "uds" : "cid");
		goto out;
	}
	c->enabled = true;
	r = 0;
out:
	free(copy);
	if (r)
		memset(c, 0, sizeof(*c));
	return r;
}
