/*
 * virtio-mmio transport. Registers are 32-bit; the device config space (from 0x100)
 * takes any width. Everything the guest writes is range-checked here or in the
 * virtio core; a bad value breaks only this device.
 */
#include "virtio/mmio.h"
#include "arch/x86/aml.h"
#include "core/log.h"
#include "virtio/virtio.h"
#include "vmstate/vmstate.h"

#include <stdio.h>
#include <string.h>

#define MMIO_MAGIC 0x74726976 /* "virt" */
#define MMIO_VERSION 2
#define MMIO_VENDOR 0x4e524554 /* "TERN" */
#define MMIO_SIZE 0x1000
#define MMIO_CONFIG 0x100

enum {
	REG_MAGIC = 0x000,
	REG_VERSION = 0x004,
	REG_DEVICE_ID = 0x008,
	REG_VENDOR_ID = 0x00c,
	REG_DEVICE_FEATURES = 0x010,
	REG_DEVICE_FEATURES_SEL = 0x014,
	REG_DRIVER_FEATURES = 0x020,
	REG_DRIVER_FEATURES_SEL = 0x024,
	REG_QUEUE_SEL = 0x030,
	REG_QUEUE_NUM_MAX = 0x034,
	REG_QUEUE_NUM = 0x038,
	REG_QUEUE_READY = 0x044,
	REG_QUEUE_NOTIFY = VIRTIO_MMIO_QUEUE_NOTIFY,
	REG_INTERRUPT_STATUS = 0x060,
	REG_INTERRUPT_ACK = 0x064,
	REG_STATUS = 0x070,
	REG_QUEUE_DESC_LOW = 0x080,
	REG_QUEUE_DESC_HIGH = 0x084,
	REG_QUEUE_DRIVER_LOW = 0x090,
	REG_QUEUE_DRIVER_HIGH = 0x094,
	REG_QUEUE_DEVICE_LOW = 0x0a0,
	REG_QUEUE_DEVICE_HIGH = 0x0a4,
	REG_CONFIG_GENERATION = 0x0fc,
};

static void update_irq(struct virtio_mmio *t)
{
	int level = t->isr != 0;

	if (level != t->irq_level) {
		t->irq_level = level;
		t->set_irq(t->irq_ctx, t->gsi, level);
	}
}

/* Interrupt hooks; called with the device lock held. */
static void signal_queue(struct virtio_dev *d, unsigned int q)
{
	struct virtio_mmio *t = d->transport;

	t->isr |= VIRTIO_ISR_QUEUE;
	update_irq(t);
}

static void signal_config(struct virtio_dev *d)
{
	struct virtio_mmio *t = d->transport;

	t->isr |= VIRTIO_ISR_CONFIG;
	update_irq(t);
}

static struct virtq *selected(struct virtio_mmio *t)
{
	return t->queue_sel < t->dev->ops->num_queues ? &t->dev->q[t->queue_sel] : NULL;
}

static void set_half(uint64_t *v, uint32_t val, bool high)
{
	if (high)
		*v = (*v & 0xffffffffULL) | ((uint64_t)val << 32);
	else
		*v = (*v & ~0xffffffffULL) | val;
}

static uint32_t reg_read(struct virtio_mmio *t, uint64_t off)
{
	struct virtio_dev *d = t->dev;
	struct virtq *q = selected(t);

	switch (off) {
	case REG_MAGIC:
		return MMIO_MAGIC;
	case REG_VERSION:
		return MMIO_VERSION;
	case REG_DEVICE_ID:
		return d->ops->device_id;
	case REG_VENDOR_ID:
		return MMIO_VENDOR;
	case REG_DEVICE_FEATURES:
		return t->device_features_sel > 1 ?
			       0 :
			       (uint32_t)(virtio_dev_features(d) >> (32 * t->device_features_sel));
	case REG_QUEUE_NUM_MAX:
		return q ? d->ops->queue_max : 0;
	case REG_QUEUE_READY:
		return q ? q->ready : 0;
	case REG_INTERRUPT_STATUS:
		return t->isr;
	case REG_STATUS:
		return virtio_dev_status(d);
	case REG_CONFIG_GENERATION:
		return d->config_generation;
	default:
		return 0;
	}
}

