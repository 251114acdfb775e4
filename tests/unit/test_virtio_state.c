/*
 * Save/restore of the virtio core, its queues and both transports, over a small test
 * device (it completes every chain it pops): a device is driven to DRIVER_OK with queues,
 * used-ring progress, pending avail entries and interrupts; its section goes through a
 * real state file; a freshly set-up device restores it, must then save the same bytes,
 * and must go on serving the rings. Every malformed or mismatched section is refused
 * with a message naming the device and leaves the fresh device exactly as it was.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "arch/x86/layout.h"
#include "devices/pci.h"
#include "kvm/irq_routing.h"
#include "virtio/pci.h"
#include "vmstate/vmstate.h"
#include "devstate.h"
#include "unit.h"
#include "virtio_guest.h"

#define NQ 2
#define QMAX 64
#define T_FEATURES                                                           \
	((1ULL << 0) | (1ULL << 5) | (1ULL << VIRTIO_RING_F_INDIRECT_DESC) | \
	 (1ULL << VIRTIO_RING_F_EVENT_IDX))
#define BUF_GPA 0x200000ULL

/* ---- the test device ---- */

struct tdev {
	struct virtio_dev dev;
	unsigned int completions, activates;
};

static void tdev_config_read(struct virtio_dev *d, uint32_t off, void *data, uint32_t len)
{
	memset(data, 0x5a, len);
}

static void tdev_notify(struct virtio_dev *d, unsigned int q)
{
	static struct virtq_chain c;
	struct tdev *t = d->priv;
	int r;

	do {
		while ((r = virtq_pop(&d->q[q], d->mem, &c)) == 1) {
			t->completions++;
			virtio_dev_complete(d, q, c.head, 0);
		}
		if (r < 0) {
			virtio_dev_needs_reset(d, "malformed chain");
			return;
		}
	} while (virtq_rearm(&d->q[q], d->mem));
}

static void tdev_activate(struct virtio_dev *d)
{
	((struct tdev *)d->priv)->activates++;
}

static const struct virtio_dev_ops tdev_ops = {
	.name = "vtest",
	.device_id = VIRTIO_ID_RNG,
	.features = T_FEATURES,
	.num_queues = NQ,
	.queue_max = QMAX,
	.config_size = 8,
	.config_read = tdev_config_read,
	.notify = tdev_notify,
	.activate = tdev_activate,
};

/* The same device offering one feature less, and a device of another type. */
static const struct virtio_dev_ops tdev_ops_fewer = {
	.name = "vtest",
	.device_id = VIRTIO_ID_RNG,
	.features = T_FEATURES & ~(1ULL << 5),
	.num_queues = NQ,
	.queue_max = QMAX,
	.config_size = 8,
	.config_read = tdev_config_read,
	.notify = tdev_notify,
};

/*
 * The same device offering one feature more: refused, unless that feature is optional
 * (a newer tern's, which a snapshot from before it lacks): then it is withdrawn.
 */
static const struct virtio_dev_ops tdev_ops_more = {
	.name = "vtest",
	.device_id = VIRTIO_ID_RNG,
	.features = T_FEATURES | (1ULL << 7),
	.num_queues = NQ,
	.queue_max = QMAX,
	.config_size = 8,
	.config_read = tdev_config_read,
	.notify = tdev_notify,
};

static const struct virtio_dev_ops tdev_ops_more_optional = {
	.name = "vtest",
	.device_id = VIRTIO_ID_RNG,
	.features = T_FEATURES | (1ULL << 7),
	.features_optional = 1ULL << 7,
	.num_queues = NQ,
	.queue_max = QMAX,
	.config_size = 8,
	.config_read = tdev_config_read,
	.notify = tdev_notify,
};

static const struct virtio_dev_ops tdev_ops_other = {
	.name = "vtest",
	.device_id = VIRTIO_ID_CONSOLE,
	.features = T_FEATURES,
	.num_queues = NQ,
	.queue_max = QMAX,
	.config_size = 8,
	.config_read = tdev_config_read,
	.notify = tdev_notify,
};

/* Sets used_event to the current used index: the next completion interrupts. */
static void want_irq(struct vg_guest *g, unsigned int q)
{
	vg_put16(g, VG_AVAIL(q) + 4 + 2 * VG_QSIZE, vg_used_idx(g, q));
}

