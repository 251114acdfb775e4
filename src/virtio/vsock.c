/*
 * virtio-vsock device: the connection table, each connection's state machine and both
 * directions of credit. Host sockets live in the device's own epoll set (one fd in the
 * VM's loop), so the table is not bounded by the loop and kicks arriving on vCPU
 * threads may open and close sockets too; d->lock guards everything here.
 */
#include "virtio/vsock.h"
#include "backend/vsock_uds.h"
#include "core/log.h"
#include "virtio/virtio.h"
#include "vmstate/vmstate.h"

#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

/* Control packets a connection owes the guest, sent in this order. */
#define P_RST 1u
#define P_REQUEST 2u
#define P_RESPONSE 4u
#define P_CREDIT_UPDATE 8u
#define P_SHUTDOWN 16u

#define TAG_LISTEN 0xffffffffu
#define TAG_TIMER 0xfffffffeu

#define SHUTDOWN_BOTH (VSOCK_SHUTDOWN_RCV | VSOCK_SHUTDOWN_SEND)

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static int32_t idx_of(struct virtio_vsock *v, struct vsock_conn *c)
{
	return (int32_t)(c - v->conn);
}

static unsigned int hash_of(uint32_t host_port, uint32_t guest_port)
{
	uint32_t h = host_port * 0x9e3779b1u ^ guest_port * 0x85ebca6bu;

	return (h ^ (h >> 16)) & (VSOCK_HASH_SIZE - 1);
}

struct vsock_conn *virtio_vsock_find(struct virtio_vsock *v, uint32_t host_port,
				     uint32_t guest_port)
{
	for (int32_t i = v->hash[hash_of(host_port, guest_port)]; i >= 0; i = v->conn[i].hash_next)
		if (v->conn[i].host_port == host_port && v->conn[i].guest_port == guest_port)
			return &v->conn[i];
	return NULL;
}

static void hash_add(struct virtio_vsock *v, struct vsock_conn *c)
{
	unsigned int h = hash_of(c->host_port, c->guest_port);

	c->hash_next = v->hash[h];
	v->hash[h] = idx_of(v, c);
	c->keyed = true;
}

static void hash_del(struct virtio_vsock *v, struct vsock_conn *c)
{
	int32_t *p = &v->hash[hash_of(c->host_port, c->guest_port)];

	while (*p >= 0 && *p != idx_of(v, c))
		p = &v->conn[*p].hash_next;
	if (*p >= 0)
		*p = c->hash_next;
	c->keyed = false;
}

/* ---- the list of connections with something for the rx queue ---- */

static void rx_enqueue(struct virtio_vsock *v, struct vsock_conn *c)
{
	int32_t i = idx_of(v, c);

	if (c->in_rx)
		return;
	c->in_rx = true;
	c->rx_next = -1;
	c->rx_prev = v->rx_tail;
	if (v->rx_tail >= 0)
		v->conn[v->rx_tail].rx_next = i;
	else
		v->rx_head = i;
	v->rx_tail = i;
}

static void rx_remove(struct virtio_vsock *v, struct vsock_conn *c)
{
	if (!c->in_rx)
		return;
	if (c->rx_prev >= 0)
		v->conn[c->rx_prev].rx_next = c->rx_next;
	else
		v->rx_head = c->rx_next;
	if (c->rx_next >= 0)
		v->conn[c->rx_next].rx_prev = c->rx_prev;
	else
		v->rx_tail = c->rx_prev;
	c->in_rx = false;
}

/* ---- timers: one periodic tick while any connection has a deadline ---- */

static void timer_set(struct virtio_vsock *v, bool on)
{
	struct itimerspec its = { 0 };

	if (v->timer_armed == on)
		return;
	if (on) {
		its.it_value.tv_sec = (time_t)(v->tick_ns / 1000000000);
		its.it_value.tv_nsec = (long)(v->tick_ns % 1000000000);
		its.it_interval = its.it_value;
	}
	if (timerfd_settime(v->timer_fd, 0, &its, NULL) == 0)
		v->timer_armed = on;
}

static void set_deadline(struct virtio_vsock *v, struct vsock_conn *c, uint64_t after_ns)
{
	c->deadline_ns = now_ns() + after_ns;
	timer_set(v, true);
}

/* ---- connection slots ---- */

static void listen_resume(struct virtio_vsock *v)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = TAG_LISTEN };

	if (v->listen_paused && epoll_ctl(v->epfd, EPOLL_CTL_MOD, v->listen_fd, &ev) == 0)
		v->listen_paused = false;
}

static void close_host(struct vsock_conn *c)
{
	if (c->fd >= 0)
		close(c->fd); /* also leaves the epoll set */
	c->fd = -1;
	free(c->buf);
	c->buf = NULL;
	c->buf_head = c->buf_len = 0;
}

static void conn_free(struct virtio_vsock *v, struct vsock_conn *c)
{
	close_host(c);
	rx_remove(v, c);
	if (c->keyed)
		hash_del(v, c);
	uint32_t gen = c->gen + 1;
	memset(c, 0, sizeof(*c));
	c->gen = gen;
	c->fd = -1;
	c->state = VSOCK_FREE;
	v->nconns--;
	listen_resume(v);
}

