/*
 * virtio-net device: transmit chains go to the backend, frames from the backend go into
 * the driver's receive chains (several per frame with mergeable buffers). The device pulls
 * from the backend only while the driver has buffers posted, so a driver that posts none
 * stalls its own receive path and nothing else. The control queue answers the driver's
 * commands; the only one offered is the acknowledgement of an announcement request.
 */
#include "virtio/net.h"
#include "core/log.h"
#include "virtio/net_gso.h"
#include "virtio/virtio.h"
#include "vmstate/vmstate.h"

#include <errno.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

/* Frames moved per wake-up before the loop gets to serve other fds (then kick_fd). */
#define RX_BUDGET 256
#define TX_BUDGET 256
#define CTRL_BUDGET 64

/*
 * What the device does itself for a backend without virtio-net headers (user-mode
 * networking): the transmit checksum and TCP segmentation (net_gso.h). QEMU offers none to
 * such a backend, so its guest checksums and segments every frame on its own CPU.
 */
#define SOFT_OFFLOADS \
	(NET_F(VIRTIO_NET_F_CSUM) | NET_F(VIRTIO_NET_F_HOST_TSO4) | NET_F(VIRTIO_NET_F_HOST_TSO6))

/* A control command's header: class and command, one byte each (5.1.6.5). */
#define CTRL_HDR_LEN 2

/* What this device can ever offer; the backend narrows the offloads. */
#define NET_OFFLOADS                                                       \
	(NET_F(VIRTIO_NET_F_CSUM) | NET_F(VIRTIO_NET_F_GUEST_CSUM) |       \
	 NET_F(VIRTIO_NET_F_GUEST_TSO4) | NET_F(VIRTIO_NET_F_GUEST_TSO6) | \
	 NET_F(VIRTIO_NET_F_GUEST_ECN) | NET_F(VIRTIO_NET_F_HOST_TSO4) |   \
	 NET_F(VIRTIO_NET_F_HOST_TSO6) | NET_F(VIRTIO_NET_F_HOST_ECN))

/* Logs the 1st, 2nd, 4th, 8th... occurrence: a misbehaving guest cannot flood the log. */
static void note(const struct virtio_net *n, unsigned long long count, const char *what)
{
	if (count && !(count & (count - 1)))
		log_warn("%s: %s (%llu so far)", n->ops.name, what, count);
}

/* Comes back through kick_fd once the loop has served its other fds. */
static void reschedule(struct virtio_net *n)
{
	uint64_t one = 1;

	if (write(n->kick_fd, &one, sizeof(one)) < 0)
		log_debug("%s: cannot reschedule", n->ops.name);
}

/* ---- receive ---- */

static int rx_pop(void *opaque, struct virtq_chain *c)
{
	struct virtio_net *n = opaque;

	return virtq_pop(&n->dev.q[VIRTIO_NET_RXQ], n->dev.mem, c);
}

/*
 * Reads the next frame into rx_buf and fixes its header for the driver. Returns 1 when a
 * frame waits, 0 when the backend has none, -1 when the backend failed (stop reading).
 */
static int rx_read(struct virtio_net *n)
{
	struct net_backend *be = n->be;
	struct net_hdr h;
	ssize_t r;

	for (;;) {
		if (be->vnet_hdr) {
			r = net_backend_recv(be, n->rx_buf, sizeof(n->rx_buf));
		} else {
			r = net_backend_recv(be, n->rx_buf + NET_HDR_LEN,
					     sizeof(n->rx_buf) - NET_HDR_LEN);
			if (r >= 0) {
				memset(n->rx_buf, 0, NET_HDR_LEN);
				r += NET_HDR_LEN;
			}
		}
		if (r == -EAGAIN)
			return 0;
		if (r < 0 && r != -EMSGSIZE) {
			log_warn("%s: cannot read from %s: %s; receive stopped", n->ops.name,
				 be->name, strerror((int)-r));
			return -1;
		}
		if (r == -EMSGSIZE || r < NET_HDR_LEN + NET_ETH_HLEN ||
		    (size_t)r > NET_HDR_LEN + NET_MAX_FRAME) {
			note(n, ++n->stats.rx_dropped, "received frame of a bad size dropped");
			continue;
		}
		net_hdr_decode(n->rx_buf, &h);
		if (net_hdr_fix_rx(&h, n->rx_buf + NET_HDR_LEN, (size_t)r - NET_HDR_LEN,
				   n->dev.driver_features)) {
			note(n, ++n->stats.rx_dropped,
			     "received frame with offloads the driver did not accept dropped");
			continue;
		}
		net_hdr_encode(&h, n->rx_buf);
		n->rx_len = (size_t)r;
		return 1;
	}
}

