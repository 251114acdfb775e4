/*
 * One metrics line as JSON: pure, over two samples of running totals, so the deltas
 * and keys can be tested without a VM. Each section is described by a table of field
 * offsets whose names are the JSON keys, so a counter is added in one place.
 */
#include "vmm/metrics.h"

#include <json-c/json.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

struct key {
	const char *name;
	size_t off;
};

#define KEY(type, field)                      \
	{                                     \
#field, offsetof(type, field) \
	}
#define NKEYS(k) (sizeof(k) / sizeof((k)[0]))

static const struct key api_keys[] = {
	KEY(struct metrics_api, requests),
	KEY(struct metrics_api, errors),
};

static const struct key logger_keys[] = {
	KEY(struct metrics_logger, missed_metrics_count),
	KEY(struct metrics_logger, missed_log_count),
};

static const struct key vcpu_keys[] = {
	KEY(struct metrics_vcpu, exit_io_in),	  KEY(struct metrics_vcpu, exit_io_out),
	KEY(struct metrics_vcpu, exit_mmio_read), KEY(struct metrics_vcpu, exit_mmio_write),
	KEY(struct metrics_vcpu, exit_emulation), KEY(struct metrics_vcpu, failures),
};

static const struct key block_keys[] = {
	KEY(struct metrics_block, read_bytes),	KEY(struct metrics_block, write_bytes),
	KEY(struct metrics_block, read_count),	KEY(struct metrics_block, write_count),
	KEY(struct metrics_block, flush_count), KEY(struct metrics_block, invalid_reqs_count),
};

static const struct key net_keys[] = {
	KEY(struct metrics_net, rx_bytes_count),
	KEY(struct metrics_net, tx_bytes_count),
	KEY(struct metrics_net, rx_packets_count),
	KEY(struct metrics_net, tx_packets_count),
	KEY(struct metrics_net, rx_fails),
	KEY(struct metrics_net, tx_fails),
	KEY(struct metrics_net, tx_malformed_frames),
	KEY(struct metrics_net, rx_stalls),
};

static const struct key vsock_keys[] = {
	KEY(struct metrics_vsock, rx_bytes_count),
	KEY(struct metrics_vsock, tx_bytes_count),
	KEY(struct metrics_vsock, rx_packets_count),
	KEY(struct metrics_vsock, tx_packets_count),
};

static const struct key entropy_keys[] = {
	KEY(struct metrics_entropy, entropy_bytes),
	KEY(struct metrics_entropy, entropy_requests),
};

static unsigned long long counter(const void *rec, size_t off)
{
	unsigned long long v;

	memcpy(&v, (const char *)rec + off, sizeof(v));
	return v;
}

/* Totals only grow; a smaller one would mean a counter restarted, so all of it is new. */
static unsigned long long delta(unsigned long long now, unsigned long long prev)
{
	return now >= prev ? now - prev : now;
}

/* Adds val under name; false (val freed) when either is missing. */
static bool put(struct json_object *o, const char *name, struct json_object *val)
{
	if (!o || !val || json_object_object_add(o, name, val) < 0) {
		json_object_put(val);
		return false;
	}
	return true;
}

/*
 * The section named name: per key, the deltas of n records stride bytes apart, summed
 * (n 1 for one device, all slots for the "block" and "net" totals; absent slots are 0).
 */
static bool section(struct json_object *root, const char *name, const struct key *keys,
		    size_t nkeys, const void *now, const void *prev, size_t stride, unsigned int n)
{
	struct json_object *o = json_object_new_object();
	bool ok = o != NULL;

	for (size_t k = 0; ok && k < nkeys; k++) {
		unsigned long long d = 0;
		for (unsigned int i = 0; i < n; i++)
			d += delta(counter((const char *)now + i * stride, keys[k].off),
				   counter((const char *)prev + i * stride, keys[k].off));
		ok = put(o, keys[k].name, json_object_new_uint64(d));
	}
	if (!ok) {
		json_object_put(o);
		return false;
	}
	return put(root, name, o);
}

struct json_object *metrics_format(const struct metrics_sample *now,
				   const struct metrics_sample *prev, uint64_t utc_ms)
{
	struct json_object *root = json_object_new_object();
	char name[METRICS_ID_MAX + 8];
	bool ok = put(root, "utc_timestamp_ms", json_object_new_uint64(utc_ms));

	ok = ok &&
	     section(root, "api_server", api_keys, NKEYS(api_keys), &now->api, &prev->api, 0, 1);
	ok = ok && section(root, "logger", logger_keys, NKEYS(logger_keys), &now->logger,
			   &prev->logger, 0, 1);
	ok = ok &&
	     section(root, "vcpu", vcpu_keys, NKEYS(vcpu_keys), &now->vcpu, &prev->vcpu, 0, 1);
	ok = ok && section(root, "block", block_keys, NKEYS(block_keys), &now->block[0].c,
			   &prev->block[0].c, sizeof(now->block[0]), VMM_MAX_DISKS);
	for (unsigned int i = 0; ok && i < VMM_MAX_DISKS; i++) {
		if (!now->block[i].id[0])
			continue;
		snprintf(name, sizeof(name), "block_%s", now->block[i].id);
		ok = section(root, name, block_keys, NKEYS(block_keys), &now->block[i].c,
			     &prev->block[i].c, 0, 1);
	}
	ok = ok && section(root, "net", net_keys, NKEYS(net_keys), &now->net[0].c, &prev->net[0].c,
			   sizeof(now->net[0]), VMM_MAX_NETS);
	for (unsigned int i = 0; ok && i < VMM_MAX_NETS; i++) {
		if (!now->net[i].id[0])
			continue;
		snprintf(name, sizeof(name), "net_%s", now->net[i].id);
		ok = section(root, name, net_keys, NKEYS(net_keys), &now->net[i].c, &prev->net[i].c,
			     0, 1);
	}
	ok = ok &&
	     section(root, "vsock", vsock_keys, NKEYS(vsock_keys), &now->vsock, &prev->vsock, 0, 1);
	ok = ok && section(root, "entropy", entropy_keys, NKEYS(entropy_keys), &now->entropy,
			   &prev->entropy, 0, 1);
	if (!ok) {
		json_object_put(root);
		return NULL;
	}
	return root;
}