static struct vsock_conn *conn_new(struct virtio_vsock *v, int fd, enum vsock_state state)
{
	struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET };

	if (v->nconns >= v->max_conns)
		return NULL;
	for (unsigned int i = 0; i < v->max_conns; i++) {
		struct vsock_conn *c = &v->conn[i];
		if (c->state != VSOCK_FREE)
			continue;
		ev.data.u64 = (uint64_t)c->gen << 32 | i;
		if (epoll_ctl(v->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
			return NULL;
		c->state = state;
		c->fd = fd;
		c->hash_next = c->rx_prev = c->rx_next = -1;
		v->nconns++;
		return c;
	}
	return NULL;
}

/*
 * Ends a connection abortively: the host socket closes now, the slot stays until the
 * RST has gone to the guest (a HANDSHAKE connection was never announced, a DRAINING one
 * the guest already forgot: either just goes).
 */
static void conn_reset(struct virtio_vsock *v, struct vsock_conn *c)
{
	if (c->state == VSOCK_HANDSHAKE || c->state == VSOCK_DRAINING) {
		conn_free(v, c);
		return;
	}
	close_host(c);
	c->state = VSOCK_RESETTING;
	c->pending = P_RST;
	c->deadline_ns = 0;
	rx_enqueue(v, c);
}

static void conns_clear(struct virtio_vsock *v)
{
	for (unsigned int i = 0; i < VSOCK_MAX_CONNS; i++)
		if (v->conn[i].state != VSOCK_FREE)
			conn_free(v, &v->conn[i]);
	v->rx_head = v->rx_tail = -1;
	v->rst_head = v->rst_len = 0;
	v->tx_stalled = false;
	v->rx_held = false;
	timer_set(v, false);
}

static void broken(struct virtio_vsock *v, const char *why)
{
	virtio_dev_needs_reset(&v->dev, why);
	conns_clear(v);
}

/* ---- credit ---- */

/* What the guest lets us send now. A guest lying with fwd_cnt only harms its own buffers. */
static uint32_t peer_credit(const struct vsock_conn *c)
{
	uint32_t in_flight = c->tx_cnt - c->peer_fwd_cnt;

	return in_flight > c->peer_buf_alloc ? 0 : c->peer_buf_alloc - in_flight;
}

static bool can_read(const struct vsock_conn *c)
{
	return c->state == VSOCK_ESTABLISHED && c->fd >= 0 && c->host_readable && !c->host_eof &&
	       !(c->guest_shut & VSOCK_SHUTDOWN_RCV) && peer_credit(c) > 0;
}

static bool rx_wants(const struct vsock_conn *c)
{
	return c->pending || can_read(c);
}

/*
 * Tell the guest about freed space once the room it knows of drops below half: it stops
 * at zero, so any freed byte must reach it by then, and batching spares packets.
 */
static void credit_check(struct virtio_vsock *v, struct vsock_conn *c)
{
	uint32_t known_used = c->rx_cnt - c->fwd_sent;
	uint32_t known_free = known_used >= VSOCK_CONN_BUF ? 0 : VSOCK_CONN_BUF - known_used;

	if (c->state != VSOCK_ESTABLISHED || c->fwd_cnt == c->fwd_sent)
		return;
	if (known_free < VSOCK_CONN_BUF / 2) {
		c->pending |= P_CREDIT_UPDATE;
		rx_enqueue(v, c);
	}
}

/* ---- rx: packets to the guest ---- */

static void hdr_for(struct virtio_vsock *v, const struct vsock_conn *c, uint16_t op,
		    struct vsock_hdr *h)
{
	*h = (struct vsock_hdr){
		.src_cid = VSOCK_HOST_CID,
		.dst_cid = v->cid,
		.src_port = c->host_port,
		.dst_port = c->guest_port,
		.type = VSOCK_TYPE_STREAM,
		.op = op,
		.buf_alloc = VSOCK_CONN_BUF,
		.fwd_cnt = c->fwd_cnt,
	};
}

/* Pops an rx buffer into rx_chain. 1: held; 0: none; -1: the device broke. */
static int rx_take(struct virtio_vsock *v)
{
	struct virtio_dev *d = &v->dev;
	struct virtq *q = &d->q[VSOCK_RXQ];
	unsigned int n;
	int r;

	if (v->rx_held)
		return 1;
	r = virtq_pop(q, d->mem, &v->rx_chain);
	if (r == 0 && virtq_rearm(q, d->mem))
		r = virtq_pop(q, d->mem, &v->rx_chain);
	if (r < 0) {
		broken(v, "malformed rx descriptor chain");
		return -1;
	}
	if (r == 0)
		return 0;
	if (vsock_pkt_rx_room(&v->rx_chain, 0, NULL, &n) < 0) {
		broken(v, "rx buffer smaller than a packet header");
		return -1;
	}
	v->rx_held = true;
	return 1;
}

/* Hands the held rx buffer to the guest with header h and len bytes of payload. */
static void rx_give(struct virtio_vsock *v, const struct vsock_hdr *h)
{
	vsock_pkt_rx_put_hdr(&v->rx_chain, h);
	v->rx_held = false;
	v->stats.rx_packets++;
	v->stats.rx_bytes += h->len;
	if (h->op == VSOCK_OP_RST)
		v->stats.resets_sent++;
	if (h->op == VSOCK_OP_CREDIT_UPDATE)
		v->stats.credit_updates_sent++;
	virtio_dev_complete(&v->dev, VSOCK_RXQ, v->rx_chain.head, VSOCK_HDR_SIZE + h->len);
}

static void rx_send(struct virtio_vsock *v, struct vsock_conn *c, uint16_t op, uint32_t flags)
{
	struct vsock_hdr h;

	hdr_for(v, c, op, &h);
	h.flags = flags;
	/* Every packet carries fwd_cnt: the guest now knows the space freed so far. */
	c->fwd_sent = c->fwd_cnt;
	c->pending &= ~P_CREDIT_UPDATE;
	rx_give(v, &h);
}

static void orphan_rst_queue(struct virtio_vsock *v, uint32_t host_port, uint32_t guest_port)
{
	unsigned int i = (v->rst_head + v->rst_len) % VSOCK_RST_BACKLOG;

	/* tx_process() stops before rst[] can overflow. */
	v->rst[i].host_port = host_port;
	v->rst[i].guest_port = guest_port;
	v->rst_len++;
}

static void orphan_rst_send(struct virtio_vsock *v)
{
	struct vsock_hdr h = {
		.src_cid = VSOCK_HOST_CID,
		.dst_cid = v->cid,
		.src_port = v->rst[v->rst_head].host_port,
		.dst_port = v->rst[v->rst_head].guest_port,
		.type = VSOCK_TYPE_STREAM,
		.op = VSOCK_OP_RST,
	};

	v->rst_head = (v->rst_head + 1) % VSOCK_RST_BACKLOG;
	v->rst_len--;
	rx_give(v, &h);
}

/* The host closed its side for reading (read() gave 0). */
static void host_eof(struct virtio_vsock *v, struct vsock_conn *c)
{
	c->host_eof = true;
	if ((c->guest_shut & VSOCK_SHUTDOWN_SEND) && !c->buf_len) {
		conn_reset(v, c); /* both directions are over */
		return;
	}
	/* A half-close keeps guest -> host open; a hang-up ends both directions. */
	c->shutdown_out |= c->host_hup ? SHUTDOWN_BOTH : VSOCK_SHUTDOWN_SEND;
	c->pending |= P_SHUTDOWN;
}

/* Reads host data straight into the held rx buffer. 1: a packet went to the guest. */
static int rx_data(struct virtio_vsock *v, struct vsock_conn *c)
{
	struct iovec iov[VIRTQ_MAX_SIZE];
	unsigned int n;
	int room = vsock_pkt_rx_room(&v->rx_chain, peer_credit(c), iov, &n);
	ssize_t got;

	if (room <= 0) {
		/* A buffer with no room past the header still carries our credit. */
		rx_send(v, c, VSOCK_OP_CREDIT_UPDATE, 0);
		return 1;
	}
	do
		got = readv(c->fd, iov, (int)n);
	while (got < 0 && errno == EINTR);
	if (got > 0) {
		struct vsock_hdr h;
		hdr_for(v, c, VSOCK_OP_RW, &h);
		h.len = (uint32_t)got;
		c->tx_cnt += (uint32_t)got;
		c->fwd_sent = c->fwd_cnt;
		c->pending &= ~P_CREDIT_UPDATE;
		rx_give(v, &h);
		return 1;
	}
	if (got == 0)
		host_eof(v, c);
	else if (errno == EAGAIN || errno == EWOULDBLOCK)
		c->host_readable = false;
	else
		conn_reset(v, c);
	return 0;
}

/* Sends the connection's next packet using the held rx buffer. May free c. */
static void rx_serve(struct virtio_vsock *v, struct vsock_conn *c)
{
	if (c->pending & P_RST) {
		rx_send(v, c, VSOCK_OP_RST, 0);
		conn_free(v, c);
		return;
	}
	if (c->pending & P_REQUEST) {
		c->pending &= ~P_REQUEST;
		rx_send(v, c, VSOCK_OP_REQUEST, 0);
		return;
	}
	if (c->pending & P_RESPONSE) {
		c->pending &= ~P_RESPONSE;
		rx_send(v, c, VSOCK_OP_RESPONSE, 0);
		return;
	}
	if (can_read(c) && rx_data(v, c))
		return;
	if (c->state == VSOCK_FREE || (c->pending & P_RST))
		return;
	if (c->pending & P_SHUTDOWN) {
		c->pending &= ~P_SHUTDOWN;
		rx_send(v, c, VSOCK_OP_SHUTDOWN, c->shutdown_out);
		if ((c->shutdown_out & SHUTDOWN_BOTH) == SHUTDOWN_BOTH &&
		    c->state == VSOCK_ESTABLISHED) {
			c->state = VSOCK_CLOSING;
			set_deadline(v, c, v->close_timeout_ns);
		}
		return;
	}
	if (c->pending & P_CREDIT_UPDATE)
		rx_send(v, c, VSOCK_OP_CREDIT_UPDATE, 0);
}

static void tx_process(struct virtio_vsock *v);

/*
 * Fills rx buffers: RSTs for packets of no connection first, then one packet per
 * connection in turn, so one busy connection cannot starve the others.
 */
static void rx_pump(struct virtio_vsock *v)
{
	while (virtio_dev_live(&v->dev) && (v->rst_len || v->rx_head >= 0)) {
		if (rx_take(v) <= 0)
			break;
		if (v->rst_len) {
			orphan_rst_send(v);
			continue;
		}
		struct vsock_conn *c = &v->conn[v->rx_head];
		uint32_t gen = c->gen;
		rx_remove(v, c);
		rx_serve(v, c);
		if (c->gen == gen && c->state != VSOCK_FREE && rx_wants(c))
			rx_enqueue(v, c);
	}
}

static void run(struct virtio_vsock *v)
{
	rx_pump(v);
	/* tx stopped on a full rst[]: the pump may have made room. */
	while (v->tx_stalled && v->rst_len < VSOCK_RST_BACKLOG && virtio_dev_live(&v->dev)) {
		v->tx_stalled = false;
		tx_process(v);
		rx_pump(v);
	}
}

/* ---- guest -> host ---- */

static void buf_append(struct vsock_conn *c, const struct iovec *iov, unsigned int n, uint64_t off,
		       uint32_t len)
{
	uint32_t tail = (c->buf_head + c->buf_len) % VSOCK_CONN_BUF;
	uint32_t first = VSOCK_CONN_BUF - tail < len ? VSOCK_CONN_BUF - tail : len;

	virtq_iov_read(iov, n, off, c->buf + tail, first);
	virtq_iov_read(iov, n, off + first, c->buf, len - first);
	c->buf_len += len;
}

static void apply_guest_shutdown(struct virtio_vsock *v, struct vsock_conn *c)
{
	if (c->state != VSOCK_ESTABLISHED && c->state != VSOCK_CLOSING)
		return;
	if ((c->guest_shut & VSOCK_SHUTDOWN_SEND) && !c->buf_len) {
		if ((c->guest_shut & VSOCK_SHUTDOWN_RCV) || c->host_eof) {
			/* Clean close: the guest waits for our RST. */
			conn_reset(v, c);
			return;
		}
		if (!c->host_wr_shut && c->fd >= 0)
			shutdown(c->fd, SHUT_WR);
		c->host_wr_shut = true;
	}
	/*
	 * Data still waits for a host that may never read: do not hold it forever. flush()
	 * pushes this back whenever the host takes some, so only a stalled host is reset.
	 */
	if ((c->guest_shut & SHUTDOWN_BOTH) == SHUTDOWN_BOTH && !c->deadline_ns)
		set_deadline(v, c, v->close_timeout_ns);
}

/* Writes what the buffer holds to the host socket. false: c was reset or freed. */
static bool flush(struct virtio_vsock *v, struct vsock_conn *c)
{
	bool moved = false;

	while (c->buf_len) {
		uint32_t first = VSOCK_CONN_BUF - c->buf_head;
		struct iovec iov[2] = {
			{ c->buf + c->buf_head, first < c->buf_len ? first : c->buf_len },
			{ c->buf, first < c->buf_len ? c->buf_len - first : 0 },
		};
		struct msghdr m = { .msg_iov = iov, .msg_iovlen = iov[1].iov_len ? 2 : 1 };
		ssize_t n = sendmsg(c->fd, &m, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (n < 0) {
			if (c->host_hup) {
				/* The host is gone: what it did not read is lost, as with TCP. */
				c->fwd_cnt += c->buf_len;
				c->buf_len = 0;
				c->host_wr_gone = true;
				break;
			}
			conn_reset(v, c);
			return false;
		}
		c->buf_head = (c->buf_head + (uint32_t)n) % VSOCK_CONN_BUF;
		c->buf_len -= (uint32_t)n;
		c->fwd_cnt += (uint32_t)n;
		moved = moved || n > 0;
	}
	if (!c->buf_len) {
		free(c->buf);
		c->buf = NULL;
		c->buf_head = 0;
	}
	/*
	 * The close timeout (the only deadline these states have) bounds a host that stopped
	 * reading, not a slow one: it counts from the last byte the host took.
	 */
	if (moved && c->deadline_ns &&
	    (c->state == VSOCK_ESTABLISHED || c->state == VSOCK_DRAINING))
		set_deadline(v, c, v->close_timeout_ns);
	if (c->state == VSOCK_DRAINING) {
		if (c->buf_len)
			return true;
		/* All of it is in the host socket: closing gives the host EOF after it. */
		conn_free(v, c);
		return false;
	}
	credit_check(v, c);
	apply_guest_shutdown(v, c);
	return true;
}

/*
 * The guest reset a connection after shutting down its sending side, with data of it still
 * here: Linux does so VSOCK_CLOSE_TIMEOUT after close() when our RST is late, and ours
 * waits for a slow host to take that data. The data is complete, so the host still gets
 * all of it, then EOF. The guest forgot the connection: it leaves the hash (the address
 * pair is free for a new one) and nothing more goes to the guest for it, not even an RST
 * when the close timeout ends a host that stopped reading.
 */
static void conn_drain(struct virtio_vsock *v, struct vsock_conn *c)
{
	hash_del(v, c);
	rx_remove(v, c);
	c->pending = 0;
	c->state = VSOCK_DRAINING;
	if (!c->deadline_ns)
		set_deadline(v, c, v->close_timeout_ns);
	flush(v, c);
}

static void guest_data(struct virtio_vsock *v, struct vsock_conn *c, const struct vsock_pkt *p)
{
	uint32_t len = p->hdr.len, held = c->rx_cnt - c->fwd_cnt;
	uint64_t done = 0;

	if (!len)
		return;
	if (len > VSOCK_CONN_BUF - held) {
		/* More than the credit we gave: refusing it is what keeps tern bounded. */
		v->stats.credit_violations++;
		log_debug("virtio-vsock: guest port %u sent %u bytes with %u of credit; reset",
			  c->guest_port, len, VSOCK_CONN_BUF - held);
		conn_reset(v, c);
		return;
	}
	c->rx_cnt += len;
	if (c->state == VSOCK_CLOSING || c->host_wr_gone || c->host_wr_shut) {
		c->fwd_cnt += len; /* nobody on the host reads any more */
		return;
	}
	if (!c->buf_len) {
		struct msghdr m = { .msg_iov = (struct iovec *)p->data, .msg_iovlen = p->ndata };
		ssize_t n;
		do
			n = sendmsg(c->fd, &m, MSG_NOSIGNAL | MSG_DONTWAIT);
		while (n < 0 && errno == EINTR);
		if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
			if (!c->host_hup) {
				conn_reset(v, c);
				return;
			}
			c->host_wr_gone = true;
			n = len;
		}
		done = n > 0 ? (uint64_t)n : 0;
		c->fwd_cnt += (uint32_t)done;
	}
	if (done < len) {
		if (!c->buf && !(c->buf = malloc(VSOCK_CONN_BUF))) {
			conn_reset(v, c);
			return;
		}
		buf_append(c, p->data, p->ndata, done, len - (uint32_t)done);
		if (c->buf_len > v->stats.buffered_max)
			v->stats.buffered_max = c->buf_len;
	}
	credit_check(v, c);
}

/* A guest REQUEST to host port P: connect to PATH_P. */
static void guest_connect(struct virtio_vsock *v, const struct vsock_hdr *h)
{
	struct vsock_conn *c;
	int fd = -ENOSPC;

	if (v->nconns < v->max_conns)
		fd = vsock_uds_connect(v->path, h->dst_port);
	if (fd < 0 || !(c = conn_new(v, fd, VSOCK_ESTABLISHED))) {
		log_debug("virtio-vsock: guest port %u to host port %u refused: %s", h->src_port,
			  h->dst_port, strerror(fd < 0 ? -fd : ENOSPC));
		if (fd >= 0)
			close(fd);
		orphan_rst_queue(v, h->dst_port, h->src_port);
		return;
	}
	c->host_port = h->dst_port;
	c->guest_port = h->src_port;
	hash_add(v, c);
	c->peer_buf_alloc = h->buf_alloc;
	c->peer_fwd_cnt = h->fwd_cnt;
	c->pending = P_RESPONSE;
	rx_enqueue(v, c);
}

static void tx_packet(struct virtio_vsock *v, int verdict)
{
	const struct vsock_pkt *p = &v->pkt;
	const struct vsock_hdr *h = &p->hdr;
	struct vsock_conn *c;

	if (verdict == VSOCK_PKT_DROP) {
		v->stats.dropped++;
		log_debug("virtio-vsock: dropped a packet: %s", p->why);
		return;
	}
	c = virtio_vsock_find(v, h->dst_port, h->src_port);
	if (verdict == VSOCK_PKT_RESET) {
		log_debug("virtio-vsock: bad packet from guest port %u: %s", h->src_port, p->why);
		if (h->op == VSOCK_OP_RST)
			return; /* never answer a reset with a reset */
		if (c && c->state != VSOCK_RESETTING)
			conn_reset(v, c);
		else if (!c)
			orphan_rst_queue(v, h->dst_port, h->src_port);
		return;
	}
	if (!c) {
		if (h->op == VSOCK_OP_REQUEST)
			guest_connect(v, h);
		else if (h->op != VSOCK_OP_RST)
			orphan_rst_queue(v, h->dst_port, h->src_port);
		return;
	}
	if (c->state == VSOCK_RESETTING) {
		if (h->op == VSOCK_OP_RST)
			conn_free(v, c); /* the guest already forgot it: no RST needed */
		return;
	}
	/* Every packet of a flow carries the sender's current credit (5.10.6.3). */
	c->peer_buf_alloc = h->buf_alloc;
	c->peer_fwd_cnt = h->fwd_cnt;
	switch (h->op) {
	case VSOCK_OP_RST:
		/* After a send shutdown the data is complete; else this is an abort. */
		if (c->state == VSOCK_ESTABLISHED && (c->guest_shut & VSOCK_SHUTDOWN_SEND) &&
		    c->buf_len && !c->host_hup)
			conn_drain(v, c);
		else
			conn_free(v, c);
		return;
	case VSOCK_OP_REQUEST:
		conn_reset(v, c); /* a live address pair asked for again */
		return;
	case VSOCK_OP_RESPONSE:
		if (c->state != VSOCK_CONNECTING || vsock_uds_send_ok(c->fd, c->host_port)) {
			conn_reset(v, c);
			return;
		}
		c->state = VSOCK_ESTABLISHED;
		c->deadline_ns = 0;
		break;
	case VSOCK_OP_SHUTDOWN:
		if (c->state == VSOCK_CONNECTING) {
			conn_reset(v, c);
			return;
		}
		c->guest_shut |= h->flags & SHUTDOWN_BOTH;
		apply_guest_shutdown(v, c);
		if (c->state == VSOCK_RESETTING)
			return;
		break;
	case VSOCK_OP_RW:
		if (c->state == VSOCK_CONNECTING || (c->guest_shut & VSOCK_SHUTDOWN_SEND)) {
			conn_reset(v, c);
			return;
		}
		guest_data(v, c, p);
		if (c->state == VSOCK_RESETTING)
			return;
		break;
	case VSOCK_OP_CREDIT_REQUEST:
		c->pending |= P_CREDIT_UPDATE;
		break;
	case VSOCK_OP_CREDIT_UPDATE:
		break;
	}
	if (rx_wants(c))
		rx_enqueue(v, c);
}

static void tx_process(struct virtio_vsock *v)
{
	struct virtio_dev *d = &v->dev;
	struct virtq *q = &d->q[VSOCK_TXQ];

	while (virtio_dev_live(d)) {
		/* A packet may need an RST of no connection: keep room for one. */
		if (v->rst_len == VSOCK_RST_BACKLOG) {
			v->tx_stalled = true;
			return;
		}
		int r = virtq_pop(q, d->mem, &v->tx_chain);
		if (r == 0 && virtq_rearm(q, d->mem))
			r = virtq_pop(q, d->mem, &v->tx_chain);
		if (r == 0)
			return;
		if (r < 0) {
			broken(v, "malformed tx descriptor chain");
			return;
		}
		r = vsock_pkt_parse(&v->tx_chain, v->cid, &v->pkt);
		if (r < 0) {
			broken(v, "tx packet shorter than its header");
			return;
		}
		v->stats.tx_packets++;
		if (r == VSOCK_PKT_OK)
			v->stats.tx_bytes += v->pkt.hdr.len;
		tx_packet(v, r);
		/* The payload was written or copied: the buffer can go back. */
		virtio_dev_complete(d, VSOCK_TXQ, v->tx_chain.head, 0);
	}
}

/* ---- host sockets ---- */

static uint32_t alloc_port(struct virtio_vsock *v, uint32_t guest_port)
{
	/* At most max_conns ports are taken: this ends within max_conns + 1 tries. */
	for (;;) {
		uint32_t p = v->next_port++;
		if (v->next_port == 0)
			v->next_port = VSOCK_EPHEMERAL_BASE;
		if (!virtio_vsock_find(v, p, guest_port))
			return p;
	}
}

static void handshake(struct virtio_vsock *v, struct vsock_conn *c, uint32_t events)
{
	uint32_t port;
	int r = vsock_uds_read_connect(c->fd, &port);

	if (r == 0 && !(events & (EPOLLHUP | EPOLLRDHUP | EPOLLERR)))
		return;
	if (r <= 0 || !virtio_dev_live(&v->dev)) {
		log_debug("virtio-vsock: host connection closed: %s",
			  r == -EINVAL ? "not \"CONNECT PORT\\n\"" :
			  r <= 0       ? "closed before its CONNECT line" :
					 "the guest driver is not ready");
		v->stats.host_refused++;
		conn_free(v, c);
		return;
	}
	c->guest_port = port;
	c->host_port = alloc_port(v, port);
	hash_add(v, c);
	c->state = VSOCK_CONNECTING;
	c->host_readable = true; /* bytes sent after the line raised no new edge */
	c->pending = P_REQUEST;
	set_deadline(v, c, v->connect_timeout_ns);
	rx_enqueue(v, c);
}

static void accept_all(struct virtio_vsock *v)
{
	for (;;) {
		int fd = vsock_uds_accept(v->listen_fd);
		if (fd == -EAGAIN || fd == -EWOULDBLOCK)
			return;
		if (fd == -EMFILE || fd == -ENFILE || fd == -ENOBUFS || fd == -ENOMEM) {
			/* Level-triggered: stop watching until a connection frees an fd. */
			struct epoll_event ev = { .events = 0, .data.u64 = TAG_LISTEN };
			log_warn("virtio-vsock: cannot accept: %s", strerror(-fd));
			if (epoll_ctl(v->epfd, EPOLL_CTL_MOD, v->listen_fd, &ev) == 0)
				v->listen_paused = true;
			return;
		}
		if (fd < 0)
			continue; /* ECONNABORTED and the like: that one is gone */
		struct vsock_conn *c = conn_new(v, fd, VSOCK_HANDSHAKE);
		if (!c) {
			v->stats.host_refused++;
			close(fd);
			continue;
		}
		set_deadline(v, c, v->handshake_timeout_ns);
	}
}

static void conn_event(struct virtio_vsock *v, struct vsock_conn *c, uint32_t events)
{
	if (c->state == VSOCK_HANDSHAKE) {
		handshake(v, c, events);
		return;
	}
	if (c->state == VSOCK_DRAINING) {
		/* Only the buffer is left to write: a host that hung up or failed reads no more. */
		if (events & (EPOLLERR | EPOLLHUP))
			conn_free(v, c);
		else if (events & EPOLLOUT)
			flush(v, c);
		return;
	}
	if (c->fd < 0)
		return;
	if (events & EPOLLERR) {
		conn_reset(v, c);
		return;
	}
	if (events & EPOLLHUP)
		c->host_hup = true;
	if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP)) {
		c->host_readable = true;
		if (c->host_hup && (c->guest_shut & VSOCK_SHUTDOWN_RCV)) {
			conn_reset(v, c); /* nobody left to read from or to */
			return;
		}
	}
	if ((events & (EPOLLOUT | EPOLLHUP)) && c->buf_len && !flush(v, c))
		return;
	if (rx_wants(c))
		rx_enqueue(v, c);
}