static uint16_t post(struct vg_guest *g, unsigned int q)
{
	struct vg_seg s[2] = { { BUF_GPA, 16, false }, { BUF_GPA + 0x100, 16, true } };

	return vg_chain(g, q, s, 2);
}

static bool same_queue(const struct virtq *a, const struct virtq *b)
{
	return a->size == b->size && a->ready == b->ready && a->desc_gpa == b->desc_gpa &&
	       a->avail_gpa == b->avail_gpa && a->used_gpa == b->used_gpa &&
	       a->last_avail == b->last_avail && a->used_idx == b->used_idx &&
	       a->signalled_used == b->signalled_used && a->signalled_valid == b->signalled_valid &&
	       a->event_idx == b->event_idx && a->indirect == b->indirect && a->broken == b->broken;
}

static bool same_core(const struct virtio_dev *a, const struct virtio_dev *b)
{
	if (a->status != b->status || a->driver_features != b->driver_features ||
	    a->config_generation != b->config_generation)
		return false;
	for (unsigned int i = 0; i < VIRTIO_MAX_QUEUES; i++)
		if (!same_queue(&a->q[i], &b->q[i]))
			return false;
	return true;
}

/* ---- virtio-pci over a fake platform ---- */

struct pfx {
	struct irq_routing routing;
	struct pci_platform plat;
	struct pci_bus bus;
	struct tdev td;
	struct virtio_pci *t;
	unsigned int commits, irqfds, msis, ioev_assigned;
	int ioev_fail;
	uint32_t nroutes;
	struct kvm_irq_routing_entry routes[IRQ_ROUTING_MAX_ENTRIES];
};

static int fake_set_routing(void *ctx, const struct kvm_irq_routing_entry *e, uint32_t n)
{
	struct pfx *f = ctx;

	f->commits++;
	f->nroutes = n;
	memcpy(f->routes, e, n * sizeof(*e));
	return 0;
}

static int fake_irqfd(const struct pci_platform *p, int efd, uint32_t gsi, bool assign)
{
	struct pfx *f = p->opaque;

	if (assign)
		f->irqfds++;
	return 0;
}

static int fake_ioeventfd(const struct pci_platform *p, int efd, uint64_t addr, uint32_t len,
			  bool assign)
{
	struct pfx *f = p->opaque;

	if (assign && f->ioev_fail)
		return f->ioev_fail;
	if (assign)
		f->ioev_assigned++;
	return 0;
}

static int fake_signal_msi(const struct pci_platform *p, uint64_t addr, uint32_t data)
{
	((struct pfx *)p->opaque)->msis++;
	return 0;
}

static int fake_watch(const struct pci_platform *p, int fd, loop_fn fn, void *opaque)
{
	return 0;
}

static int fake_unwatch(const struct pci_platform *p, int fd)
{
	return 0;
}

static struct pfx *pfx_new(struct guest_mem *mem, const struct virtio_dev_ops *ops, int ioev_fail)
{
	struct pfx *f = calloc(1, sizeof(*f));

	if (!f)
		return NULL;
	f->ioev_fail = ioev_fail;
	irq_routing_init(&f->routing, fake_set_routing, f);
	f->plat = (struct pci_platform){
		.routing = &f->routing,
		.opaque = f,
		.irqfd = fake_irqfd,
		.ioeventfd = fake_ioeventfd,
		.signal_msi = fake_signal_msi,
		.watch = fake_watch,
		.unwatch = fake_unwatch,
	};
	pci_bus_init(&f->bus, LAYOUT_PCI_MMIO_BASE, LAYOUT_PCI_MMIO_SIZE, &f->plat);
	virtio_dev_init(&f->td.dev, ops, &f->td, mem);
	if (virtio_pci_add(&f->bus, &f->td.dev) < 0) {
		pci_bus_destroy(&f->bus);
		irq_routing_destroy(&f->routing);
		free(f);
		return NULL;
	}
	f->t = virtio_pci_of(&f->td.dev);
	return f;
}

static void pfx_free(struct pfx *f)
{
	pci_bus_destroy(&f->bus);
	irq_routing_destroy(&f->routing);
	free(f);
}

