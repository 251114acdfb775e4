/*
 * The metrics file: JSON keys and deltas of the pure formatter, lines written to a file
 * from a hand-built struct vm (no KVM: only the counters are filled in), and a FIFO that
 * has no reader or is full.
 */
#include "core/log.h"
#include "tmpfile.h"
#include "unit.h"
#include "vmm/metrics.h"
#include "vmm/vm.h"

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Line n (from 0) of the file, parsed; NULL when missing or not JSON. */
static struct json_object *line_of(const char *path, int n)
{
	char *l = tmp_slurp(path);

	for (int i = 0; i < n && l; i++) {
		l = strchr(l, '\n');
		l = l ? l + 1 : NULL;
	}
	char *end = l ? strchr(l, '\n') : NULL;
	if (!end)
		return NULL; /* every line ends with a newline */
	*end = 0;
	return json_tokener_parse(l);
}

/* obj.section.key as an integer, or -1 when missing. */
static long long get(struct json_object *obj, const char *section, const char *key)
{
	struct json_object *s, *v;

	if (!json_object_object_get_ex(obj, section, &s) ||
	    !json_object_object_get_ex(s, key, &v) || !json_object_is_type(v, json_type_int))
		return -1;
	return (long long)json_object_get_uint64(v);
}

static bool has(struct json_object *obj, const char *key)
{
	return json_object_object_get_ex(obj, key, NULL);
}

TEST(metrics_format_keys_and_deltas)
{
	static struct metrics_sample prev, now;

	memset(&prev, 0, sizeof(prev));
	memset(&now, 0, sizeof(now));
	prev.api.requests = 3;
	now.api.requests = 10;
	now.api.errors = 1;
	prev.vcpu.exit_io_in = 100;
	now.vcpu.exit_io_in = 150;
	now.vcpu.exit_emulation = 7;
	snprintf(now.block[0].id, sizeof(now.block[0].id), "rootfs");
	prev.block[0].c.read_bytes = 4096;
	now.block[0].c.read_bytes = 4096 * 3;
	now.block[0].c.invalid_reqs_count = 2;
	snprintf(now.block[3].id, sizeof(now.block[3].id), "drive3");
	now.block[3].c.read_bytes = 512;
	snprintf(now.net[1].id, sizeof(now.net[1].id), "eth1");
	now.net[1].c.rx_packets_count = 5;
	now.net[1].c.tx_malformed_frames = 1;
	now.net[1].c.rx_stalls = 2;
	now.vsock.tx_bytes_count = 99;
	prev.entropy.entropy_bytes = 64;
	now.entropy.entropy_bytes = 128;

	struct json_object *o = metrics_format(&now, &prev, 1700000000123ULL);
	REQUIRE(o);
	struct json_object *ts;
	CHECK(json_object_object_get_ex(o, "utc_timestamp_ms", &ts) &&
	      json_object_get_uint64(ts) == 1700000000123ULL);
	CHECK(get(o, "api_server", "requests") == 7 && get(o, "api_server", "errors") == 1);
	CHECK(get(o, "vcpu", "exit_io_in") == 50 && get(o, "vcpu", "exit_io_out") == 0);
	CHECK(get(o, "vcpu", "exit_mmio_read") == 0 && get(o, "vcpu", "exit_mmio_write") == 0);
	CHECK(get(o, "vcpu", "exit_emulation") == 7 && get(o, "vcpu", "failures") == 0);
	CHECK(get(o, "block_rootfs", "read_bytes") == 8192);
	CHECK(get(o, "block_rootfs", "invalid_reqs_count") == 2);
	CHECK(get(o, "block_drive3", "read_bytes") == 512);
	CHECK(get(o, "block", "read_bytes") == 8192 + 512);
	static const char *const block_keys[] = {
		"read_bytes",  "write_bytes", "read_count",
		"write_count", "flush_count", "invalid_reqs_count"
	};
	for (size_t i = 0; i < sizeof(block_keys) / sizeof(block_keys[0]); i++)
		CHECK(get(o, "block", block_keys[i]) >= 0 &&
		      get(o, "block_rootfs", block_keys[i]) >= 0);
	CHECK(!has(o, "block_") && !has(o, "block_drive1"));
	CHECK(get(o, "net_eth1", "rx_packets_count") == 5 &&
	      get(o, "net", "rx_packets_count") == 5);
	CHECK(get(o, "net_eth1", "tx_malformed_frames") == 1 &&
	      get(o, "net_eth1", "rx_stalls") == 2);
	static const char *const net_keys[] = { "rx_bytes_count",     "tx_bytes_count",
						"rx_packets_count",   "tx_packets_count",
						"rx_fails",	      "tx_fails",
						"tx_malformed_frames" };
	for (size_t i = 0; i < sizeof(net_keys) / sizeof(net_keys[0]); i++)
		CHECK(get(o, "net", net_keys[i]) >= 0 && get(o, "net_eth1", net_keys[i]) >= 0);
	CHECK(!has(o, "net_eth0"));
	CHECK(get(o, "vsock", "tx_bytes_count") == 99 && get(o, "vsock", "rx_packets_count") == 0);
	CHECK(get(o, "entropy", "entropy_bytes") == 64);
	CHECK(get(o, "logger", "missed_metrics_count") == 0);
	json_object_put(o);
}