static void timer_tick(struct virtio_vsock *v)
{
	uint64_t n, now = now_ns();
	bool any = false;

	if (read(v->timer_fd, &n, sizeof(n)) < 0 && errno != EAGAIN)
		return;
	for (unsigned int i = 0; i < v->max_conns; i++) {
		struct vsock_conn *c = &v->conn[i];
		if (c->state == VSOCK_FREE || !c->deadline_ns)
			continue;
		if (now >= c->deadline_ns && c->buf_len &&
		    (c->state == VSOCK_ESTABLISHED || c->state == VSOCK_DRAINING)) {
			/*
			 * A Unix socket signals EPOLLOUT only once 3/4 of its send buffer is
			 * free: a slow host may have taken some without one. Room is progress.
			 */
			flush(v, c);
			if (c->state == VSOCK_FREE || !c->deadline_ns)
				continue;
		}
		if (now < c->deadline_ns) {
			any = true;
			continue;
		}
		log_debug("virtio-vsock: connection host port %u guest port %u timed out",
			  c->host_port, c->guest_port);
		if (c->state == VSOCK_HANDSHAKE)
			v->stats.host_refused++;
		c->deadline_ns = 0;
		conn_reset(v, c);
	}
	if (!any)
		timer_set(v, false);
}

static void on_ready(void *opaque, uint32_t events)
{
	struct virtio_vsock *v = opaque;
	struct epoll_event ev[64];
	int n;

	pthread_mutex_lock(&v->dev.lock);
	n = epoll_wait(v->epfd, ev, 64, 0);
	for (int i = 0; i < n; i++) {
		uint32_t tag = (uint32_t)ev[i].data.u64, gen = (uint32_t)(ev[i].data.u64 >> 32);
		if (tag == TAG_LISTEN)
			accept_all(v);
		else if (tag == TAG_TIMER)
			timer_tick(v);
		else if (tag < v->max_conns && v->conn[tag].gen == gen &&
			 v->conn[tag].state != VSOCK_FREE)
			conn_event(v, &v->conn[tag], ev[i].events);
	}
	run(v);
	pthread_mutex_unlock(&v->dev.lock);
}

