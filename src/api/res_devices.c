/* /vsock and /entropy: the single-instance devices. */
#include "api/api.h"
#include "api/json_in.h"
#include "virtio/vsock.h"

#include <string.h>

int res_vsock(struct api *a, struct json_object *o, char *err, size_t n)
{
	static const char *const keys[] = { "guest_cid", "uds_path", "vsock_id", NULL };
	struct vsock_config c = { .enabled = true };
	const char *path, *ignored;
	int r;

	if ((r = api_preboot(a, err, n)) || (r = jin_only(o, keys, "/vsock", err, n)))
		return r;
	if ((r = jin_u64(o, "guest_cid", VSOCK_CID_MIN, VSOCK_CID_MAX, &c.cid, err, n)) < 0)
		return r;
	if (!r)
		return api_fail(err, n, "'guest_cid' is required (%llu to %llu)", VSOCK_CID_MIN,
				VSOCK_CID_MAX);
	/* Deprecated in Firecracker and unused there too; only its type is checked. */
	if ((r = jin_string(o, "vsock_id", 256, &ignored, err, n)) < 0)
		return r;
	if ((r = jin_string(o, "uds_path", VSOCK_UDS_PATH_MAX, &path, err, n)) < 0)
		return r;
	if (!r)
		return api_fail(err, n,
				"'uds_path' is required (a Unix socket path, at most %d "
				"bytes)",
				VSOCK_UDS_PATH_MAX);
	char why[200];
	if (vsock_uds_check_path(path, why, sizeof(why)) < 0)
		return api_fail(err, n, "'uds_path': %s", why);
	strcpy(c.path, path);
	a->cfg.vsock = c;
	return 0;
}

int res_entropy(struct api *a, struct json_object *o, char *err, size_t n)
{
	static const char *const keys[] = { "rate_limiter", NULL };
	int r;

	if ((r = api_preboot(a, err, n)) || (r = jin_only(o, keys, "/entropy", err, n)) ||
	    (r = api_not_implemented(o, "rate_limiter", "/entropy", err, n)))
		return r;
	a->cfg.rng = true;
	return 0;
}
