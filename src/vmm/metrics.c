/*
 * The metrics file: reads the VM's counters, and appends one line per flush without
 * ever blocking the event loop (the file is non-blocking; a line a full pipe refuses
 * is dropped, and its counts roll into the next line because m->prev stays put).
 */
#include "vmm/metrics.h"
#include "core/log.h"
#include "vmm/vm.h"

#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int metrics_open(struct metrics *m, const char *path, char *err, size_t errlen)
{
	int fd = log_open_output(path, err, errlen);

	if (fd < 0)
		return fd;
	memset(m, 0, sizeof(*m));
	m->fd = fd;
	m->open = true;
	return 0;
}

static unsigned long long load(const _Atomic unsigned long long *c)
{
	return atomic_load_explicit(c, memory_order_relaxed);
}

static void read_vcpus(const struct vm *vm, struct metrics_vcpu *s)
{
	/* The vCPU threads own these; relaxed loads see each counter whole. */
	for (unsigned int i = 0; vm->vcpus && i < vm->ncpus; i++) {
		const struct vcpu_stats *v = &vm->vcpus[i].stats;
		s->exit_io_in += load(&v->exit_io_in);
		s->exit_io_out += load(&v->exit_io_out);
		s->exit_mmio_read += load(&v->exit_mmio_read);
		s->exit_mmio_write += load(&v->exit_mmio_write);
		s->exit_emulation += load(&v->exit_emulation);
		s->failures += load(&v->failures);
	}
}

/*
 * Device counters are plain fields updated under the device's lock, mostly on this
 * thread but also on vCPU threads (a queue notify through MMIO runs there): so take it.
 */
static void read_block(struct virtio_blk *b, struct metrics_block *s)
{
	pthread_mutex_lock(&b->dev.lock);
	s->read_bytes = b->stats.read_bytes;
	s->write_bytes = b->stats.write_bytes;
	s->read_count = b->stats.read_ops;
	s->write_count = b->stats.write_ops;
	s->flush_count = b->stats.flush_ops;
	s->invalid_reqs_count = b->stats.invalid_reqs;
	pthread_mutex_unlock(&b->dev.lock);
}

static void read_net(struct virtio_net *n, struct metrics_net *s)
{
	pthread_mutex_lock(&n->dev.lock);
	s->rx_bytes_count = n->stats.rx_bytes;
	s->tx_bytes_count = n->stats.tx_bytes;
	s->rx_packets_count = n->stats.rx_frames;
	s->tx_packets_count = n->stats.tx_frames;
	s->rx_fails = n->stats.rx_dropped;
	s->tx_fails = n->stats.tx_errors;
	s->tx_malformed_frames = n->stats.tx_dropped;
	s->rx_stalls = n->stats.rx_stalls;
	pthread_mutex_unlock(&n->dev.lock);
}

static void read_vsock(struct virtio_vsock *v, struct metrics_vsock *s)
{
	pthread_mutex_lock(&v->dev.lock);
	s->rx_bytes_count = v->stats.rx_bytes;
	s->tx_bytes_count = v->stats.tx_bytes;
	s->rx_packets_count = v->stats.rx_packets;
	s->tx_packets_count = v->stats.tx_packets;
	pthread_mutex_unlock(&v->dev.lock);
}

static void read_rng(struct virtio_rng *r, struct metrics_entropy *s)
{
	pthread_mutex_lock(&r->dev.lock);
	s->entropy_bytes = r->bytes;
	s->entropy_requests = r->requests;
	pthread_mutex_unlock(&r->dev.lock);
}