/* ---- the event queue ---- */

/* Sends the owed TRANSPORT_RESET if the driver is live and has an event buffer posted. */
static void event_send(struct virtio_vsock *v)
{
	struct virtio_dev *d = &v->dev;
	struct virtq *q = &d->q[VSOCK_EVQ];
	struct virtq_chain *c = &v->ev_chain;
	uint8_t ev[VSOCK_EVENT_SIZE] = { VSOCK_EVENT_TRANSPORT_RESET, 0, 0, 0 }; /* le32 */
	int r;

	if (!v->reset_event || !virtio_dev_live(d) || !q->ready)
		return;
	r = virtq_pop(q, d->mem, c);
	if (r == 0 && virtq_rearm(q, d->mem))
		r = virtq_pop(q, d->mem, c);
	if (r < 0) {
		broken(v, "malformed event queue chain");
		return;
	}
	if (r == 0)
		return; /* the driver's next event buffer comes with a kick */
	if (c->write_len < VSOCK_EVENT_SIZE) {
		broken(v, "event buffer smaller than an event");
		return;
	}
	virtq_iov_write(c->iov + c->nread, c->nwrite, 0, ev, sizeof(ev));
	v->reset_event = false;
	virtio_dev_complete(d, VSOCK_EVQ, c->head, sizeof(ev));
}