static void bar_wr(struct pfx *f, uint32_t off, uint32_t len, uint64_t v)
{
	pci_mmio_io(&f->bus, f->t->pci.bar[0].addr + off - LAYOUT_PCI_MMIO_BASE, (uint8_t *)&v, len,
		    true);
}

static uint64_t bar_rd(struct pfx *f, uint32_t off, uint32_t len)
{
	uint64_t v = 0;

	pci_mmio_io(&f->bus, f->t->pci.bar[0].addr + off - LAYOUT_PCI_MMIO_BASE, (uint8_t *)&v, len,
		    false);
	return v;
}

static void common_wr(struct pfx *f, uint32_t reg, uint32_t len, uint64_t v)
{
	bar_wr(f, VIRTIO_PCI_COMMON + reg, len, v);
}

static void cfg_wr(struct pfx *f, uint32_t off, uint32_t len, uint32_t v)
{
	uint32_t a = 0x80000000u | (f->t->pci.slot << 11) | (off & 0xfc);

	pci_config_addr_io(&f->bus, 0, (uint8_t *)&a, 4, true);
	pci_config_data_io(&f->bus, off & 3, (uint8_t *)&v, len, true);
}

static void program_vector(struct pfx *f, unsigned int v, bool masked)
{
	uint32_t e = VIRTIO_PCI_MSIX_TABLE + v * MSIX_ENTRY_SIZE;

	bar_wr(f, e, 4, 0xfee00000u | (v << 12));
	bar_wr(f, e + 4, 4, 0);
	bar_wr(f, e + 8, 4, 0x40 + v);
	bar_wr(f, e + 12, 4, masked);
}

