/* The --vsock option: "cid=N,uds=PATH" (one virtio-vsock device). */
#ifndef TERN_VMM_VSOCK_OPTS_H
#define TERN_VMM_VSOCK_OPTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backend/vsock_uds.h"

struct vsock_config {
	bool enabled;
	uint64_t cid;
	char path[VSOCK_UDS_PATH_MAX + 1];
};

/*
 * Parses "cid=N,uds=PATH" into c (both keys required; cid in 3..4294967294) and checks
 * PATH (vsock_uds_check_path: an existing non-socket there is refused). On error returns
 * -EINVAL with a message naming the key and what it accepts in err.
 */
int vsock_opts_parse(const char *spec, struct vsock_config *c, char *err, size_t errlen);

#endif