/* ---- virtio device ops ---- */

static void vsock_notify(struct virtio_dev *d, unsigned int q)
{
	struct virtio_vsock *v = d->priv;

	if (q == VSOCK_TXQ)
		tx_process(v);
	else if (q == VSOCK_EVQ)
		event_send(v);
	/* New rx buffers, or replies the tx packets asked for. */
	run(v);
}

/* Live (again): a reset owed since a restore goes out now if an event buffer waits. */
static void vsock_activate(struct virtio_dev *d)
{
	event_send(d->priv);
}

/*
 * A held rx buffer is the driver's again: the saved queue offers it anew, instead of
 * the restored device owing a buffer it never had.
 */
static int vsock_quiesce(struct virtio_dev *d)
{
	struct virtio_vsock *v = d->priv;

	if (v->rx_held) {
		virtq_unpop(&d->q[VSOCK_RXQ], 1);
		v->rx_held = false;
	}
	return 0;
}

static void vsock_config_read(struct virtio_dev *d, uint32_t off, void *data, uint32_t len)
{
	struct virtio_vsock *v = d->priv;
	uint64_t cid = htole64(v->cid);

	memcpy(data, (uint8_t *)&cid + off, len);
}

static bool vsock_reset(struct virtio_dev *d)
{
	struct virtio_vsock *v = d->priv;

	conns_clear(v);
	/* The driver probes afresh after a reset: it has no sockets of before to reset. */
	v->reset_event = false;
	return true;
}