void metrics_sample_read(const struct metrics *m, const struct vm *vm, struct metrics_sample *s)
{
	memset(s, 0, sizeof(*s));
	if (m->api) {
		s->api.requests = load(&m->api->requests);
		s->api.errors = load(&m->api->errors);
	}
	s->logger.missed_metrics_count = m->missed;
	s->logger.missed_log_count = log_dropped();
	if (!vm)
		return;
	read_vcpus(vm, &s->vcpu);
	for (unsigned int i = 0; i < VMM_MAX_DISKS; i++) {
		if (!vm->blk[i])
			continue;
		/* Ids are optional on the command line: fall back to the position. */
		if (vm->cfg.disks[i].id[0])
			snprintf(s->block[i].id, sizeof(s->block[i].id), "%s", vm->cfg.disks[i].id);
		else
			snprintf(s->block[i].id, sizeof(s->block[i].id), "drive%u", i);
		read_block(vm->blk[i], &s->block[i].c);
	}
	for (unsigned int i = 0; i < VMM_MAX_NETS; i++) {
		if (!vm->net[i])
			continue;
		if (vm->cfg.nets[i].id[0])
			snprintf(s->net[i].id, sizeof(s->net[i].id), "%s", vm->cfg.nets[i].id);
		else
			snprintf(s->net[i].id, sizeof(s->net[i].id), "eth%u", i);
		read_net(vm->net[i], &s->net[i].c);
	}
	if (vm->vsock)
		read_vsock(vm->vsock, &s->vsock);
	if (vm->rng)
		read_rng(vm->rng, &s->entropy);
}

/* Counts a lost line and says so at the 1st, 2nd, 4th, 8th... loss. Returns err. */
static int dropped(struct metrics *m, int err)
{
	m->missed++;
	if (!(m->missed & (m->missed - 1)))
		log_warn("metrics: line dropped (%s); %llu lost so far", strerror(-err), m->missed);
	return err;
}

/* Sends the rest of a partly written line. 0 when it is all out, else -errno. */
static int write_pending(struct metrics *m)
{
	while (m->pending) {
		ssize_t w =
			write(m->fd, m->pending + m->pending_off, m->pending_len - m->pending_off);
		if (w < 0 && errno != EAGAIN && errno != EINTR)
			return -errno;
		if (w <= 0)
			return 0; /* still pending */
		m->pending_off += (size_t)w;
		if (m->pending_off == m->pending_len) {
			free(m->pending);
			m->pending = NULL;
		}
	}
	return 0;
}

int metrics_write_sample(struct metrics *m, const struct metrics_sample *now, uint64_t utc_ms)
{
	struct json_object *o;
	size_t len;
	char *line;
	ssize_t w;
	int r;

	if (!m->open)
		return -EBADF;
	/* The tail of the last line first: a line must never be cut by another. */
	r = write_pending(m);
	if (r < 0 || m->pending)
		return dropped(m, r < 0 ? r : -EAGAIN);
	o = metrics_format(now, &m->prev, utc_ms);
	if (!o)
		return dropped(m, -ENOMEM);
	const char *s = json_object_to_json_string_length(o, JSON_C_TO_STRING_PLAIN, &len);
	line = s ? malloc(len + 1) : NULL;
	if (line) {
		memcpy(line, s, len);
		line[len++] = '\n';
	}
	json_object_put(o);
	if (!line)
		return dropped(m, -ENOMEM);
	/* One write: a pipe under PIPE_BUF takes a line whole or not at all. */
	w = write(m->fd, line, len);
	if (w < 0) {
		r = -errno;
		free(line);
		return dropped(m, r);
	}
	m->prev = *now;
	if ((size_t)w < len) {
		m->pending = line;
		m->pending_off = (size_t)w;
		m->pending_len = len;
	} else {
		free(line);
	}
	return 0;
}

int metrics_flush(struct metrics *m, const struct vm *vm)
{
	struct metrics_sample now;
	struct timespec ts;

	if (!m->open)
		return -EBADF;
	metrics_sample_read(m, vm, &now);
	clock_gettime(CLOCK_REALTIME, &ts);
	return metrics_write_sample(m, &now,
				    (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000);
}

void metrics_close(struct metrics *m)
{
	if (m->open)
		close(m->fd);
	m->open = false;
	m->fd = -1;
	free(m->pending);
	m->pending = NULL;
}
