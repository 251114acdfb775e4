/*
 * virtio-pci modern transport: capabilities, the BAR's register regions, MSI-X
 * (table, PBA, masking, routes and irqfds) and ioeventfd kicks. Guest accesses of any
 * width at any offset are bounded here; protocol errors end in NEEDS_RESET.
 */
#include "virtio/pci.h"
#include "core/log.h"
#include "kvm/irq_routing.h"
#include "virtio/virtio.h"
#include "vmstate/vmstate.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define CAP_LEN 16	  /* struct virtio_pci_cap */
#define NOTIFY_CAP_LEN 20 /* + notify_off_multiplier */
#define CFG_CAP_LEN 20	  /* + pci_cfg_data */
#define CFG_CAP_BAR 4
#define CFG_CAP_OFFSET 8
#define CFG_CAP_LENGTH 12
#define CFG_CAP_DATA 16
#define MSIX_CAP_LEN 12
#define COMMON_SPAN 0x40 /* the common region as snapshotted: registers, then zeros */

static inline uint64_t get_le(const uint8_t *p, unsigned int n)
{
	uint64_t v = 0;

	for (unsigned int i = 0; i < n; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

static inline void put_le(uint8_t *p, unsigned int n, uint64_t v)
{
	for (unsigned int i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

uint32_t virtio_pci_class(uint32_t device_id)
{
	switch (device_id) {
	case VIRTIO_ID_NET:
		return 0x020000; /* network, Ethernet */
	case VIRTIO_ID_BLOCK:
		return 0x018000; /* mass storage, other */
	case VIRTIO_ID_CONSOLE:
		return 0x078000; /* simple communication, other */
	case VIRTIO_ID_RNG:
		return 0x00ff00; /* unclassified */
	default:
		return 0xff0000; /* fits no defined class */
	}
}

/* ---- MSI-X ---- */

static bool entry_masked(const struct virtio_pci *t, unsigned int v)
{
	return t->msix_table[v * MSIX_ENTRY_SIZE + MSIX_ENTRY_CTRL] & MSIX_CTRL_MASKED;
}

/*
 * Puts vector v's MSI route and irqfd in place unless they are (or failed, until the
 * guest rewrites the entry): on its first delivery, and at restore.
 */
static void route(struct virtio_pci *t, unsigned int v)
{
	const struct pci_platform *p = t->platform;
	struct virtio_pci_vector *x = &t->vec[v];
	const uint8_t *e = &t->msix_table[v * MSIX_ENTRY_SIZE];
	uint64_t addr = get_le(e, 8);
	uint32_t data = (uint32_t)get_le(e + 8, 4);

	if (!p)
		return;
	if (x->gsi >= 0 && x->fd >= 0 && p->routing && !x->route_ok && !x->route_failed) {
		int r = irq_routing_update_msi(p->routing, (uint32_t)x->gsi, addr, data);
		if (r) {
			log_warn("%s: cannot route MSI-X vector %u: %s", t->pci.name, v,
				 strerror(-r));
			x->route_failed = true;
		} else {
			x->route_ok = true;
		}
	}
	if (x->route_ok && !x->irqfd_bound && p->irqfd) {
		int r = p->irqfd(p, x->fd, (uint32_t)x->gsi, true);
		if (r) {
			log_warn("%s: cannot bind an irqfd to GSI %d: %s", t->pci.name, x->gsi,
				 strerror(-r));
			x->route_ok = false;
			x->route_failed = true;
		} else {
			x->irqfd_bound = true;
		}
	}
}

/* Sends vector v now: through its irqfd when the route and irqfd are in place. */
static void deliver(struct virtio_pci *t, unsigned int v)
{
	const struct pci_platform *p = t->platform;
	struct virtio_pci_vector *x = &t->vec[v];
	const uint8_t *e = &t->msix_table[v * MSIX_ENTRY_SIZE];
	uint64_t addr = get_le(e, 8);
	uint32_t data = (uint32_t)get_le(e + 8, 4);
	uint64_t one = 1;

	t->interrupts++;
	if (!p)
		return;
	route(t, v);
	if (x->route_ok && x->irqfd_bound && write(x->fd, &one, sizeof(one)) == sizeof(one))
		return;
	t->fallback_msis++;
	if (p->signal_msi)
		p->signal_msi(p, addr, data);
}

/* Vector v has an event: deliver it, or remember it in the PBA while masked. */
static void signal_vector(struct virtio_pci *t, uint16_t v)
{
	if (!t->msix_enabled || v >= t->nvec)
		return;
	if (t->msix_masked || entry_masked(t, v)) {
		t->pba |= 1ULL << v;
		return;
	}
	deliver(t, v);
}

/* Delivers what was held back while v (or the whole function) was masked. */
static void fire_pending(struct virtio_pci *t, unsigned int v)
{
	if (!(t->pba & (1ULL << v)) || !t->msix_enabled || t->msix_masked || entry_masked(t, v))
		return;
	t->pba &= ~(1ULL << v);
	deliver(t, v);
}

static void table_read(struct virtio_pci *t, uint32_t rel, uint8_t *data, uint32_t len)
{
	for (uint32_t i = 0; i < len; i++) {
		uint32_t o = rel + i;
		data[i] = o < t->nvec * MSIX_ENTRY_SIZE ? t->msix_table[o] : 0;
	}
}

static void table_write(struct virtio_pci *t, uint32_t rel, const uint8_t *data, uint32_t len)
{
	bool was_masked[VIRTIO_PCI_MAX_VECTORS];

	for (unsigned int v = 0; v < t->nvec; v++)
		was_masked[v] = entry_masked(t, v);
	for (uint32_t i = 0; i < len; i++) {
		uint32_t o = rel + i, v = o / MSIX_ENTRY_SIZE, f = o % MSIX_ENTRY_SIZE;
		if (v >= t->nvec)
			continue;
		if (f < MSIX_ENTRY_CTRL) {
			if (t->msix_table[o] != data[i]) {
				t->msix_table[o] = data[i];
				t->vec[v].route_ok = false;
				t->vec[v].route_failed = false;
			}
		} else if (f == MSIX_ENTRY_CTRL) {
			t->msix_table[o] = data[i] & MSIX_CTRL_MASKED; /* the rest is reserved */
		}
	}
	for (unsigned int v = 0; v < t->nvec; v++)
		if (was_masked[v] && !entry_masked(t, v))
			fire_pending(t, v);
}

/* The guest wrote MSI-X message control (under the bus lock). */
static void msix_control_written(struct virtio_pci *t)
{
	uint32_t ctl = pci_cfg_get(t->pci.cfg, t->msix_cap + 2u, 2);

	pthread_mutex_lock(&t->dev->lock);
	t->msix_enabled = ctl & MSIX_CONTROL_ENABLE;
	t->msix_masked = ctl & MSIX_CONTROL_MASKALL;
	for (unsigned int v = 0; v < t->nvec; v++)
		fire_pending(t, v);
	pthread_mutex_unlock(&t->dev->lock);
}

/* ---- interrupt hooks (called with dev->lock held) ---- */

static void signal_queue(struct virtio_dev *d, unsigned int q)
{
	struct virtio_pci *t = d->transport;

	if (!t->msix_enabled) {
		/* INTx is not implemented: the bit is all a driver polling ISR would see. */
		t->isr |= VIRTIO_ISR_QUEUE;
		return;
	}
	if (q < t->nq)
		signal_vector(t, t->queue_vector[q]);
}

static void signal_config(struct virtio_dev *d)
{
	struct virtio_pci *t = d->transport;

	t->isr |= VIRTIO_ISR_CONFIG;
	signal_vector(t, t->msix_config);
}

/* ---- common configuration ---- */

static struct virtq *selected(struct virtio_pci *t)
{
	return t->queue_select < t->nq ? &t->dev->q[t->queue_select] : NULL;
}

static void common_snapshot(struct virtio_pci *t, uint8_t *b)
{
	struct virtio_dev *d = t->dev;
	struct virtq *q = selected(t);
	uint64_t f = virtio_dev_features(d);

	memset(b, 0, COMMON_SPAN);
	put_le(b + VIRTIO_PCI_COMMON_DFSELECT, 4, t->device_feature_select);
	if (t->device_feature_select < 2)
		put_le(b + VIRTIO_PCI_COMMON_DF, 4, f >> (32 * t->device_feature_select));
	put_le(b + VIRTIO_PCI_COMMON_GFSELECT, 4, t->driver_feature_select);
	if (t->driver_feature_select < 2)
		put_le(b + VIRTIO_PCI_COMMON_GF, 4,
		       d->driver_features >> (32 * t->driver_feature_select));
	put_le(b + VIRTIO_PCI_COMMON_MSIX, 2, t->msix_config);
	put_le(b + VIRTIO_PCI_COMMON_NUMQ, 2, t->nq);
	b[VIRTIO_PCI_COMMON_STATUS] = virtio_dev_status(d);
	b[VIRTIO_PCI_COMMON_CFGGENERATION] = (uint8_t)d->config_generation;
	put_le(b + VIRTIO_PCI_COMMON_Q_SELECT, 2, t->queue_select);
	if (!q)
		return; /* a queue that does not exist reads as zeros */
	put_le(b + VIRTIO_PCI_COMMON_Q_SIZE, 2, q->size);
	put_le(b + VIRTIO_PCI_COMMON_Q_MSIX, 2, t->queue_vector[t->queue_select]);
	put_le(b + VIRTIO_PCI_COMMON_Q_ENABLE, 2, q->ready);
	put_le(b + VIRTIO_PCI_COMMON_Q_NOFF, 2, t->queue_select);
	put_le(b + VIRTIO_PCI_COMMON_Q_DESC, 8, q->desc_gpa);
	put_le(b + VIRTIO_PCI_COMMON_Q_AVAIL, 8, q->avail_gpa);
	put_le(b + VIRTIO_PCI_COMMON_Q_USED, 8, q->used_gpa);
}

static void transport_reset(struct virtio_pci *t)
{
	t->isr = 0;
	t->device_feature_select = t->driver_feature_select = 0;
	t->queue_select = 0;
	t->msix_config = VIRTIO_PCI_NO_VECTOR;
	for (unsigned int i = 0; i < VIRTIO_MAX_QUEUES; i++) {
		t->queue_vector[i] = VIRTIO_PCI_NO_VECTOR;
		if (i < t->nq)
			t->dev->q[i].size = t->dev->ops->queue_max;
	}
}

static uint16_t vector_or_none(struct virtio_pci *t, uint64_t v)
{
	return v < t->nvec ? (uint16_t)v : VIRTIO_PCI_NO_VECTOR;
}

/*
 * Queue layout registers change only while the queue is off and the device is not
 * live yet (sizes and addresses are fixed once the driver said DRIVER_OK).
 */
static struct virtq *configurable(struct virtio_pci *t)
{
	struct virtq *q = selected(t);

	if (!q || q->ready || (t->dev->status & VIRTIO_STATUS_DRIVER_OK))
		return NULL;
	return q;
}

static void common_apply(struct virtio_pci *t, uint32_t reg, uint64_t v)
{
	struct virtio_dev *d = t->dev;
	struct virtq *q;

	switch (reg) {
	case VIRTIO_PCI_COMMON_DFSELECT:
		t->device_feature_select = (uint32_t)v;
		break;
	case VIRTIO_PCI_COMMON_GFSELECT:
		t->driver_feature_select = (uint32_t)v;
		break;
	case VIRTIO_PCI_COMMON_GF:
		/* Features are fixed once FEATURES_OK is set. */
		if (t->driver_feature_select < 2 && !(d->status & VIRTIO_STATUS_FEATURES_OK)) {
			unsigned int shift = 32 * t->driver_feature_select;
			d->driver_features =
				(d->driver_features & ~(0xffffffffULL << shift)) | (v << shift);
		}
		break;
	case VIRTIO_PCI_COMMON_MSIX:
		t->msix_config = vector_or_none(t, v);
		break;
	case VIRTIO_PCI_COMMON_STATUS:
		virtio_dev_set_status(d, (uint8_t)v);
		if (v == 0)
			transport_reset(t);
		break;
	case VIRTIO_PCI_COMMON_Q_SELECT:
		t->queue_select = (uint16_t)v;
		break;
	case VIRTIO_PCI_COMMON_Q_SIZE:
		if ((q = configurable(t)))
			q->size = (uint16_t)v; /* checked when the queue is enabled */
		break;
	case VIRTIO_PCI_COMMON_Q_MSIX:
		if (selected(t))
			t->queue_vector[t->queue_select] = vector_or_none(t, v);
		break;
	case VIRTIO_PCI_COMMON_Q_ENABLE:
		/* Writing 0 is forbidden to drivers (a reset stops queues): ignored. */
		if (v == 1 && configurable(t))
			virtio_dev_enable_queue(d, t->queue_select);
		break;
	case VIRTIO_PCI_COMMON_Q_DESC:
		if ((q = configurable(t)))
			q->desc_gpa = v;
		break;
	case VIRTIO_PCI_COMMON_Q_AVAIL:
		if ((q = configurable(t)))
			q->avail_gpa = v;
		break;
	case VIRTIO_PCI_COMMON_Q_USED:
		if ((q = configurable(t)))
			q->used_gpa = v;
		break;
	default: /* read-only */
		break;
	}
}

/* Registers in address order, so a wide write applies them in a defined order. */
static const struct {
	uint8_t off, len;
} common_regs[] = {
	{ VIRTIO_PCI_COMMON_DFSELECT, 4 }, { VIRTIO_PCI_COMMON_DF, 4 },
	{ VIRTIO_PCI_COMMON_GFSELECT, 4 }, { VIRTIO_PCI_COMMON_GF, 4 },
	{ VIRTIO_PCI_COMMON_MSIX, 2 },	   { VIRTIO_PCI_COMMON_NUMQ, 2 },
	{ VIRTIO_PCI_COMMON_STATUS, 1 },   { VIRTIO_PCI_COMMON_CFGGENERATION, 1 },
	{ VIRTIO_PCI_COMMON_Q_SELECT, 2 }, { VIRTIO_PCI_COMMON_Q_SIZE, 2 },
	{ VIRTIO_PCI_COMMON_Q_MSIX, 2 },   { VIRTIO_PCI_COMMON_Q_ENABLE, 2 },
	{ VIRTIO_PCI_COMMON_Q_NOFF, 2 },   { VIRTIO_PCI_COMMON_Q_DESC, 8 },
	{ VIRTIO_PCI_COMMON_Q_AVAIL, 8 },  { VIRTIO_PCI_COMMON_Q_USED, 8 },
};

/*
 * Drivers use each register's natural width, but any width at any offset is
 * accepted: the write is merged into a snapshot of the registers and every register
 * it touched takes its merged value (so a 32-bit half of queue_desc keeps the other).
 */
static void common_access(struct virtio_pci *t, uint32_t rel, uint8_t *data, uint32_t len,
			  bool is_write)
{
	uint8_t b[COMMON_SPAN];

	if (rel >= VIRTIO_PCI_COMMON_LEN) {
		if (!is_write)
			memset(data, 0, len);
		return;
	}
	common_snapshot(t, b);
	uint32_t n = len < VIRTIO_PCI_COMMON_LEN - rel ? len : VIRTIO_PCI_COMMON_LEN - rel;
	if (!is_write) {
		memset(data, 0, len);
		memcpy(data, b + rel, n);
		return;
	}
	memcpy(b + rel, data, n);
	for (unsigned int i = 0; i < sizeof(common_regs) / sizeof(common_regs[0]); i++) {
		uint32_t off = common_regs[i].off, rlen = common_regs[i].len;
		if (off < rel + n && rel < off + rlen)
			common_apply(t, off, get_le(b + off, rlen));
	}
}

/* ---- the BAR ---- */

/* The BAR's regions: [start, end). */
static const struct {
	uint32_t start, end;
} regions[] = {
	{ VIRTIO_PCI_COMMON, VIRTIO_PCI_ISR },
	{ VIRTIO_PCI_ISR, VIRTIO_PCI_DEVICE_CFG },
	{ VIRTIO_PCI_DEVICE_CFG, VIRTIO_PCI_NOTIFY },
	{ VIRTIO_PCI_NOTIFY, VIRTIO_PCI_MSIX_TABLE },
	{ VIRTIO_PCI_MSIX_TABLE, VIRTIO_PCI_MSIX_PBA },
	{ VIRTIO_PCI_MSIX_PBA, VIRTIO_PCI_BAR_SIZE },
};

/* One access to the BAR at rel (rel + len <= BAR size, len 1..8). dev->lock held. */
static void region_access(struct virtio_pci *t, uint32_t rel, uint8_t *data, uint32_t len,
			  bool is_write)
{
	struct virtio_dev *d = t->dev;
	uint32_t region = 0, off;

	for (unsigned int i = 0; i < sizeof(regions) / sizeof(regions[0]); i++)
		if (rel >= regions[i].start && rel < regions[i].end)
			region = i;
	/* An access spilling into the next region is not a register access at all. */
	if (rel >= VIRTIO_PCI_BAR_SIZE || len > regions[region].end - rel)
		goto ignore;
	off = rel - regions[region].start;
	switch (regions[region].start) {
	case VIRTIO_PCI_COMMON:
		common_access(t, off, data, len, is_write);
		return;
	case VIRTIO_PCI_ISR:
		if (is_write)
			return;
		memset(data, 0, len);
		if (off == 0) {
			data[0] = t->isr; /* reading acknowledges */
			t->isr = 0;
		}
		return;
	case VIRTIO_PCI_DEVICE_CFG:
		if (off >= d->ops->config_size || len > d->ops->config_size - off)
			goto ignore;
		if (is_write && d->ops->config_write)
			d->ops->config_write(d, off, data, len);
		else if (!is_write && d->ops->config_read)
			d->ops->config_read(d, off, data, len);
		else if (!is_write)
			memset(data, 0, len);
		return;
	case VIRTIO_PCI_NOTIFY:
		/* Kicks that did not go through an ioeventfd (other widths, no ioeventfd). */
		if (is_write && off % VIRTIO_PCI_NOTIFY_MULT == 0 &&
		    off / VIRTIO_PCI_NOTIFY_MULT < t->nq)
			virtio_dev_notify(d, off / VIRTIO_PCI_NOTIFY_MULT);
		else if (!is_write)
			memset(data, 0, len);
		return;
	case VIRTIO_PCI_MSIX_TABLE:
		if (is_write)
			table_write(t, off, data, len);
		else
			table_read(t, off, data, len);
		return;
	case VIRTIO_PCI_MSIX_PBA:
		if (is_write)
			return; /* read-only */
		memset(data, 0, len);
		for (uint32_t i = 0; i < len; i++)
			if (off + i < sizeof(t->pba))
				data[i] = (uint8_t)(t->pba >> (8 * (off + i)));
		return;
	}
ignore:
	if (!is_write)
		memset(data, 0, len);
}

static void bar_access(struct pci_dev *pd, unsigned int bar, uint64_t off, uint8_t *data,
		       uint32_t len, bool is_write)
{
	struct virtio_pci *t = pd->opaque;

	if (bar != VIRTIO_PCI_BAR || off >= VIRTIO_PCI_BAR_SIZE || len == 0 || len > 8 ||
	    len > VIRTIO_PCI_BAR_SIZE - off) {
		if (!is_write)
			memset(data, 0xff, len);
		return;
	}
	pthread_mutex_lock(&t->dev->lock);
	region_access(t, (uint32_t)off, data, len, is_write);
	pthread_mutex_unlock(&t->dev->lock);
}

/* ---- kicks ---- */

static void kick_ready(void *opaque, uint32_t events)
{
	struct virtio_pci_kick *k = opaque;

	virtio_dev_kick_fd(k->t->dev, k->fd, k->q);
}

static void kicks_unregister(struct virtio_pci *t)
{
	const struct pci_platform *p = t->platform;

	for (unsigned int q = 0; q < t->nq; q++) {
		struct virtio_pci_kick *k = &t->kick[q];
		if (k->registered && p && p->ioeventfd)
			p->ioeventfd(p, k->fd, k->addr, 2, false);
		k->registered = false;
	}
}

/* The BAR moved (bus lock held): the kick ioeventfds follow it. */
static void bar_moved(struct pci_dev *pd, unsigned int bar, uint64_t addr)
{
	struct virtio_pci *t = pd->opaque;
	const struct pci_platform *p = t->platform;

	if (bar != VIRTIO_PCI_BAR)
		return;
	kicks_unregister(t);
	if (addr == PCI_BAR_UNMAPPED || !p || !p->ioeventfd)
		return;
	for (unsigned int q = 0; q < t->nq; q++) {
		struct virtio_pci_kick *k = &t->kick[q];
		uint64_t a = addr + VIRTIO_PCI_NOTIFY + (uint64_t)q * VIRTIO_PCI_NOTIFY_MULT;
		if (k->fd < 0)
			continue;
		/* 16-bit writes, as drivers kick; other widths exit to region_access(). */
		int r = p->ioeventfd(p, k->fd, a, 2, true);
		if (r) {
			log_debug("%s: no ioeventfd for queue %u at 0x%llx (%s); kicks exit to "
				  "tern",
				  pd->name, q, (unsigned long long)a, strerror(-r));
			continue;
		}
		k->registered = true;
		k->addr = a;
	}
}

/* ---- configuration space hooks (bus lock held) ---- */

static bool overlaps(uint32_t off, uint32_t len, uint32_t start, uint32_t n)
{
	return off < start + n && start < off + len;
}

/* The BAR window of the PCI configuration access capability, if the guest set a valid one. */
static bool cfg_window(struct virtio_pci *t, uint32_t *off, uint32_t *len)
{
	const uint8_t *c = &t->pci.cfg[t->cfg_cap];
	uint32_t o = (uint32_t)get_le(c + CFG_CAP_OFFSET, 4),
		 l = (uint32_t)get_le(c + CFG_CAP_LENGTH, 4);

	if (c[CFG_CAP_BAR] != VIRTIO_PCI_BAR || (l != 1 && l != 2 && l != 4) || o % l ||
	    o >= VIRTIO_PCI_BAR_SIZE || l > VIRTIO_PCI_BAR_SIZE - o)
		return false;
	*off = o;
	*len = l;
	return true;
}

static void cfg_read(struct pci_dev *pd, uint32_t off, uint32_t len)
{
	struct virtio_pci *t = pd->opaque;
	uint32_t o, l;

	if (!overlaps(off, len, t->cfg_cap + CFG_CAP_DATA, 4) || !cfg_window(t, &o, &l))
		return;
	uint8_t *data = &pd->cfg[t->cfg_cap + CFG_CAP_DATA];
	pthread_mutex_lock(&t->dev->lock);
	region_access(t, o, data, l, false);
	pthread_mutex_unlock(&t->dev->lock);
}

static void cfg_written(struct pci_dev *pd, uint32_t off, uint32_t len)
{
	struct virtio_pci *t = pd->opaque;
	uint32_t o, l;

	if (overlaps(off, len, t->msix_cap + 2u, 2))
		msix_control_written(t);
	if (overlaps(off, len, t->cfg_cap + CFG_CAP_DATA, 4) && cfg_window(t, &o, &l)) {
		uint8_t data[4];
		memcpy(data, &pd->cfg[t->cfg_cap + CFG_CAP_DATA], 4);
		pthread_mutex_lock(&t->dev->lock);
		region_access(t, o, data, l, true);
		pthread_mutex_unlock(&t->dev->lock);
	}
}

/* ---- set-up ---- */

static void destroy(struct pci_dev *pd)
{
	struct virtio_pci *t = pd->opaque;
	const struct pci_platform *p = t->platform;

	kicks_unregister(t);
	for (unsigned int q = 0; q < t->nq; q++) {
		if (t->kick[q].fd < 0)
			continue;
		if (p && p->unwatch)
			p->unwatch(p, t->kick[q].fd);
		close(t->kick[q].fd);
	}
	for (unsigned int v = 0; v < t->nvec; v++) {
		struct virtio_pci_vector *x = &t->vec[v];
		if (x->irqfd_bound && p && p->irqfd)
			p->irqfd(p, x->fd, (uint32_t)x->gsi, false);
		if (x->gsi >= 0 && p && p->routing)
			irq_routing_free(p->routing, (uint32_t)x->gsi);
		if (x->fd >= 0)
			close(x->fd);
	}
	if (p && p->routing)
		irq_routing_commit(p->routing);
	if (t->dev && t->dev->transport == t) {
		t->dev->transport = NULL;
		t->dev->signal_queue = NULL;
		t->dev->signal_config = NULL;
	}
	free(t);
}

static void vendor_cap(uint8_t *c, uint8_t cap_len, uint8_t type, uint32_t off, uint32_t len)
{
	memset(c, 0, cap_len);
	c[0] = PCI_CAP_ID_VNDR;
	c[2] = cap_len;
	c[3] = type;
	c[4] = VIRTIO_PCI_BAR;
	put_le(c + 8, 4, off);
	put_le(c + 12, 4, len);
}

static int add_caps(struct virtio_pci *t)
{
	struct pci_dev *pd = &t->pci;
	uint8_t c[CFG_CAP_LEN];
	int off;

	memset(c, 0, sizeof(c));
	c[0] = PCI_CAP_ID_MSIX;
	put_le(c + 2, 2, t->nvec - 1);
	put_le(c + 4, 4, VIRTIO_PCI_MSIX_TABLE | VIRTIO_PCI_BAR);
	put_le(c + 8, 4, VIRTIO_PCI_MSIX_PBA | VIRTIO_PCI_BAR);
	if ((off = pci_cap_add(pd, c, MSIX_CAP_LEN)) < 0)
		return off;
	t->msix_cap = (uint8_t)off;
	pd->wmask[off + 3] = (MSIX_CONTROL_ENABLE | MSIX_CONTROL_MASKALL) >> 8;

	vendor_cap(c, CAP_LEN, VIRTIO_PCI_CAP_COMMON_CFG, VIRTIO_PCI_COMMON, VIRTIO_PCI_COMMON_LEN);
	if ((off = pci_cap_add(pd, c, CAP_LEN)) < 0)
		return off;
	vendor_cap(c, NOTIFY_CAP_LEN, VIRTIO_PCI_CAP_NOTIFY_CFG, VIRTIO_PCI_NOTIFY,
		   t->nq * VIRTIO_PCI_NOTIFY_MULT);
	put_le(c + 16, 4, VIRTIO_PCI_NOTIFY_MULT);
	if ((off = pci_cap_add(pd, c, NOTIFY_CAP_LEN)) < 0)
		return off;
	vendor_cap(c, CAP_LEN, VIRTIO_PCI_CAP_ISR_CFG, VIRTIO_PCI_ISR, 1);
	if ((off = pci_cap_add(pd, c, CAP_LEN)) < 0)
		return off;
	if (t->dev->ops->config_size) {
		vendor_cap(c, CAP_LEN, VIRTIO_PCI_CAP_DEVICE_CFG, VIRTIO_PCI_DEVICE_CFG,
			   t->dev->ops->config_size);
		if ((off = pci_cap_add(pd, c, CAP_LEN)) < 0)
			return off;
	}
	/* The access window: bar, offset, length and data are the guest's to write. */
	vendor_cap(c, CFG_CAP_LEN, VIRTIO_PCI_CAP_PCI_CFG, 0, 0);
	c[CFG_CAP_BAR] = 0;
	if ((off = pci_cap_add(pd, c, CFG_CAP_LEN)) < 0)
		return off;
	t->cfg_cap = (uint8_t)off;
	pd->wmask[off + CFG_CAP_BAR] = 0xff;
	memset(&pd->wmask[off + CFG_CAP_OFFSET], 0xff, 12); /* offset, length, data */
	return 0;
}

static int setup_fds(struct virtio_pci *t)
{
	const struct pci_platform *p = t->platform;

	for (unsigned int v = 0; v < t->nvec; v++) {
		struct virtio_pci_vector *x = &t->vec[v];
		if (!p || !p->routing)
			continue;
		if ((x->gsi = irq_routing_alloc_msi(p->routing)) < 0)
			return x->gsi;
		if ((x->fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0)
			return -errno;
	}
	for (unsigned int q = 0; q < t->nq; q++) {
		struct virtio_pci_kick *k = &t->kick[q];
		if (!p || !p->ioeventfd || !p->watch)
			continue;
		if ((k->fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0)
			return -errno;
		int r = p->watch(p, k->fd, kick_ready, k);
		if (r) {
			close(k->fd);
			k->fd = -1;
			return r;
		}
	}
	return 0;
}

int virtio_pci_add(struct pci_bus *bus, struct virtio_dev *d)
{
	const struct virtio_dev_ops *ops = d->ops;
	struct virtio_pci *t;
	int r;

	/* PCI device IDs 0x1040..0x107f carry virtio device IDs 0..0x3f. */
	if (!ops->num_queues || ops->num_queues > VIRTIO_MAX_QUEUES ||
	    ops->config_size > VIRTIO_PCI_DEVICE_CFG_MAX || ops->device_id > 0x3f)
		return -EINVAL;
	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->dev = d;
	t->platform = bus->platform;
	t->nq = ops->num_queues;
	t->nvec = t->nq + 1;
	for (unsigned int v = 0; v < VIRTIO_PCI_MAX_VECTORS; v++)
		t->vec[v] = (struct virtio_pci_vector){ .gsi = -1, .fd = -1 };
	for (unsigned int q = 0; q < VIRTIO_MAX_QUEUES; q++)
		t->kick[q] = (struct virtio_pci_kick){ .t = t, .q = q, .fd = -1 };

	uint16_t id = (uint16_t)(VIRTIO_PCI_DEVICE_BASE + ops->device_id);
	/* Subsystem ID >= 0x40 keeps legacy drivers off (virtio 1.x, 4.1.2.1). */
	pci_dev_init(&t->pci, VIRTIO_PCI_VENDOR, id, virtio_pci_class(ops->device_id),
		     VIRTIO_PCI_REVISION, VIRTIO_PCI_VENDOR, id);
	t->pci.name = ops->name;
	t->pci.opaque = t;
	t->pci.bar_access = bar_access;
	t->pci.bar_moved = bar_moved;
	t->pci.cfg_read = cfg_read;
	t->pci.cfg_written = cfg_written;
	t->pci.destroy = destroy;
	for (unsigned int v = 0; v < t->nvec; v++)
		t->msix_table[v * MSIX_ENTRY_SIZE + MSIX_ENTRY_CTRL] = MSIX_CTRL_MASKED;

	if ((r = pci_dev_set_bar(&t->pci, VIRTIO_PCI_BAR, PCI_BAR_MEM64, VIRTIO_PCI_BAR_SIZE)) ||
	    (r = add_caps(t)) || (r = setup_fds(t)))
		goto fail;
	transport_reset(t);
	d->transport = t;
	d->signal_queue = signal_queue;
	d->signal_config = signal_config;
	if ((r = pci_dev_add(bus, &t->pci)) < 0)
		goto fail;
	return r;
fail:
	log_warn("%s: cannot add on PCI: %s", ops->name, strerror(-r));
	destroy(&t->pci);
	return r;
}

/* ---- snapshot state ---- */

struct virtio_pci *virtio_pci_of(struct virtio_dev *d)
{
	return d->signal_queue == signal_queue ? d->transport : NULL;
}

int virtio_pci_save(struct virtio_pci *t, struct vmstate_writer *w)
{
	struct virtio_dev *d = t->dev;
	int r;

	pthread_mutex_lock(&d->lock);
	r = virtio_dev_save_state(d, VIRTIO_TRANSPORT_PCI, w);
	if (r)
		goto out;
	vmstate_put_u32(w, t->device_feature_select);
	vmstate_put_u32(w, t->driver_feature_select);
	vmstate_put_u16(w, t->queue_select);
	vmstate_put_u16(w, t->msix_config);
	for (unsigned int q = 0; q < t->nq; q++)
		vmstate_put_u16(w, t->queue_vector[q]);
	vmstate_put_u8(w, t->isr);
	vmstate_put_bool(w, t->msix_enabled);
	vmstate_put_bool(w, t->msix_masked);
	vmstate_put_u32(w, t->nvec);
	for (unsigned int v = 0; v < t->nvec; v++) {
		const uint8_t *e = &t->msix_table[v * MSIX_ENTRY_SIZE];
		vmstate_put_u64(w, get_le(e, 8));
		vmstate_put_u32(w, (uint32_t)get_le(e + 8, 4));
		vmstate_put_u32(w, (uint32_t)get_le(e + MSIX_ENTRY_CTRL, 4));
	}
	vmstate_put_u64(w, t->pba);
out:
	pthread_mutex_unlock(&d->lock);
	return r;
}

/* The transport's registers from a snapshot, checked but not yet in effect. */
struct transport_regs {
	uint32_t dfselect, gfselect;
	uint16_t queue_select, msix_config, queue_vector[VIRTIO_MAX_QUEUES];
	uint8_t isr;
	bool msix_enabled, msix_masked;
	uint8_t table[VIRTIO_PCI_MAX_VECTORS * MSIX_ENTRY_SIZE];
	uint64_t pba;
};

/* A vector register holds an entry of the table or NO_VECTOR (what vector_or_none() leaves). */
static bool vector_ok(const struct virtio_pci *t, uint16_t v)
{
	return v < t->nvec || v == VIRTIO_PCI_NO_VECTOR;
}

static int regs_load(struct virtio_pci *t, struct vmstate_cursor *c, struct transport_regs *p,
		     char *err, size_t errlen)
{
	struct virtio_dev *d = t->dev;
	uint32_t nvec;

	memset(p, 0, sizeof(*p));
	p->dfselect = vmstate_get_u32(c);
	p->gfselect = vmstate_get_u32(c);
	p->queue_select = vmstate_get_u16(c);
	p->msix_config = vmstate_get_u16(c);
	for (unsigned int q = 0; q < t->nq; q++)
		p->queue_vector[q] = vmstate_get_u16(c);
	p->isr = vmstate_get_u8(c);
	p->msix_enabled = vmstate_get_bool(c);
	p->msix_masked = vmstate_get_bool(c);
	nvec = vmstate_get_u32(c);
	if (c->error)
		return virtio_state_refuse(d, err, errlen,
					   "virtio-pci state truncated or malformed");
	if (nvec != t->nvec)
		return virtio_state_refuse(d, err, errlen,
					   "MSI-X table of %u entries in the snapshot, %u here",
					   nvec, t->nvec);
	for (unsigned int v = 0; v < nvec; v++) {
		uint8_t *e = &p->table[v * MSIX_ENTRY_SIZE];
		uint32_t ctrl;
		put_le(e, 8, vmstate_get_u64(c));
		put_le(e + 8, 4, vmstate_get_u32(c));
		ctrl = vmstate_get_u32(c);
		/* table_write() keeps only the mask bit: the rest is reserved. */
		if (ctrl & ~(uint32_t)MSIX_CTRL_MASKED)
			return virtio_state_refuse(d, err, errlen,
						   "MSI-X entry %u: vector control 0x%x has "
						   "reserved bits",
						   v, ctrl);
		put_le(e + MSIX_ENTRY_CTRL, 4, ctrl);
	}
	p->pba = vmstate_get_u64(c);
	if (c->error)
		return virtio_state_refuse(d, err, errlen,
					   "virtio-pci state truncated or malformed");
	if (vmstate_cursor_done(c))
		return virtio_state_refuse(d, err, errlen,
					   "state has %llu byte(s) past the end of this version's",
					   (unsigned long long)(c->len - c->off));
	if (!vector_ok(t, p->msix_config))
		return virtio_state_refuse(d, err, errlen,
					   "config vector %u: the MSI-X table has %u entries",
					   p->msix_config, t->nvec);
	for (unsigned int q = 0; q < t->nq; q++)
		if (!vector_ok(t, p->queue_vector[q]))
			return virtio_state_refuse(d, err, errlen,
						   "queue %u vector %u: the MSI-X table has %u "
						   "entries",
						   q, p->queue_vector[q], t->nvec);
	if (p->isr & ~(VIRTIO_ISR_QUEUE | VIRTIO_ISR_CONFIG))
		return virtio_state_refuse(d, err, errlen, "ISR 0x%02x has undefined bits", p->isr);
	if (p->pba >> t->nvec)
		return virtio_state_refuse(d, err, errlen,
					   "MSI-X pending bits 0x%llx beyond the %u entries",
					   (unsigned long long)p->pba, t->nvec);
	return 0;
}

static void regs_commit(struct virtio_pci *t, const struct transport_regs *p)
{
	uint32_t ctl;

	t->device_feature_select = p->dfselect;
	t->driver_feature_select = p->gfselect;
	t->queue_select = p->queue_select;
	t->msix_config = p->msix_config;
	for (unsigned int q = 0; q < VIRTIO_MAX_QUEUES; q++)
		t->queue_vector[q] = q < t->nq ? p->queue_vector[q] : VIRTIO_PCI_NO_VECTOR;
	t->isr = p->isr;
	/*
	 * The table goes in as a guest write would put it, so each changed entry's route is
	 * redone; with MSI-X off and nothing pending meanwhile, nothing fires from here.
	 */
	t->msix_enabled = false;
	t->pba = 0;
	table_write(t, 0, p->table, t->nvec * MSIX_ENTRY_SIZE);
	t->msix_enabled = p->msix_enabled;
	t->msix_masked = p->msix_masked;
	t->pba = p->pba;
	/*
	 * The enable and mask bits live in configuration space too (what the guest reads);
	 * keep the two in step whichever of this and the PCI section is restored last.
	 */
	ctl = pci_cfg_get(t->pci.cfg, t->msix_cap + 2u, 2) &
	      ~(uint32_t)(MSIX_CONTROL_ENABLE | MSIX_CONTROL_MASKALL);
	if (p->msix_enabled)
		ctl |= MSIX_CONTROL_ENABLE;
	if (p->msix_masked)
		ctl |= MSIX_CONTROL_MASKALL;
	pci_cfg_put(t->pci.cfg, t->msix_cap + 2u, 2, ctl);
	/*
	 * Routes now rather than at the first interrupt: a failure shows at restore, and the
	 * first interrupt after resume does not wait for a routing table update. An entry
	 * still at address 0 was never programmed: the guest's write will route it.
	 */
	for (unsigned int v = 0; v < t->nvec; v++)
		if (get_le(&t->msix_table[v * MSIX_ENTRY_SIZE], 8))
			route(t, v);
}

/*
 * The kick ioeventfds must sit where the BAR decodes now. The PCI section's restore moves
 * them when it moves the BAR; this covers a BAR that did not move, or one restored with
 * the ioeventfds not in place, the way a guest's BAR write would.
 */
static void kicks_follow(struct virtio_pci *t)
{
	uint64_t base = t->pci.bar[VIRTIO_PCI_BAR].addr;

	for (unsigned int q = 0; q < t->nq; q++) {
		const struct virtio_pci_kick *k = &t->kick[q];
		uint64_t a = base + VIRTIO_PCI_NOTIFY + (uint64_t)q * VIRTIO_PCI_NOTIFY_MULT;
		if (k->fd < 0)
			continue;
		if (base == PCI_BAR_UNMAPPED ? k->registered : !k->registered || k->addr != a) {
			bar_moved(&t->pci, VIRTIO_PCI_BAR, base);
			return;
		}
	}
}

int virtio_pci_restore(struct virtio_pci *t, struct vmstate_cursor *c, char *err, size_t errlen)
{
	struct virtio_dev *d = t->dev;
	struct pci_bus *bus = t->pci.bus;
	struct virtio_dev_state s;
	struct transport_regs p;
	int r;

	/* The bus lock guards configuration space and the kick ioeventfds. */
	if (bus)
		pthread_rwlock_wrlock(&bus->lock);
	pthread_mutex_lock(&d->lock);
	r = virtio_dev_load_state(d, VIRTIO_TRANSPORT_PCI, c, &s, err, errlen);
	if (!r)
		r = regs_load(t, c, &p, err, errlen);
	if (!r) {
		virtio_dev_commit_state(d, &s);
		regs_commit(t, &p);
	}
	pthread_mutex_unlock(&d->lock);
	if (!r)
		kicks_follow(t);
	if (bus)
		pthread_rwlock_unlock(&bus->lock);
	return r;
}