static const struct virtio_dev_ops vsock_ops = {
	.name = "virtio-vsock",
	.device_id = VIRTIO_ID_VSOCK,
	/* No socket-type bits: stream only, which needs none (5.10.3). */
	.features = (1ULL << VIRTIO_RING_F_INDIRECT_DESC) | (1ULL << VIRTIO_RING_F_EVENT_IDX),
	.num_queues = 3,
	.queue_max = VSOCK_QUEUE_SIZE,
	.config_size = 8,
	.config_read = vsock_config_read,
	.notify = vsock_notify,
	.activate = vsock_activate,
	.reset = vsock_reset,
	.quiesce = vsock_quiesce,
};

/* Each connection holds one fd: make sure a full table does not run into RLIMIT_NOFILE. */
static void raise_fd_limit(void)
{
	struct rlimit rl;
	rlim_t want = VSOCK_MAX_CONNS + 256;

	if (getrlimit(RLIMIT_NOFILE, &rl) || rl.rlim_cur >= want)
		return;
	rl.rlim_cur = rl.rlim_max < want ? rl.rlim_max : want;
	if (setrlimit(RLIMIT_NOFILE, &rl) == 0)
		log_debug("virtio-vsock: raised the open-file limit to %llu",
			  (unsigned long long)rl.rlim_cur);
}