static void queue_write(struct virtio_mmio *t, uint64_t off, uint32_t v)
{
	struct virtq *q = selected(t);

	/*
	 * Queue registers of a nonexistent queue, of an enabled one, or of any queue
	 * once DRIVER_OK is set (sizes may not change then) are ignored.
	 */
	if (!q || q->ready || (t->dev->status & VIRTIO_STATUS_DRIVER_OK)) {
		if (q && off == REG_QUEUE_READY && v == 0)
			q->ready = false; /* the driver may stop a queue */
		return;
	}
	switch (off) {
	case REG_QUEUE_NUM:
		q->size = v > 0xffff ? 0 : (uint16_t)v; /* validated when the queue is enabled */
		break;
	case REG_QUEUE_READY:
		if (v == 1)
			virtio_dev_enable_queue(t->dev, t->queue_sel);
		break;
	case REG_QUEUE_DESC_LOW:
	case REG_QUEUE_DESC_HIGH:
		set_half(&q->desc_gpa, v, off == REG_QUEUE_DESC_HIGH);
		break;
	case REG_QUEUE_DRIVER_LOW:
	case REG_QUEUE_DRIVER_HIGH:
		set_half(&q->avail_gpa, v, off == REG_QUEUE_DRIVER_HIGH);
		break;
	case REG_QUEUE_DEVICE_LOW:
	case REG_QUEUE_DEVICE_HIGH:
		set_half(&q->used_gpa, v, off == REG_QUEUE_DEVICE_HIGH);
		break;
	}
}

static void reg_write(struct virtio_mmio *t, uint64_t off, uint32_t v)
{
	struct virtio_dev *d = t->dev;

	switch (off) {
	case REG_DEVICE_FEATURES_SEL:
		t->device_features_sel = v;
		break;
	case REG_DRIVER_FEATURES_SEL:
		t->driver_features_sel = v;
		break;
	case REG_DRIVER_FEATURES:
		/* Features are fixed once FEATURES_OK is set. */
		if (t->driver_features_sel <= 1 && !(d->status & VIRTIO_STATUS_FEATURES_OK)) {
			unsigned int shift = 32 * t->driver_features_sel;
			d->driver_features = (d->driver_features & ~(0xffffffffULL << shift)) |
					     ((uint64_t)v << shift);
		}
		break;
	case REG_QUEUE_SEL:
		t->queue_sel = v;
		break;
	case REG_QUEUE_NOTIFY:
		virtio_dev_notify(d, v & 0xffff);
		break;
	case REG_INTERRUPT_ACK:
		t->isr &= ~v;
		update_irq(t);
		break;
	case REG_STATUS:
		virtio_dev_set_status(d, (uint8_t)v);
		if (v == 0) {
			t->isr = 0;
			t->queue_sel = t->device_features_sel = t->driver_features_sel = 0;
			update_irq(t);
		}
		break;
	default:
		queue_write(t, off, v);
		break;
	}
}

void virtio_mmio_io(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write)
{
	struct virtio_mmio *t = opaque;
	struct virtio_dev *d = t->dev;

	pthread_mutex_lock(&d->lock);
	if (offset >= MMIO_CONFIG) {
		uint64_t off = offset - MMIO_CONFIG;
		if (off < d->ops->config_size && len <= d->ops->config_size - off) {
			if (is_write && d->ops->config_write)
				d->ops->config_write(d, (uint32_t)off, data, len);
			else if (!is_write)
				d->ops->config_read(d, (uint32_t)off, data, len);
		} else if (!is_write) {
			memset(data, 0, len);
		}
	} else if (len == 4 && !(offset & 3)) {
		uint32_t v;
		if (is_write) {
			memcpy(&v, data, 4);
			reg_write(t, offset, v);
		} else {
			v = reg_read(t, offset);
			memcpy(data, &v, 4);
		}
	} else if (!is_write) {
		memset(data, 0, len); /* registers are 32-bit only */
	}
	pthread_mutex_unlock(&d->lock);
}