/* What Linux does: features, MSI-X (config on vector 0, queue q on q + 1), queues, DRIVER_OK. */
static bool pci_start(struct pfx *f, struct vg_guest *g)
{
	uint64_t feat = T_FEATURES | (1ULL << VIRTIO_F_VERSION_1);

	common_wr(f, VIRTIO_PCI_COMMON_STATUS, 1, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
	for (unsigned int i = 0; i < 2; i++) {
		common_wr(f, VIRTIO_PCI_COMMON_GFSELECT, 4, i);
		common_wr(f, VIRTIO_PCI_COMMON_GF, 4, (uint32_t)(feat >> (32 * i)));
	}
	common_wr(f, VIRTIO_PCI_COMMON_STATUS, 1,
		  VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK);
	cfg_wr(f, f->t->msix_cap + 2u, 2, MSIX_CONTROL_ENABLE);
	for (unsigned int v = 0; v <= NQ; v++)
		program_vector(f, v, false);
	common_wr(f, VIRTIO_PCI_COMMON_MSIX, 2, 0);
	memset(guest_mem_ptr(&g->mem, VG_DESC(0), 0x4000ULL * NQ), 0, 0x4000ULL * NQ);
	for (unsigned int q = 0; q < NQ; q++) {
		g->avail[q] = g->next_desc[q] = 0;
		common_wr(f, VIRTIO_PCI_COMMON_Q_SELECT, 2, q);
		common_wr(f, VIRTIO_PCI_COMMON_Q_SIZE, 2, VG_QSIZE);
		common_wr(f, VIRTIO_PCI_COMMON_Q_MSIX, 2, q + 1);
		common_wr(f, VIRTIO_PCI_COMMON_Q_DESC, 8, VG_DESC(q));
		common_wr(f, VIRTIO_PCI_COMMON_Q_AVAIL, 8, VG_AVAIL(q));
		common_wr(f, VIRTIO_PCI_COMMON_Q_USED, 8, VG_USED(q));
		common_wr(f, VIRTIO_PCI_COMMON_Q_ENABLE, 2, 1);
	}
	common_wr(f, VIRTIO_PCI_COMMON_STATUS, 1, VG_LIVE);
	return virtio_dev_live(&f->td.dev) && f->td.dev.q[NQ - 1].ready;
}

static void pci_kick(struct pfx *f, unsigned int q)
{
	bar_wr(f, VIRTIO_PCI_NOTIFY + VIRTIO_PCI_NOTIFY_MULT * q, 2, q);
}

static uint64_t efd_count(int fd)
{
	uint64_t n = 0;

	if (read(fd, &n, sizeof(n)) != sizeof(n))
		return 0;
	return n;
}

static const struct kvm_irq_routing_entry *msi_route(struct pfx *f, int gsi)
{
	for (uint32_t i = 0; i < f->nroutes; i++)
		if (f->routes[i].gsi == (uint32_t)gsi && f->routes[i].type == KVM_IRQ_ROUTING_MSI)
			return &f->routes[i];
	return NULL;
}

static int pci_save_into(struct pfx *f, struct devstate *ds)
{
	if (devstate_begin(ds, VMSTATE_TAG_VIRTIO, VIRTIO_STATE_VERSION))
		return -1;
	int r = virtio_pci_save(f->t, &ds->w);
	if (r)
		return r;
	return devstate_finish(ds);
}

static bool same_payload(const struct devstate *a, const struct devstate *b)
{
	return a->s && b->s && a->s->len == b->s->len &&
	       !memcmp(a->s->payload, b->s->payload, a->s->len);
}

/*
 * A device with progress on both queues, a pending avail entry on queue 0, a masked
 * vector with its pending bit set, and selectors away from their reset values.
 */
static struct pfx *pci_busy_device(struct vg_guest *g)
{
	struct pfx *a = pfx_new(&g->mem, &tdev_ops, 0);

	if (!a || !pci_start(a, g))
		return a;
	for (int i = 0; i < 3; i++)
		post(g, 0);
	want_irq(g, 0);
	pci_kick(a, 0);
	want_irq(g, 1);
	post(g, 1);
	pci_kick(a, 1);
	/* Queue 1's vector masked: its next interrupt waits in the PBA. */
	bar_wr(a, VIRTIO_PCI_MSIX_TABLE + 2 * MSIX_ENTRY_SIZE + MSIX_ENTRY_CTRL, 4, 1);
	want_irq(g, 1);
	post(g, 1);
	pci_kick(a, 1);
	post(g, 0); /* made available, not kicked: the restored device must serve it */
	common_wr(a, VIRTIO_PCI_COMMON_DFSELECT, 4, 1);
	common_wr(a, VIRTIO_PCI_COMMON_GFSELECT, 4, 1);
	common_wr(a, VIRTIO_PCI_COMMON_Q_SELECT, 2, 1);
	return a;
}

TEST(virtio_state_pci_roundtrip)
{
	struct vg_guest g = { 0 };
	struct devstate sa, sb;
	struct vmstate_cursor c;
	char err[256] = "";

	REQUIRE(guest_mem_create(&g.mem, VG_MEM) == 0);
	struct pfx *a = pci_busy_device(&g);
	REQUIRE(a && virtio_dev_live(&a->td.dev));
	CHECK(vg_used_idx(&g, 0) == 3 && vg_used_idx(&g, 1) == 2);
	CHECK(a->t->pba == 1u << 2);
	CHECK(a->td.dev.q[0].signalled_valid && a->td.dev.q[0].event_idx);
	REQUIRE(pci_save_into(a, &sa) == 0);

	struct pfx *b = pfx_new(&g.mem, &tdev_ops, 0);
	REQUIRE(b);
	unsigned int commits = b->commits;
	devstate_cursor(&sa, &c);
	CHECK(virtio_pci_restore(b->t, &c, err, sizeof(err)) == 0);
	if (err[0])
		printf("  %s\n", err);

	/* The same state: the fields, and the bytes it saves again. */
	CHECK(same_core(&a->td.dev, &b->td.dev));
	CHECK(b->t->device_feature_select == 1 && b->t->driver_feature_select == 1);
	CHECK(b->t->queue_select == 1 && b->t->msix_config == 0);
	CHECK(b->t->queue_vector[0] == 1 && b->t->queue_vector[1] == 2);
	CHECK(b->t->msix_enabled && !b->t->msix_masked && b->t->pba == 1u << 2);
	CHECK(!memcmp(a->t->msix_table, b->t->msix_table, sizeof(a->t->msix_table)));
	CHECK(pci_cfg_get(b->t->pci.cfg, b->t->msix_cap + 2u, 2) & MSIX_CONTROL_ENABLE);
	CHECK(pci_save_into(b, &sb) == 0);
	CHECK(same_payload(&sa, &sb));
	CHECK(b->td.completions == 0 && b->td.activates == 0); /* nothing ran yet */

	/* Each programmed vector has its MSI route and irqfd again, as after a delivery. */
	CHECK(b->commits > commits);
	for (unsigned int v = 0; v <= NQ; v++) {
		const struct kvm_irq_routing_entry *e = msi_route(b, b->t->vec[v].gsi);
		CHECK(b->t->vec[v].route_ok && b->t->vec[v].irqfd_bound);
		CHECK(e && e->u.msi.address_lo == (0xfee00000u | (v << 12)) &&
		      e->u.msi.data == 0x40 + v);
	}
	CHECK(b->irqfds == NQ + 1);
	/* The kick ioeventfds sit in the BAR, which did not move: not registered again. */
	for (unsigned int q = 0; q < NQ; q++)
		CHECK(b->t->kick[q].registered &&
		      b->t->kick[q].addr == b->t->pci.bar[0].addr + VIRTIO_PCI_NOTIFY + 4 * q);
	CHECK(b->ioev_assigned == NQ);

	/* Resume: the entry made available before the save is served, with its interrupt. */
	want_irq(&g, 0);
	virtio_dev_resume_kick(&b->td.dev);
	CHECK(b->td.activates == 1);
	CHECK(vg_used_idx(&g, 0) == 4 && b->td.completions == 1);
	CHECK(efd_count(b->t->vec[1].fd) == 1);
	/* A new request is served, through the guest's kick. */
	want_irq(&g, 0);
	uint16_t head = post(&g, 0);
	pci_kick(b, 0);
	CHECK(vg_used_idx(&g, 0) == 5 && vg_used_id(&g, 0, 4) == head);
	CHECK(efd_count(b->t->vec[1].fd) == 1);
	/* Unmasking queue 1's vector delivers what was pending at the save. */
	bar_wr(b, VIRTIO_PCI_MSIX_TABLE + 2 * MSIX_ENTRY_SIZE + MSIX_ENTRY_CTRL, 4, 0);
	CHECK(b->t->pba == 0 && efd_count(b->t->vec[2].fd) == 1);
	CHECK(b->msis == 0);
	CHECK(bar_rd(b, VIRTIO_PCI_COMMON + VIRTIO_PCI_COMMON_STATUS, 1) == VG_LIVE);

	devstate_free(&sa);
	devstate_free(&sb);
	pfx_free(a);
	pfx_free(b);
	guest_mem_destroy(&g.mem);
}

/* The BAR moved before the restore, or its ioeventfds failed at set-up: they follow it. */
TEST(virtio_state_pci_kicks_follow_bar)
{
	struct vg_guest g = { 0 };
	struct devstate sa;
	struct vmstate_cursor c;
	char err[256];

	REQUIRE(guest_mem_create(&g.mem, VG_MEM) == 0);
	struct pfx *a = pci_busy_device(&g);
	REQUIRE(a && virtio_dev_live(&a->td.dev));
	REQUIRE(pci_save_into(a, &sa) == 0);

	struct pfx *b = pfx_new(&g.mem, &tdev_ops, -ENOSPC);
	REQUIRE(b);
	CHECK(!b->t->kick[0].registered && !b->t->kick[1].registered);
	b->ioev_fail = 0;
	devstate_cursor(&sa, &c);
	CHECK(virtio_pci_restore(b->t, &c, err, sizeof(err)) == 0);
	for (unsigned int q = 0; q < NQ; q++)
		CHECK(b->t->kick[q].registered &&
		      b->t->kick[q].addr == b->t->pci.bar[0].addr + VIRTIO_PCI_NOTIFY + 4 * q);
	CHECK(b->ioev_assigned == NQ);

	devstate_free(&sa);
	pfx_free(a);
	pfx_free(b);
	guest_mem_destroy(&g.mem);
}

/* Restores an altered section into f; checks the refusal and that f did not change. */
static void refused(struct pfx *f, struct vmstate_cursor *c, const char *want)
{
	struct devstate before, after;
	unsigned int commits = f->commits, irqfds = f->irqfds, ioev = f->ioev_assigned;
	char err[256] = "";

	REQUIRE(pci_save_into(f, &before) == 0);
	CHECK(virtio_pci_restore(f->t, c, err, sizeof(err)) == -EINVAL);
	CHECK(!strncmp(err, "vtest: ", 7));
	if (!strstr(err, want)) {
		printf("  refusal '%s' does not mention '%s'\n", err, want);
		CHECK(false);
	}
	CHECK(pci_save_into(f, &after) == 0);
	CHECK(same_payload(&before, &after));
	CHECK(f->commits == commits && f->irqfds == irqfds && f->ioev_assigned == ioev);
	CHECK(!virtio_dev_live(&f->td.dev) && f->td.dev.status == 0);
	devstate_free(&before);
	devstate_free(&after);
}

/* Saves a with one field changed by change (under the lock), and restores that into b. */
static void refused_tampered(struct pfx *a, struct pfx *b, void (*change)(struct pfx *, bool),
			     const char *want)
{
	struct devstate s;
	struct vmstate_cursor c;

	pthread_mutex_lock(&a->td.dev.lock);
	change(a, true);
	pthread_mutex_unlock(&a->td.dev.lock);
	int r = pci_save_into(a, &s);
	pthread_mutex_lock(&a->td.dev.lock);
	change(a, false);
	pthread_mutex_unlock(&a->td.dev.lock);
	REQUIRE(r == 0);
	devstate_cursor(&s, &c);
	refused(b, &c, want);
	devstate_free(&s);
}

static void big_queue(struct pfx *a, bool on)
{
	a->td.dev.q[0].size = on ? 2 * QMAX : VG_QSIZE;
}

static void odd_queue(struct pfx *a, bool on)
{
	a->td.dev.q[1].size = on ? 48 : VG_QSIZE;
}

static void ring_outside(struct pfx *a, bool on)
{
	a->td.dev.q[1].used_gpa = on ? VG_MEM - 8 : VG_USED(1);
}

static void unoffered(struct pfx *a, bool on)
{
	if (on)
		a->td.dev.driver_features |= 1ULL << 3;
	else
		a->td.dev.driver_features &= ~(1ULL << 3);
}

static void bad_vector(struct pfx *a, bool on)
{
	a->t->queue_vector[1] = on ? NQ + 5 : 2;
}

static void bad_config_vector(struct pfx *a, bool on)
{
	a->t->msix_config = on ? NQ + 1 : 0;
}

static void live_unchecked(struct pfx *a, bool on)
{
	a->td.dev.status = on ? (uint8_t)(VG_LIVE & ~VIRTIO_STATUS_FEATURES_OK) : VG_LIVE;
}

static void bad_isr(struct pfx *a, bool on)
{
	a->t->isr = on ? 0x80 : 0;
}

static void bad_pba(struct pfx *a, bool on)
{
	a->t->pba = on ? 1u << 7 : 1u << 2;
}

static void bad_ctrl(struct pfx *a, bool on)
{
	a->t->msix_table[MSIX_ENTRY_CTRL + 1] = on ? 1 : 0;
}

TEST(virtio_state_pci_refusals)
{
	struct vg_guest g = { 0 };
	struct devstate sa;
	struct vmstate_cursor c;

	REQUIRE(guest_mem_create(&g.mem, VG_MEM) == 0);
	struct pfx *a = pci_busy_device(&g);
	REQUIRE(a && virtio_dev_live(&a->td.dev));
	REQUIRE(pci_save_into(a, &sa) == 0);
	struct pfx *b = pfx_new(&g.mem, &tdev_ops, 0);
	REQUIRE(b);
	size_t len = sa.s->len;

	/* Cut anywhere, or one byte too long */
	devstate_altered(&sa, &c, 0, SIZE_MAX, 0);
	refused(b, &c, "truncated");
	devstate_altered(&sa, &c, 20, SIZE_MAX, 0);
	refused(b, &c, "truncated");
	devstate_altered(&sa, &c, len / 2, SIZE_MAX, 0);
	refused(b, &c, "truncated");
	devstate_altered(&sa, &c, len - 1, SIZE_MAX, 0);
	refused(b, &c, "truncated");
	devstate_altered(&sa, &c, len + 1, SIZE_MAX, 0);
	refused(b, &c, "1 byte(s) past the end");
	/* A boolean that is neither 0 nor 1 (queue 0's ready flag) */
	devstate_altered(&sa, &c, len, 1 + 4 + 8 + 8 + 1 + 4 + 4 + 2, 2);
	refused(b, &c, "malformed");
	/* A transport byte that is neither */
	devstate_altered(&sa, &c, len, 0, 7);
	refused(b, &c, "unknown transport");

	refused_tampered(a, b, big_queue, "queue 0: size");
	refused_tampered(a, b, odd_queue, "queue 1: size");
	refused_tampered(a, b, ring_outside, "queue 1: ring addresses");
	refused_tampered(a, b, unoffered, "not offered");
	refused_tampered(a, b, bad_vector, "queue 1 vector 7");
	refused_tampered(a, b, bad_config_vector, "config vector 3");
	refused_tampered(a, b, live_unchecked, "DRIVER_OK without FEATURES_OK");
	refused_tampered(a, b, bad_isr, "ISR");
	refused_tampered(a, b, bad_pba, "pending bits");
	refused_tampered(a, b, bad_ctrl, "reserved bits");

	/* The same section into a device configured otherwise */
	struct pfx *fewer = pfx_new(&g.mem, &tdev_ops_fewer, 0);
	struct pfx *other = pfx_new(&g.mem, &tdev_ops_other, 0);
	REQUIRE(fewer && other);
	devstate_cursor(&sa, &c);
	refused(fewer, &c, "features: the snapshot's device offered");
	devstate_cursor(&sa, &c);
	refused(other, &c, "of type 4");
	struct pfx *more = pfx_new(&g.mem, &tdev_ops_more, 0);
	struct pfx *more_opt = pfx_new(&g.mem, &tdev_ops_more_optional, 0);
	REQUIRE(more && more_opt);
	devstate_cursor(&sa, &c);
	refused(more, &c, "features: the snapshot's device offered");
	char merr[256] = "";
	devstate_cursor(&sa, &c);
	CHECK(virtio_pci_restore(more_opt->t, &c, merr, sizeof(merr)) == 0);
	CHECK(virtio_dev_features(&more_opt->td.dev) == virtio_dev_features(&a->td.dev));
	CHECK(more_opt->td.dev.driver_features == a->td.dev.driver_features);
	pfx_free(more);
	pfx_free(more_opt);

	/* After all that, the untouched section still restores. */
	char err[256] = "";
	devstate_cursor(&sa, &c);
	CHECK(virtio_pci_restore(b->t, &c, err, sizeof(err)) == 0);
	CHECK(same_core(&a->td.dev, &b->td.dev));

	devstate_free(&sa);
	pfx_free(a);
	pfx_free(b);
	pfx_free(fewer);
	pfx_free(other);
	guest_mem_destroy(&g.mem);
}

/* ---- virtio-mmio ---- */

struct mfx {
	struct tdev td;
	struct vg_mmio m;
};

static struct mfx *mfx_new(struct guest_mem *mem)
{
	struct mfx *f = calloc(1, sizeof(*f));

	if (!f)
		return NULL;
	virtio_dev_init(&f->td.dev, &tdev_ops, &f->td, mem);
	if (vg_attach(&f->m, &f->td.dev)) {
		free(f);
		return NULL;
	}
	return f;
}

static int mmio_save_into(struct mfx *f, struct devstate *ds)
{
	if (devstate_begin(ds, VMSTATE_TAG_VIRTIO, VIRTIO_STATE_VERSION))
		return -1;
	int r = virtio_mmio_save(&f->m.t, &ds->w);
	if (r)
		return r;
	return devstate_finish(ds);
}

static void mmio_refused(struct mfx *f, struct vmstate_cursor *c, const char *want)
{
	struct devstate before, after;
	unsigned int irq_calls = f->m.irq_calls;
	char err[256] = "";

	REQUIRE(mmio_save_into(f, &before) == 0);
	CHECK(virtio_mmio_restore(&f->m.t, c, err, sizeof(err)) == -EINVAL);
	if (!strstr(err, want)) {
		printf("  refusal '%s' does not mention '%s'\n", err, want);
		CHECK(false);
	}
	CHECK(mmio_save_into(f, &after) == 0);
	CHECK(same_payload(&before, &after));
	CHECK(f->m.irq_calls == irq_calls);
	devstate_free(&before);
	devstate_free(&after);
}

TEST(virtio_state_mmio_roundtrip)
{
	struct vg_guest g = { 0 };
	struct devstate sa, sb;
	struct vmstate_cursor c;
	char err[256] = "";

	REQUIRE(guest_mem_create(&g.mem, VG_MEM) == 0);
	struct mfx *a = mfx_new(&g.mem);
	REQUIRE(a && vg_start(&a->m, &g, NQ));
	post(&g, 0);
	post(&g, 0);
	want_irq(&g, 0);
	vg_kick(&a->m, 0);
	CHECK(vg_used_idx(&g, 0) == 2);
	/* The interrupt is not acknowledged yet when the VM stops. */
	CHECK(a->m.level == 1 && vg_rd(&a->m, VG_INT_STATUS) == VIRTIO_ISR_QUEUE);
	post(&g, 1); /* available, not kicked */
	vg_wr(&a->m, VG_QUEUE_SEL, 1);
	vg_wr(&a->m, VG_DEV_FEAT_SEL, 1);
	REQUIRE(mmio_save_into(a, &sa) == 0);

	struct mfx *b = mfx_new(&g.mem);
	REQUIRE(b);
	devstate_cursor(&sa, &c);
	CHECK(virtio_mmio_restore(&b->m.t, &c, err, sizeof(err)) == 0);
	if (err[0])
		printf("  %s\n", err);
	CHECK(same_core(&a->td.dev, &b->td.dev));
	CHECK(b->m.t.queue_sel == 1 && b->m.t.device_features_sel == 1);
	/* The level line is driven again from the interrupt status. */
	CHECK(b->m.irq_calls == 1 && b->m.level == 1);
	CHECK(vg_rd(&b->m, VG_STATUS) == VG_LIVE && vg_rd(&b->m, VG_QUEUE_READY) == 1);
	CHECK(mmio_save_into(b, &sb) == 0);
	CHECK(same_payload(&sa, &sb));

	virtio_dev_resume_kick(&b->td.dev);
	CHECK(vg_used_idx(&g, 1) == 1 && vg_used_idx(&g, 0) == 2);
	vg_wr(&b->m, VG_INT_ACK, VIRTIO_ISR_QUEUE);
	CHECK(b->m.level == 0);
	want_irq(&g, 0);
	uint16_t head = post(&g, 0);
	vg_kick(&b->m, 0);
	CHECK(vg_used_idx(&g, 0) == 3 && vg_used_id(&g, 0, 2) == head && b->m.level == 1);

	/* Refusals leave a fresh device as it was */
	struct mfx *f = mfx_new(&g.mem);
	REQUIRE(f);
	devstate_altered(&sa, &c, sa.s->len - 1, SIZE_MAX, 0);
	mmio_refused(f, &c, "truncated");
	devstate_altered(&sa, &c, sa.s->len + 1, SIZE_MAX, 0);
	mmio_refused(f, &c, "1 byte(s) past the end");
	devstate_altered(&sa, &c, sa.s->len, sa.s->len - 4, 0x05); /* ISR: bits 0 and 2 */
	mmio_refused(f, &c, "interrupt status 0x5");
	CHECK(f->td.dev.status == 0 && f->m.level == 0);

	devstate_free(&sa);
	devstate_free(&sb);
	free(a);
	free(b);
	free(f);
	guest_mem_destroy(&g.mem);
}

/* A section saved on one transport is refused by the other. */
TEST(virtio_state_transport_mismatch)
{
	struct vg_guest g = { 0 };
	struct devstate sp, sm;
	struct vmstate_cursor c;
	char err[256] = "";

	REQUIRE(guest_mem_create(&g.mem, VG_MEM) == 0);
	struct pfx *p = pci_busy_device(&g);
	struct mfx *m = mfx_new(&g.mem);
	REQUIRE(p && m);
	REQUIRE(pci_save_into(p, &sp) == 0);
	REQUIRE(mmio_save_into(m, &sm) == 0);
	struct pfx *p2 = pfx_new(&g.mem, &tdev_ops, 0);
	REQUIRE(p2);
	devstate_cursor(&sp, &c);
	mmio_refused(m, &c, "the snapshot has this device on virtio-pci, this VM on virtio-mmio");
	devstate_cursor(&sm, &c);
	CHECK(virtio_pci_restore(p2->t, &c, err, sizeof(err)) == -EINVAL);
	CHECK(strstr(err, "on virtio-mmio, this VM on virtio-pci") != NULL);
	devstate_free(&sp);
	devstate_free(&sm);
	pfx_free(p);
	pfx_free(p2);
	free(m);
	guest_mem_destroy(&g.mem);
}