/*
 * Places the waiting frame. Returns 1 when it left rx_buf (delivered or dropped), 0 when
 * the driver has not posted enough buffers yet, -1 when the device needs a reset.
 */
static int rx_place(struct virtio_net *n, bool *pushed)
{
	struct virtio_dev *d = &n->dev;
	struct virtq *q = &d->q[VIRTIO_NET_RXQ];
	bool mergeable = virtio_dev_has(d, VIRTIO_NET_F_MRG_RXBUF);
	unsigned int last = ~0u;
	int r;

	for (;;) {
		r = net_rx_fill(rx_pop, n, &n->rx_first, &n->rx_scratch, mergeable, q->size,
				n->rx_buf, n->rx_buf + NET_HDR_LEN, n->rx_len - NET_HDR_LEN,
				&n->rx_out);
		if (r != NET_RX_NO_BUFFERS)
			break;
		/*
		 * Not enough buffers. With EVENT_IDX, ask for a kick at the first buffer beyond
		 * those seen (published while they are still popped), then look once more:
		 * stop only when no buffer arrived since the last look.
		 */
		bool retry = q->event_idx && n->rx_out.n != last;
		if (q->event_idx)
			virtq_set_avail_event(q, d->mem);
		virtq_unpop(q, (uint16_t)n->rx_out.n);
		if (!retry)
			return 0;
		last = n->rx_out.n;
	}
	if (r == NET_RX_DONE) {
		if (virtq_push_batch(q, d->mem, n->rx_out.heads, n->rx_out.lens, n->rx_out.n)) {
			virtio_dev_needs_reset(d, "used ring write failed");
			return -1;
		}
		*pushed = true;
		n->stats.rx_frames++;
		n->stats.rx_bytes += n->rx_len - NET_HDR_LEN;
	} else if (r == NET_RX_TOO_BIG) {
		virtq_unpop(q, (uint16_t)n->rx_out.n);
		note(n, ++n->stats.rx_dropped, "received frame larger than the driver's buffers");
	} else {
		virtio_dev_needs_reset(d, "malformed receive chain");
		n->rx_len = 0;
		return -1;
	}
	n->rx_len = 0;
	return 1;
}

/*
 * Is a receive buffer posted? Looked at before reading from the backend, so that a driver
 * with no buffers leaves its frames in the backend. With EVENT_IDX, when there is none,
 * ask for a kick at the next one, then look once more (a buffer may have come meanwhile).
 */
static bool rx_have_buffer(struct virtio_net *n)
{
	struct virtio_dev *d = &n->dev;
	struct virtq *q = &d->q[VIRTIO_NET_RXQ];

	return virtq_pending(q, d->mem) || virtq_rearm(q, d->mem);
}

/* Moves frames from the backend to the driver while it has buffers. Lock held. */
static void rx_drain(struct virtio_net *n)
{
	struct virtio_dev *d = &n->dev;
	struct virtq *q = &d->q[VIRTIO_NET_RXQ];
	bool pushed = false, stalled = false;
	unsigned long long before = n->stats.rx_frames;
	int r;

	if (!virtio_dev_live(d) || !q->ready)
		return;
	for (unsigned int budget = RX_BUDGET;; budget--) {
		if (budget == 0) {
			/* Edge-triggered: nobody else will call again for the frames left. */
			reschedule(n);
			break;
		}
		if (!n->rx_len) {
			if (!rx_have_buffer(n)) {
				stalled = true;
				break;
			}
			if (rx_read(n) <= 0)
				break; /* the backend has nothing (or failed) */
		}
		r = rx_place(n, &pushed);
		if (r <= 0) {
			stalled = r == 0;
			break;
		}
	}
	/* A new stall: the first, or the first since buffers came and frames moved. */
	if (stalled && (!n->rx_stalled || n->stats.rx_frames != before))
		n->stats.rx_stalls++;
	n->rx_stalled = stalled;
	if (pushed && virtq_should_signal(q, d->mem) && d->signal_queue)
		d->signal_queue(d, VIRTIO_NET_RXQ);
}