int virtio_mmio_attach(struct virtio_mmio *t, struct virtio_dev *d, struct bus *mmio, uint64_t base,
		       uint32_t gsi, void (*set_irq)(void *ctx, unsigned int gsi, int level),
		       void *irq_ctx)
{
	memset(t, 0, sizeof(*t));
	for (unsigned int q = 0; q < VIRTIO_MAX_QUEUES; q++)
		t->kick[q] = (struct virtio_mmio_kick){ t, q, -1 };
	t->dev = d;
	t->base = base;
	t->gsi = gsi;
	t->set_irq = set_irq;
	t->irq_ctx = irq_ctx;
	d->transport = t;
	d->signal_queue = signal_queue;
	d->signal_config = signal_config;
	return bus_register(mmio, base, MMIO_SIZE, virtio_mmio_io, t, d->ops->name);
}

void virtio_mmio_kick_ready(void *opaque, uint32_t events)
{
	struct virtio_mmio_kick *k = opaque;

	virtio_dev_kick_fd(k->t->dev, k->fd, k->q);
}

void virtio_mmio_dsdt(struct aml *a, const struct virtio_mmio *t, unsigned int index)
{
	char name[5];

	snprintf(name, sizeof(name), "VR%02X", index & 0xff);
	size_t dev = aml_device_open(a, name);
	aml_name_string(a, "_HID", "LNRO0005");
	aml_name_integer(a, "_UID", index);
	aml_name(a, "_CRS");
	size_t res = aml_restemplate_open(a);
	aml_res_memory32_fixed(a, (uint32_t)t->base, MMIO_SIZE, true);
	aml_res_interrupt(a, t->gsi, 0); /* level, active high */
	aml_restemplate_close(a, res);
	aml_close(a, dev);
}

/* ---- snapshot state ---- */

int virtio_mmio_save(struct virtio_mmio *t, struct vmstate_writer *w)
{
	struct virtio_dev *d = t->dev;
	int r;

	pthread_mutex_lock(&d->lock);
	r = virtio_dev_save_state(d, VIRTIO_TRANSPORT_MMIO, w);
	if (!r) {
		vmstate_put_u32(w, t->device_features_sel);
		vmstate_put_u32(w, t->driver_features_sel);
		vmstate_put_u32(w, t->queue_sel);
		vmstate_put_u32(w, t->isr);
	}
	pthread_mutex_unlock(&d->lock);
	return r;
}

int virtio_mmio_restore(struct virtio_mmio *t, struct vmstate_cursor *c, char *err, size_t errlen)
{
	struct virtio_dev *d = t->dev;
	struct virtio_dev_state s;
	uint32_t dsel, gsel, qsel, isr;
	int r;

	pthread_mutex_lock(&d->lock);
	r = virtio_dev_load_state(d, VIRTIO_TRANSPORT_MMIO, c, &s, err, errlen);
	if (r)
		goto out;
	/* The selectors hold whatever the driver wrote: reads and writes check them. */
	dsel = vmstate_get_u32(c);
	gsel = vmstate_get_u32(c);
	qsel = vmstate_get_u32(c);
	isr = vmstate_get_u32(c);
	if (c->error) {
		r = virtio_state_refuse(d, err, errlen, "virtio-mmio state truncated");
		goto out;
	}
	if (vmstate_cursor_done(c)) {
		r = virtio_state_refuse(d, err, errlen,
					"state has %llu byte(s) past the end of this version's",
					(unsigned long long)(c->len - c->off));
		goto out;
	}
	/* Only the device sets interrupt status bits, and only these two. */
	if (isr & ~(uint32_t)(VIRTIO_ISR_QUEUE | VIRTIO_ISR_CONFIG)) {
		r = virtio_state_refuse(d, err, errlen, "interrupt status 0x%x has undefined bits",
					isr);
		goto out;
	}
	virtio_dev_commit_state(d, &s);
	t->device_features_sel = dsel;
	t->driver_features_sel = gsel;
	t->queue_sel = qsel;
	t->isr = isr;
	update_irq(t);
out:
	pthread_mutex_unlock(&d->lock);
	return r;
}