/* A hand-built VM: only what metrics_sample_read() looks at. */
struct fake {
	struct vm *vm;
	struct virtio_blk *blk0, *blk2;
	struct virtio_net *net0, *net1;
	struct virtio_vsock *vsock;
	struct virtio_rng *rng;
};

static bool fake_make(struct fake *f)
{
	memset(f, 0, sizeof(*f));
	f->vm = calloc(1, sizeof(*f->vm));
	f->blk0 = calloc(1, sizeof(*f->blk0));
	f->blk2 = calloc(1, sizeof(*f->blk2));
	f->net0 = calloc(1, sizeof(*f->net0));
	f->net1 = calloc(1, sizeof(*f->net1));
	f->vsock = calloc(1, sizeof(*f->vsock));
	f->rng = calloc(1, sizeof(*f->rng));
	if (!f->vm || !f->blk0 || !f->blk2 || !f->net0 || !f->net1 || !f->vsock || !f->rng)
		return false;
	f->vm->ncpus = 2;
	f->vm->vcpus = calloc(2, sizeof(*f->vm->vcpus));
	if (!f->vm->vcpus)
		return false;
	pthread_mutex_init(&f->blk0->dev.lock, NULL);
	pthread_mutex_init(&f->blk2->dev.lock, NULL);
	pthread_mutex_init(&f->net0->dev.lock, NULL);
	pthread_mutex_init(&f->net1->dev.lock, NULL);
	pthread_mutex_init(&f->vsock->dev.lock, NULL);
	pthread_mutex_init(&f->rng->dev.lock, NULL);
	snprintf(f->vm->cfg.disks[0].id, sizeof(f->vm->cfg.disks[0].id), "root");
	snprintf(f->vm->cfg.nets[1].id, sizeof(f->vm->cfg.nets[1].id), "wan");
	f->vm->blk[0] = f->blk0;
	f->vm->blk[2] = f->blk2; /* no id: "drive2" */
	f->vm->net[0] = f->net0; /* no id: "eth0" */
	f->vm->net[1] = f->net1;
	f->vm->vsock = f->vsock;
	f->vm->rng = f->rng;
	return true;
}

static void fake_free(struct fake *f)
{
	if (f->vm)
		free(f->vm->vcpus);
	free(f->vm);
	free(f->blk0);
	free(f->blk2);
	free(f->net0);
	free(f->net1);
	free(f->vsock);
	free(f->rng);
}