static void on_backend(void *opaque, uint32_t events)
{
	struct virtio_net *n = opaque;

	pthread_mutex_lock(&n->dev.lock);
	rx_drain(n);
	pthread_mutex_unlock(&n->dev.lock);
}

/* ---- transmit ---- */

static int soft_emit(void *opaque, const uint8_t *frame, size_t len)
{
	struct virtio_net *n = opaque;
	struct iovec v = { (void *)frame, len };

	return net_backend_send(n->be, &v, 1);
}

/*
 * A frame with offloads for a backend without virtio-net headers: the device does what
 * it offered (SOFT_OFFLOADS), on a copy of the frame, and sends the frames that makes.
 */
static int soft_offload(struct virtio_net *n, const struct net_hdr *h, unsigned int nf, size_t len)
{
	size_t at = 0;

	for (unsigned int i = 0; i < nf; i++) {
		memcpy(n->tx_lin + at, n->tx_iov[1 + i].iov_base, n->tx_iov[1 + i].iov_len);
		at += n->tx_iov[1 + i].iov_len;
	}
	int r = net_gso_segment(h, n->tx_lin, len, n->tx_seg, sizeof(n->tx_seg), soft_emit, n);
	return r < 0 ? r : 0;
}

/* Sends one popped chain, or drops it. false: the chain is malformed (device reset). */
static bool tx_one(struct virtio_net *n)
{
	struct virtq_chain *c = &n->tx_chain;
	struct net_hdr h;
	unsigned int nf;
	long len;
	int r;

	/* Transmit buffers are device-readable only (5.1.6.2). */
	if (c->nwrite)
		return false;
	len = net_tx_split(c->iov, c->nread, n->tx_hdr, n->tx_iov + 1, &nf);
	if (len == -EBADMSG)
		return false;
	if (len < 0) {
		note(n, ++n->stats.tx_dropped, "transmitted frame of a bad size dropped");
		return true;
	}
	net_hdr_decode(n->tx_hdr, &h);
	if (net_hdr_check_tx(&h, n->dev.driver_features, (size_t)len)) {
		note(n, ++n->stats.tx_dropped, "transmitted frame with a bad header dropped");
		return true;
	}
	if (n->be->vnet_hdr) {
		net_hdr_encode(&h, n->tx_hdr);
		n->tx_iov[0] = (struct iovec){ n->tx_hdr, NET_HDR_LEN };
		r = net_backend_send(n->be, n->tx_iov, nf + 1);
	} else if ((h.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) || h.gso_type) {
		r = soft_offload(n, &h, nf, (size_t)len);
	} else {
		r = net_backend_send(n->be, n->tx_iov + 1, nf);
	}
	if (r < 0) {
		unsigned long long e = ++n->stats.tx_errors;
		if (!(e & (e - 1)))
			log_warn("%s: %s refused a frame: %s (%llu so far)", n->ops.name,
				 n->be->name, strerror(-r), n->stats.tx_errors);
		return true;
	}
	n->stats.tx_frames++;
	n->stats.tx_bytes += (unsigned long long)len;
	return true;
}

static void tx_process(struct virtio_net *n)
{
	struct virtio_dev *d = &n->dev;
	struct virtq *q = &d->q[VIRTIO_NET_TXQ];
	unsigned int budget = TX_BUDGET;
	bool pushed = false;
	int r;

	for (;;) {
		while ((r = virtq_pop(q, d->mem, &n->tx_chain)) == 1) {
			if (!tx_one(n)) {
				virtio_dev_needs_reset(d, "malformed transmit chain");
				goto out;
			}
			if (virtq_push(q, d->mem, n->tx_chain.head, 0)) {
				virtio_dev_needs_reset(d, "used ring write failed");
				goto out;
			}
			pushed = true;
			if (--budget == 0) {
				/* A busy driver must not hold this thread: finish later. */
				reschedule(n);
				goto out;
			}
		}
		if (r < 0) {
			virtio_dev_needs_reset(d, "malformed transmit ring");
			goto out;
		}
		if (!virtq_rearm(q, d->mem))
			break;
	}
out:
	if (pushed && virtq_should_signal(q, d->mem) && d->signal_queue)
		d->signal_queue(d, VIRTIO_NET_TXQ);
}

