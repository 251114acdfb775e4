/* /network-interfaces/{iface_id}: virtio-net NICs over TAP (Firecracker's NetworkInterface). */
#include "api/api.h"
#include "api/json_in.h"

#include <errno.h>
#include <string.h>

static const char *const put_keys[] = {
	"iface_id",	   "host_dev_name",   "guest_mac",    "mtu",
	"rx_rate_limiter", "tx_rate_limiter", "tern_backend", NULL
};
static const char *const patch_keys[] = { "iface_id", "rx_rate_limiter", "tx_rate_limiter", NULL };

static int find(const struct api *a, const char *id)
{
	for (unsigned int i = 0; i < a->cfg.nnets; i++)
		if (!strcmp(a->cfg.nets[i].id, id))
			return (int)i;
	return -1;
}

static int check_id(const char *id, struct json_object *o, char *err, size_t n)
{
	const char *body_id;
	int r = jin_string(o, "iface_id", 4096, &body_id, err, n);

	if (r < 0)
		return r;
	if (!r)
		return api_fail(err, n, "'iface_id' is required");
	if (strcmp(body_id, id))
		return api_fail(err, n, "'iface_id' (\"%.64s\") differs from the path's id",
				body_id);
	if (!*id || strlen(id) > NET_ID_MAX)
		return api_fail(err, n, "'iface_id' must be 1 to %d bytes", NET_ID_MAX);
	return 0;
}

static int put(struct api *a, const char *id, struct json_object *o, char *err, size_t n)
{
	/* tern's extension: "user" is user-mode networking (libslirp), as --net user. */
	static const char *const backends[] = { "tap", "user", NULL };
	struct net_config c = { 0 }, all[VMM_MAX_NETS];
	const char *dev = NULL, *mac = NULL;
	unsigned int backend = 0;
	uint64_t mtu;
	int r, at = find(a, id);

	if ((r = api_not_implemented(o, "rx_rate_limiter", "a network interface", err, n)) ||
	    (r = api_not_implemented(o, "tx_rate_limiter", "a network interface", err, n)))
		return r;
	if ((r = jin_enum(o, "tern_backend", backends, &backend, err, n)) < 0)
		return r;
	if ((r = jin_string(o, "host_dev_name", IFNAMSIZ - 1, &dev, err, n)) < 0)
		return r;
	if (backend == 0 && (!r || !*dev))
		return api_fail(err, n,
				"'host_dev_name' is required (a TAP device name, 1 to %d "
				"bytes)",
				IFNAMSIZ - 1);
	if ((r = jin_string(o, "guest_mac", 64, &mac, err, n)) < 0)
		return r;
	if (r) {
		if (net_mac_parse(mac, c.mac))
			return api_fail(err, n,
					"'guest_mac' \"%s\" is not a unicast MAC address "
					"xx:xx:xx:xx:xx:xx",
					mac);
		c.mac_given = true;
	} else {
		net_mac_random(c.mac);
	}
	if ((r = jin_u64(o, "mtu", NET_MTU_MIN, NET_MTU_MAX, &mtu, err, n)) < 0)
		return r;
	c.mtu = r ? (uint16_t)mtu : 0;
	c.kind = backend == 0 ? NET_TAP : NET_USER;
	if (dev && backend == 0)
		strcpy(c.tap_name, dev);
	strcpy(c.id, id);
	if (at < 0 && a->cfg.nnets == VMM_MAX_NETS)
		return api_fail(err, n, "at most %d network interfaces", VMM_MAX_NETS);
	/* Two NICs must not share a MAC or a TAP device. */
	memcpy(all, a->cfg.nets, sizeof(all));
	unsigned int count = a->cfg.nnets;
	all[at < 0 ? count++ : (unsigned int)at] = c;
	if (net_opts_check_all(all, count, err, n))
		return -EINVAL;
	a->cfg.nets[at < 0 ? a->cfg.nnets++ : (unsigned int)at] = c;
	return 0;
}

int res_net_iface(struct api *a, const char *id, struct json_object *o, bool patch, char *err,
		  size_t n)
{
	int r;

	if (patch) {
		if ((r = jin_only(o, patch_keys, "PATCH /network-interfaces", err, n)) ||
		    (r = check_id(id, o, err, n)))
			return r;
		if (find(a, id) < 0)
			return api_fail(err, n, "no network interface '%s'", id);
		if ((r = api_not_implemented(o, "rx_rate_limiter", "a network interface", err,
					     n)) ||
		    (r = api_not_implemented(o, "tx_rate_limiter", "a network interface", err, n)))
			return r;
		return 0; /* nothing else can change */
	}
	if ((r = api_preboot(a, err, n)) ||
	    (r = jin_only(o, put_keys, "/network-interfaces", err, n)) ||
	    (r = check_id(id, o, err, n)))
		return r;
	return put(a, id, o, err, n);
}