TEST(metrics_flush_deltas_from_a_vm)
{
	struct fake f;
	struct tmp t;
	struct metrics m = { 0 };
	struct api_counters api = { 0 };
	char err[160];

	REQUIRE(fake_make(&f));
	REQUIRE(tmp_make(&t, "metrics"));
	CHECK(metrics_flush(&m, f.vm) == -EBADF); /* all zeros: not open */
	REQUIRE(metrics_open(&m, t.path, err, sizeof(err)) == 0);
	m.api = &api;

	api.requests = 4;
	f.vm->vcpus[0].stats.exit_io_out = 10;
	f.vm->vcpus[1].stats.exit_io_out = 5;
	f.vm->vcpus[1].stats.exit_mmio_write = 3;
	f.vm->vcpus[0].stats.failures = 1;
	f.blk0->stats.write_bytes = 1024;
	f.blk0->stats.write_ops = 2;
	f.blk0->stats.flush_ops = 1;
	f.blk2->stats.read_ops = 1;
	f.blk2->stats.invalid_reqs = 4;
	f.net0->stats.tx_bytes = 2000;
	f.net1->stats.rx_bytes = 1500;
	f.net1->stats.rx_frames = 1;
	f.net1->stats.rx_dropped = 2;
	f.net1->stats.tx_errors = 3;
	f.net1->stats.tx_dropped = 4;
	f.vsock->stats.rx_packets = 6;
	f.vsock->stats.rx_bytes = 600;
	f.rng->bytes = 64;
	f.rng->requests = 1;
	CHECK(metrics_flush(&m, f.vm) == 0);

	api.requests = 5;
	api.errors = 1;
	f.vm->vcpus[1].stats.exit_io_out = 8;
	f.blk0->stats.write_bytes = 1536;
	f.blk0->stats.write_ops = 3;
	f.net1->stats.rx_frames = 3;
	f.rng->bytes = 96;
	CHECK(metrics_flush(&m, f.vm) == 0);
	metrics_close(&m);
	metrics_close(&m); /* twice is harmless */

	struct json_object *a = line_of(t.path, 0), *b = line_of(t.path, 1);
	REQUIRE(a && b);
	CHECK(!line_of(t.path, 2));
	CHECK(has(a, "utc_timestamp_ms") && has(b, "utc_timestamp_ms"));
	/* First line: everything since the start. */
	CHECK(get(a, "api_server", "requests") == 4 && get(a, "api_server", "errors") == 0);
	CHECK(get(a, "vcpu", "exit_io_out") == 15 && get(a, "vcpu", "exit_mmio_write") == 3);
	CHECK(get(a, "vcpu", "failures") == 1);
	CHECK(get(a, "block_root", "write_bytes") == 1024 &&
	      get(a, "block_root", "write_count") == 2);
	CHECK(get(a, "block_root", "flush_count") == 1);
	CHECK(get(a, "block_drive2", "read_count") == 1);
	CHECK(get(a, "block_drive2", "invalid_reqs_count") == 4);
	CHECK(get(a, "block", "invalid_reqs_count") == 4 && get(a, "block", "write_count") == 2);
	CHECK(!has(a, "block_drive1") && !has(a, "net_eth1"));
	CHECK(get(a, "net_eth0", "tx_bytes_count") == 2000 &&
	      get(a, "net", "tx_bytes_count") == 2000);
	CHECK(get(a, "net_wan", "rx_bytes_count") == 1500 && get(a, "net_wan", "rx_fails") == 2);
	CHECK(get(a, "net_wan", "tx_fails") == 3 && get(a, "net_wan", "tx_malformed_frames") == 4);
	CHECK(get(a, "net", "rx_packets_count") == 1);
	CHECK(get(a, "vsock", "rx_packets_count") == 6 && get(a, "vsock", "rx_bytes_count") == 600);
	CHECK(get(a, "entropy", "entropy_bytes") == 64 &&
	      get(a, "entropy", "entropy_requests") == 1);
	/* Second line: only what changed since the first. */
	CHECK(get(b, "api_server", "requests") == 1 && get(b, "api_server", "errors") == 1);
	CHECK(get(b, "vcpu", "exit_io_out") == 3 && get(b, "vcpu", "exit_mmio_write") == 0);
	CHECK(get(b, "vcpu", "failures") == 0);
	CHECK(get(b, "block_root", "write_bytes") == 512 &&
	      get(b, "block_root", "write_count") == 1);
	CHECK(get(b, "block_drive2", "invalid_reqs_count") == 0);
	CHECK(get(b, "net_wan", "rx_packets_count") == 2 &&
	      get(b, "net_wan", "rx_bytes_count") == 0);
	CHECK(get(b, "entropy", "entropy_bytes") == 32);
	json_object_put(a);
	json_object_put(b);
	tmp_remove(&t);
	fake_free(&f);
}

/* Before the VM exists (FlushMetrics before InstanceStart): every section, all zeros. */
TEST(metrics_flush_without_vm)
{
	struct tmp t;
	struct metrics m = { 0 };
	char err[160];

	REQUIRE(tmp_make(&t, "metrics"));
	REQUIRE(metrics_open(&m, t.path, err, sizeof(err)) == 0);
	CHECK(metrics_flush(&m, NULL) == 0);
	metrics_close(&m);
	struct json_object *a = line_of(t.path, 0);
	REQUIRE(a);
	CHECK(get(a, "vcpu", "exit_io_in") == 0 && get(a, "block", "read_bytes") == 0);
	CHECK(get(a, "net", "tx_fails") == 0 && get(a, "api_server", "requests") == 0);
	CHECK(has(a, "vsock") && has(a, "entropy") && has(a, "logger"));
	json_object_put(a);
	tmp_remove(&t);
}

static int fill_pipe(int fd)
{
	static const char junk[4096];
	int n = 0;

	while (write(fd, junk, sizeof(junk)) > 0)
		n++;
	return n;
}