/* ---- control ---- */

/*
 * Carries out one command and returns its ack. Only what the offered features let a
 * driver send succeeds: the acknowledgement (no data) of a pending announcement; one with
 * nothing pending fails, as QEMU's does. Every other class or command (receive filters,
 * MAC table, VLANs, queue pairs: none offered) fails, so a driver never believes a
 * setting took effect that did not.
 */
static uint8_t ctrl_command(struct virtio_net *n, uint8_t class, uint8_t cmd, uint64_t data_len)
{
	unsigned long long e;

	if (class == VIRTIO_NET_CTRL_ANNOUNCE && cmd == VIRTIO_NET_CTRL_ANNOUNCE_ACK &&
	    data_len == 0 && n->announce && virtio_dev_has(&n->dev, VIRTIO_NET_F_GUEST_ANNOUNCE)) {
		n->announce = false;
		return VIRTIO_NET_OK;
	}
	e = ++n->stats.ctrl_refused;
	if (!(e & (e - 1)))
		log_warn("%s: control command class %u command %u with %llu data bytes answered "
			 "VIRTIO_NET_ERR (%llu so far)",
			 n->ops.name, class, cmd, (unsigned long long)data_len, e);
	return VIRTIO_NET_ERR;
}

/*
 * Answers one popped control chain. false: malformed (no 2-byte header to read, or no
 * byte to write the ack into). Only the header is read and only the ack written, so the
 * data's length needs no bound beyond what virtq_pop() checked.
 */
static bool ctrl_one(struct virtio_net *n)
{
	struct virtq_chain *c = &n->ctrl_chain;
	uint8_t hdr[CTRL_HDR_LEN], ack;

	if (c->read_len < CTRL_HDR_LEN || c->write_len < 1)
		return false;
	virtq_iov_read(c->iov, c->nread, 0, hdr, sizeof(hdr));
	ack = ctrl_command(n, hdr[0], hdr[1], c->read_len - CTRL_HDR_LEN);
	/* The ack is the first device-writable byte; results, if any, would follow it. */
	virtq_iov_write(c->iov + c->nread, c->nwrite, 0, &ack, 1);
	return true;
}

static void ctrl_process(struct virtio_net *n)
{
	struct virtio_dev *d = &n->dev;
	struct virtq *q = &d->q[VIRTIO_NET_CTRLQ];
	unsigned int budget = CTRL_BUDGET;
	bool pushed = false;
	int r;

	for (;;) {
		while ((r = virtq_pop(q, d->mem, &n->ctrl_chain)) == 1) {
			if (!ctrl_one(n)) {
				virtio_dev_needs_reset(d, "malformed control chain");
				goto out;
			}
			if (virtq_push(q, d->mem, n->ctrl_chain.head, 1)) {
				virtio_dev_needs_reset(d, "used ring write failed");
				goto out;
			}
			pushed = true;
			if (--budget == 0) {
				/* A driver that keeps adding commands must not hold this thread. */
				reschedule(n);
				goto out;
			}
		}
		if (r < 0) {
			virtio_dev_needs_reset(d, "malformed control ring");
			goto out;
		}
		if (!virtq_rearm(q, d->mem))
			break;
	}
out:
	if (pushed && virtq_should_signal(q, d->mem) && d->signal_queue)
		d->signal_queue(d, VIRTIO_NET_CTRLQ);
}