int virtio_vsock_init(struct virtio_vsock *v, const struct guest_mem *mem, struct loop *loop,
		      uint64_t cid, const char *uds_path, const char **why)
{
	struct epoll_event ev = { .events = EPOLLIN };
	int r;

	memset(v, 0, sizeof(*v));
	v->listen_fd = v->epfd = v->timer_fd = -1;
	*why = "bad argument";
	if (cid < VSOCK_CID_MIN || cid > VSOCK_CID_MAX || strlen(uds_path) >= sizeof(v->path))
		return -EINVAL;
	v->cid = cid;
	memcpy(v->path, uds_path, strlen(uds_path) + 1);
	v->loop = loop;
	v->max_conns = VSOCK_MAX_CONNS;
	v->handshake_timeout_ns = 5000000000ULL;
	v->connect_timeout_ns = 5000000000ULL;
	v->close_timeout_ns = 5000000000ULL;
	v->tick_ns = 100000000ULL;
	v->next_port = VSOCK_EPHEMERAL_BASE;
	v->rx_head = v->rx_tail = -1;
	for (unsigned int i = 0; i < VSOCK_HASH_SIZE; i++)
		v->hash[i] = -1;
	*why = "out of memory";
	v->conn = calloc(VSOCK_MAX_CONNS, sizeof(*v->conn));
	if (!v->conn)
		return -ENOMEM;
	for (unsigned int i = 0; i < VSOCK_MAX_CONNS; i++)
		v->conn[i].fd = -1;
	raise_fd_limit();
	*why = "cannot create an epoll set or timer";
	v->epfd = epoll_create1(EPOLL_CLOEXEC);
	v->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (v->epfd < 0 || v->timer_fd < 0) {
		r = -errno;
		goto fail;
	}
	ev.data.u64 = TAG_TIMER;
	if (epoll_ctl(v->epfd, EPOLL_CTL_ADD, v->timer_fd, &ev) < 0) {
		r = -errno;
		goto fail;
	}
	r = vsock_uds_listen(uds_path, why);
	if (r < 0)
		goto fail;
	v->listen_fd = r;
	ev.data.u64 = TAG_LISTEN;
	*why = "cannot watch the listening socket";
	if (epoll_ctl(v->epfd, EPOLL_CTL_ADD, v->listen_fd, &ev) < 0) {
		r = -errno;
		goto fail_unlink;
	}
	if ((r = loop_add(loop, v->epfd, EPOLLIN, on_ready, v)) < 0)
		goto fail_unlink;
	virtio_dev_init(&v->dev, &vsock_ops, v, mem);
	return 0;
fail_unlink:
	unlink(v->path);
fail:
	if (v->listen_fd >= 0)
		close(v->listen_fd);
	if (v->epfd >= 0)
		close(v->epfd);
	if (v->timer_fd >= 0)
		close(v->timer_fd);
	free(v->conn);
	v->conn = NULL;
	return r;
}