TEST(metrics_fifo_no_reader_and_full)
{
	struct tmp t;
	struct metrics m = { 0 };
	char err[160], buf[4096];
	static struct metrics_sample s;
	enum log_level level = log_get_level();

	REQUIRE(tmp_make(&t, "fifo"));
	REQUIRE(mkfifo(t.path, 0600) == 0);
	CHECK(metrics_open(&m, t.path, err, sizeof(err)) == -ENXIO);
	CHECK(strstr(err, "no reader on the FIFO") != NULL);
	CHECK(!m.open);

	int rd = open(t.path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	REQUIRE(rd >= 0);
	REQUIRE(metrics_open(&m, t.path, err, sizeof(err)) == 0);
	CHECK(fill_pipe(m.fd) > 0);
	log_set_level(LOG_ERROR); /* the drops are warned about */
	memset(&s, 0, sizeof(s));
	s.vcpu.exit_io_in = 5;
	CHECK(metrics_write_sample(&m, &s, 1) == -EAGAIN);
	s.vcpu.exit_io_in = 7;
	CHECK(metrics_write_sample(&m, &s, 2) == -EAGAIN);
	CHECK(m.missed == 2);
	log_set_level(level);
	while (read(rd, buf, sizeof(buf)) > 0)
		;
	/* Room again: the next line carries the dropped lines' counts, and says so. */
	s.vcpu.exit_io_in = 9;
	s.logger.missed_metrics_count = m.missed;
	CHECK(metrics_write_sample(&m, &s, 3) == 0);
	ssize_t n = read(rd, buf, sizeof(buf) - 1);
	REQUIRE(n > 0);
	buf[n] = 0;
	CHECK(buf[n - 1] == '\n' && !strchr(buf, '\n')[1]);
	struct json_object *o = json_tokener_parse(buf);
	REQUIRE(o);
	CHECK(get(o, "vcpu", "exit_io_in") == 9);
	CHECK(get(o, "logger", "missed_metrics_count") == 2);
	json_object_put(o);
	metrics_close(&m);
	close(rd);
	tmp_remove(&t);
}

/* A line longer than PIPE_BUF that a pipe takes only in part is finished before the next. */
TEST(metrics_partial_line_is_finished_first)
{
	struct tmp t;
	struct metrics m = { 0 };
	char err[160];
	static char buf[128 * 1024];
	static struct metrics_sample s;
	enum log_level level = log_get_level();

	REQUIRE(tmp_make(&t, "fifo"));
	REQUIRE(mkfifo(t.path, 0600) == 0);
	int rd = open(t.path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	REQUIRE(rd >= 0);
	REQUIRE(metrics_open(&m, t.path, err, sizeof(err)) == 0);
	REQUIRE(fcntl(m.fd, F_SETPIPE_SZ, 4096) > 0);
	/* Every device, long ids and 19-digit counts make one line over 4 KiB. */
	memset(&s, 0, sizeof(s));
	for (unsigned int i = 0; i < VMM_MAX_DISKS; i++) {
		snprintf(s.block[i].id, sizeof(s.block[i].id), "disk%u-%055u", i, 0u);
		s.block[i].c.read_bytes = s.block[i].c.write_bytes = 1000000000000000000ULL;
		s.block[i].c.read_count = s.block[i].c.write_count = 1000000000000000000ULL;
	}
	for (unsigned int i = 0; i < VMM_MAX_NETS; i++) {
		snprintf(s.net[i].id, sizeof(s.net[i].id), "nic%u-%056u", i, 0u);
		s.net[i].c.rx_bytes_count = s.net[i].c.tx_bytes_count = 1000000000000000000ULL;
		s.net[i].c.rx_packets_count = s.net[i].c.tx_packets_count = 1000000000000000000ULL;
	}
	s.vcpu.exit_mmio_read = 1;
	CHECK(metrics_write_sample(&m, &s, 1) == 0);
	CHECK(m.pending != NULL); /* the pipe holds 4 KiB only */
	/* Nothing read yet: the tail waits, and the next line is dropped rather than cut in. */
	s.vcpu.exit_mmio_read = 3;
	log_set_level(LOG_ERROR); /* the drop is warned about */
	CHECK(metrics_write_sample(&m, &s, 2) == -EAGAIN);
	log_set_level(level);
	/*
	 * Read while writing more lines: a line is only started once the one before is
	 * all out, so when the third has started the first two are whole in buf.
	 */
	size_t len = 0;
	ssize_t n;
	int started = 1;
	for (int tries = 0; tries < 1000 && started < 3; tries++) {
		while ((n = read(rd, buf + len, sizeof(buf) - 1 - len)) > 0)
			len += (size_t)n;
		log_set_level(LOG_ERROR);
		if (metrics_write_sample(&m, &s, 3) == 0)
			started++;
		log_set_level(level);
	}
	REQUIRE(started == 3);
	while ((n = read(rd, buf + len, sizeof(buf) - 1 - len)) > 0)
		len += (size_t)n;
	buf[len] = 0;
	char *nl = strchr(buf, '\n');
	REQUIRE(nl && strchr(nl + 1, '\n'));
	*nl = 0;
	*strchr(nl + 1, '\n') = 0;
	struct json_object *a = json_tokener_parse(buf), *b = json_tokener_parse(nl + 1);
	REQUIRE(a && b);
	CHECK(get(a, "vcpu", "exit_mmio_read") == 1 && get(b, "vcpu", "exit_mmio_read") == 2);
	json_object_put(a);
	json_object_put(b);
	metrics_close(&m);
	close(rd);
	tmp_remove(&t);
}