void virtio_net_announce(struct virtio_net *n)
{
	struct virtio_dev *d = &n->dev;

	pthread_mutex_lock(&d->lock);
	if (!virtio_dev_live(d)) {
		log_debug("%s: no driver running: nothing to announce", n->ops.name);
	} else if (!virtio_dev_has(d, VIRTIO_NET_F_GUEST_ANNOUNCE)) {
		log_debug("%s: the driver did not negotiate GUEST_ANNOUNCE: the guest is not asked "
			  "to announce itself",
			  n->ops.name);
	} else {
		n->announce = true;
		virtio_dev_config_changed(d);
		log_debug("%s: asked the guest to announce itself", n->ops.name);
	}
	pthread_mutex_unlock(&d->lock);
}

/* Work left over by a full budget, any queue. */
static void on_kick(void *opaque, uint32_t events)
{
	struct virtio_net *n = opaque;
	uint64_t v;

	if (read(n->kick_fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		return;
	pthread_mutex_lock(&n->dev.lock);
	if (virtio_dev_live(&n->dev)) {
		if (n->dev.q[VIRTIO_NET_CTRLQ].ready)
			ctrl_process(n);
		if (virtio_dev_live(&n->dev) && n->dev.q[VIRTIO_NET_TXQ].ready)
			tx_process(n);
		rx_drain(n);
	}
	pthread_mutex_unlock(&n->dev.lock);
}

/* ---- device ops ---- */

static void net_notify(struct virtio_dev *d, unsigned int qi)
{
	struct virtio_net *n = d->priv;

	if (qi == VIRTIO_NET_TXQ)
		tx_process(n);
	else if (qi == VIRTIO_NET_RXQ)
		rx_drain(n); /* new buffers: resume a stalled receive */
	else if (qi == VIRTIO_NET_CTRLQ)
		ctrl_process(n);
}

static void net_activate(struct virtio_dev *d)
{
	struct virtio_net *n = d->priv;
	int r = net_backend_set_offloads(n->be, d->driver_features);

	if (r)
		log_warn("%s: %s cannot take the negotiated offloads: %s", n->ops.name, n->be->name,
			 strerror(-r));
	/* Frames may have arrived before DRIVER_OK; their wake-up is gone (edge-triggered). */
	rx_drain(n);
	tx_process(n);
}

static bool net_reset(struct virtio_dev *d)
{
	struct virtio_net *n = d->priv;

	n->rx_len = 0;
	n->rx_stalled = false;
	n->announce = false;
	net_backend_set_offloads(n->be, 0);
	return true;
}

static void net_config_read(struct virtio_dev *d, uint32_t off, void *data, uint32_t len)
{
	struct virtio_net *n = d->priv;
	uint8_t cfg[VIRTIO_NET_CONFIG_SIZE] = { 0 };

	memcpy(cfg, n->mac, 6);
	/* status, le16. S_ANNOUNCE only to a driver that can ack it (a restore brings the bit). */
	cfg[6] = VIRTIO_NET_S_LINK_UP;
	if (n->announce && virtio_dev_has(d, VIRTIO_NET_F_GUEST_ANNOUNCE))
		cfg[6] |= VIRTIO_NET_S_ANNOUNCE;
	cfg[8] = 1; /* max_virtqueue_pairs, le16 */
	cfg[10] = (uint8_t)n->mtu;
	cfg[11] = (uint8_t)(n->mtu >> 8);
	memcpy(data, cfg + off, len);
}

int virtio_net_init(struct virtio_net *n, const struct guest_mem *mem, const char *name,
		    struct net_backend *be, const uint8_t mac[6], uint16_t mtu, struct loop *loop)
{
	uint64_t f = NET_F(VIRTIO_RING_F_INDIRECT_DESC) | NET_F(VIRTIO_RING_F_EVENT_IDX) |
		     NET_F(VIRTIO_NET_F_MAC) | NET_F(VIRTIO_NET_F_STATUS) |
		     NET_F(VIRTIO_NET_F_MRG_RXBUF) | NET_F(VIRTIO_NET_F_CTRL_VQ) |
		     NET_F(VIRTIO_NET_F_GUEST_ANNOUNCE) |
		     (be->vnet_hdr ? be->features & NET_OFFLOADS : SOFT_OFFLOADS);
	int r;

	if (mtu)
		f |= NET_F(VIRTIO_NET_F_MTU);
	n->ops = (struct virtio_dev_ops){
		.name = name,
		.device_id = VIRTIO_ID_NET,
		.features = f,
		/* Snapshots from before the software offloads restore without them. */
		.features_optional = be->vnet_hdr ? 0 : SOFT_OFFLOADS,
		.num_queues = 3,
		.queue_max = VIRTIO_NET_QUEUE_SIZE,
		.config_size = VIRTIO_NET_CONFIG_SIZE,
		.config_read = net_config_read,
		.notify = net_notify,
		.activate = net_activate,
		.reset = net_reset,
	};
	n->be = be;
	n->loop = loop;
	memcpy(n->mac, mac, 6);
	n->mtu = mtu;
	n->rx_len = 0;
	n->rx_stalled = false;
	n->announce = false;
	memset(&n->stats, 0, sizeof(n->stats));
	virtio_dev_init(&n->dev, &n->ops, n, mem);
	n->kick_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (n->kick_fd < 0)
		return -errno;
	r = loop_add(loop, n->kick_fd, EPOLLIN, on_kick, n);
	if (r)
		goto fail;
	r = loop_add(loop, be->poll_fd, EPOLLIN | EPOLLET, on_backend, n);
	if (r) {
		loop_del(loop, n->kick_fd);
		goto fail;
	}
	return 0;
fail:
	close(n->kick_fd);
	n->kick_fd = -1;
	return r;
}

void virtio_net_destroy(struct virtio_net *n)
{
	loop_del(n->loop, n->be->poll_fd);
	loop_del(n->loop, n->kick_fd);
	close(n->kick_fd);
	net_backend_close(n->be);
	n->be = NULL;
}

/* ---- snapshot state ---- */

#define STATE_ANNOUNCE 0x01 /* flags: an announcement not acked yet */

int virtio_net_save(struct virtio_net *n, struct vmstate_writer *w)
{
	pthread_mutex_lock(&n->dev.lock);
	vmstate_put(w, n->mac, sizeof(n->mac));
	vmstate_put_u16(w, n->mtu);
	vmstate_put_u8(w, n->announce ? STATE_ANNOUNCE : 0);
	pthread_mutex_unlock(&n->dev.lock);
	return 0;
}

int virtio_net_restore(struct virtio_net *n, struct vmstate_cursor *c, char *err, size_t errlen)
{
	struct virtio_dev *d = &n->dev;
	uint8_t mac[6];
	uint16_t mtu;
	uint8_t flags;
	int r = 0;

	pthread_mutex_lock(&d->lock);
	vmstate_get(c, mac, sizeof(mac));
	mtu = vmstate_get_u16(c);
	flags = vmstate_get_u8(c);
	if (c->error) {
		r = virtio_state_refuse(d, err, errlen, "virtio-net state truncated");
	} else if (vmstate_cursor_done(c)) {
		r = virtio_state_refuse(d, err, errlen,
					"state has %llu byte(s) past the end of this version's",
					(unsigned long long)(c->len - c->off));
	} else if (flags & ~STATE_ANNOUNCE) {
		r = virtio_state_refuse(d, err, errlen, "flags 0x%02x have undefined bits", flags);
	} else if (mtu != n->mtu) {
		r = virtio_state_refuse(d, err, errlen, "MTU %u in the snapshot, %u configured",
					mtu, n->mtu);
	} else if (memcmp(mac, n->mac, sizeof(mac)) && n->keep_mac) {
		/* Linux reads the MAC at probe: the running guest goes on with its old one. */
		log_info("%s: clone: the device now reports a new MAC; the guest uses its old one "
			 "until it reads the device's configuration again",
			 n->ops.name);
	} else if (memcmp(mac, n->mac, sizeof(mac))) {
		log_info("%s: MAC %02x:%02x:%02x:%02x:%02x:%02x from the snapshot replaces the "
			 "configured one: the guest already uses it",
			 n->ops.name, mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]);
		memcpy(n->mac, mac, sizeof(mac));
	}
	if (!r)
		n->announce = flags & STATE_ANNOUNCE;
	pthread_mutex_unlock(&d->lock);
	return r;
}