void virtio_vsock_destroy(struct virtio_vsock *v)
{
	if (!v->conn)
		return;
	pthread_mutex_lock(&v->dev.lock);
	conns_clear(v);
	pthread_mutex_unlock(&v->dev.lock);
	loop_del(v->loop, v->epfd);
	close(v->listen_fd);
	close(v->epfd);
	close(v->timer_fd);
	unlink(v->path);
	free(v->conn);
	v->conn = NULL;
}

/* ---- snapshot state ---- */

int virtio_vsock_save(struct virtio_vsock *v, struct vmstate_writer *w)
{
	pthread_mutex_lock(&v->dev.lock);
	vmstate_put_u64(w, v->cid);
	vmstate_put_bool(w, v->reset_event);
	pthread_mutex_unlock(&v->dev.lock);
	return 0;
}

int virtio_vsock_restore(struct virtio_vsock *v, struct vmstate_cursor *c, char *err, size_t errlen)
{
	struct virtio_dev *d = &v->dev;
	uint64_t cid;
	int r = 0;

	pthread_mutex_lock(&d->lock);
	cid = vmstate_get_u64(c);
	vmstate_get_bool(c); /* owed or not before, a reset is owed now */
	if (c->error) {
		r = virtio_state_refuse(d, err, errlen,
					"virtio-vsock state truncated or malformed");
	} else if (vmstate_cursor_done(c)) {
		r = virtio_state_refuse(d, err, errlen,
					"state has %llu byte(s) past the end of this version's",
					(unsigned long long)(c->len - c->off));
	} else if (cid < VSOCK_CID_MIN || cid > VSOCK_CID_MAX) {
		r = virtio_state_refuse(d, err, errlen,
					"guest CID %llu is reserved or out of range",
					(unsigned long long)cid);
	} else {
		if (cid != v->cid)
			log_info("virtio-vsock: guest CID %llu, %llu in the snapshot: the guest "
				 "reads it again at the transport reset",
				 (unsigned long long)v->cid, (unsigned long long)cid);
		/*
		 * Host sockets stayed with the old process. Whatever connected to this one
		 * before the restore (the listener is up since set-up) is dropped too.
		 */
		conns_clear(v);
		v->reset_event = true;
	}
	pthread_mutex_unlock(&d->lock);
	return r;
}
