/*
 * Tests for the virtio-pci transport over a fake platform (routing table, irqfd,
 * ioeventfd, MSI and event-loop hooks record what they are asked) and a small test
 * device on real queues in a memfd-backed guest_mem: identity, capabilities, common
 * configuration, queues, MSI-X routing and masking, ISR, device configuration, the
 * PCI configuration access window, BAR moves and hostile accesses everywhere.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "arch/x86/layout.h"
#include "core/log.h"
#include "devices/pci.h"
#include "kvm/irq_routing.h"
#include "virtio/pci.h"
#include "virtio/virtio.h"
#include "unit.h"

#define WIN_BASE LAYOUT_PCI_MMIO_BASE
#define WIN_SIZE LAYOUT_PCI_MMIO_SIZE
#define NQ 2
#define QMAX 64
#define CFG_SIZE 12
#define DESC_GPA 0x10000ULL
#define AVAIL_GPA 0x11000ULL
#define USED_GPA 0x12000ULL
#define BUF_GPA 0x20000ULL
#define MAX_EVENTS 256

struct ioev {
	int fd;
	uint64_t addr;
	uint32_t len;
	bool assign;
};

struct fx {
	struct guest_mem mem;
	struct irq_routing routing;
	struct pci_platform plat;
	struct pci_bus bus;
	struct virtio_dev dev;
	struct virtio_pci *t;
	int slot;
	/* fake KVM */
	unsigned int commits;
	uint32_t nroutes;
	struct kvm_irq_routing_entry routes[IRQ_ROUTING_MAX_ENTRIES];
	unsigned int irqfds;
	int irqfd_fd[MAX_EVENTS];
	uint32_t irqfd_gsi[MAX_EVENTS];
	unsigned int nioev;
	struct ioev ioev[MAX_EVENTS];
	int ioev_fail;
	unsigned int msis;
	uint64_t msi_addr;
	uint32_t msi_data;
	unsigned int nwatch;
	int watch_fd[NQ];
	loop_fn watch_fn[NQ];
	void *watch_opaque[NQ];
	/* test device */
	uint8_t cfg[CFG_SIZE];
	unsigned int notifies[NQ], activates, resets, completions;
};

static int fake_set_routing(void *ctx, const struct kvm_irq_routing_entry *e, uint32_t n)
{
	struct fx *f = ctx;

	f->commits++;
	f->nroutes = n;
	memcpy(f->routes, e, n * sizeof(*e));
	return 0;
}

static int fake_irqfd(const struct pci_platform *p, int efd, uint32_t gsi, bool assign)
{
	struct fx *f = p->opaque;

	if (assign && f->irqfds < MAX_EVENTS) {
		f->irqfd_fd[f->irqfds] = efd;
		f->irqfd_gsi[f->irqfds++] = gsi;
	}
	return 0;
}

static int fake_ioeventfd(const struct pci_platform *p, int efd, uint64_t addr, uint32_t len,
			  bool assign)
{
	struct fx *f = p->opaque;

	if (assign && f->ioev_fail)
		return f->ioev_fail;
	if (f->nioev < MAX_EVENTS)
		f->ioev[f->nioev++] = (struct ioev){ efd, addr, len, assign };
	return 0;
}

static int fake_signal_msi(const struct pci_platform *p, uint64_t addr, uint32_t data)
{
	struct fx *f = p->opaque;

	f->msis++;
	f->msi_addr = addr;
	f->msi_data = data;
	return 0;
}

static int fake_watch(const struct pci_platform *p, int fd, loop_fn fn, void *opaque)
{
	struct fx *f = p->opaque;

	if (f->nwatch >= NQ)
		return -ENOSPC;
	f->watch_fd[f->nwatch] = fd;
	f->watch_fn[f->nwatch] = fn;
	f->watch_opaque[f->nwatch++] = opaque;
	return 0;
}

static int fake_unwatch(const struct pci_platform *p, int fd)
{
	return 0;
}

/* The test device: config space is a byte array; notify completes every chain. */
static void tdev_config_read(struct virtio_dev *d, uint32_t off, void *data, uint32_t len)
{
	struct fx *f = d->priv;

	memcpy(data, f->cfg + off, len);
}

static void tdev_config_write(struct virtio_dev *d, uint32_t off, const void *data, uint32_t len)
{
	struct fx *f = d->priv;

	memcpy(f->cfg + off, data, len);
}

static void tdev_notify(struct virtio_dev *d, unsigned int q)
{
	static struct virtq_chain c;
	struct fx *f = d->priv;
	int r;

	f->notifies[q]++;
	while ((r = virtq_pop(&d->q[q], d->mem, &c)) == 1) {
		f->completions++;
		virtio_dev_complete(d, q, c.head, 0);
	}
	if (r < 0)
		virtio_dev_needs_reset(d, "malformed chain");
}

static void tdev_activate(struct virtio_dev *d)
{
	((struct fx *)d->priv)->activates++;
}

static bool tdev_reset(struct virtio_dev *d)
{
	((struct fx *)d->priv)->resets++;
	return true;
}

static const struct virtio_dev_ops tdev_ops = {
	.name = "vtest",
	.device_id = VIRTIO_ID_BLOCK,
	.features = (1ULL << 0) | (1ULL << 5) | (1ULL << VIRTIO_RING_F_EVENT_IDX),
	.num_queues = NQ,
	.queue_max = QMAX,
	.config_size = CFG_SIZE,
	.config_read = tdev_config_read,
	.config_write = tdev_config_write,
	.notify = tdev_notify,
	.activate = tdev_activate,
	.reset = tdev_reset,
};

static struct fx *fx_new(void)
{
	struct fx *f = calloc(1, sizeof(*f));

	if (!f || guest_mem_create(&f->mem, 16ULL << 20)) {
		free(f);
		return NULL;
	}
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
	pci_bus_init(&f->bus, WIN_BASE, WIN_SIZE, &f->plat);
	virtio_dev_init(&f->dev, &tdev_ops, f, &f->mem);
	for (unsigned int i = 0; i < CFG_SIZE; i++)
		f->cfg[i] = (uint8_t)(0xa0 + i);
	f->slot = virtio_pci_add(&f->bus, &f->dev);
	if (f->slot < 0) {
		pci_bus_destroy(&f->bus);
		guest_mem_destroy(&f->mem);
		free(f);
		return NULL;
	}
	f->t = f->dev.transport;
	return f;
}

static void fx_free(struct fx *f)
{
	pci_bus_destroy(&f->bus);
	irq_routing_destroy(&f->routing);
	guest_mem_destroy(&f->mem);
	free(f);
}

/* Configuration space through ports 0xcf8/0xcfc */
static uint32_t cfg_rd(struct fx *f, uint32_t off, uint32_t len)
{
	uint32_t a = 0x80000000u | ((uint32_t)f->slot << 11) | (off & 0xfc), v = 0;

	pci_config_addr_io(&f->bus, 0, (uint8_t *)&a, 4, true);
	pci_config_data_io(&f->bus, off & 3, (uint8_t *)&v, len, false);
	return v;
}

static void cfg_wr(struct fx *f, uint32_t off, uint32_t len, uint32_t v)
{
	uint32_t a = 0x80000000u | ((uint32_t)f->slot << 11) | (off & 0xfc);

	pci_config_addr_io(&f->bus, 0, (uint8_t *)&a, 4, true);
	pci_config_data_io(&f->bus, off & 3, (uint8_t *)&v, len, true);
}

/* The BAR through the MMIO window, where it currently decodes */
static uint64_t bar_rd(struct fx *f, uint32_t off, uint32_t len)
{
	uint64_t v = 0;

	pci_mmio_io(&f->bus, f->t->pci.bar[0].addr + off - WIN_BASE, (uint8_t *)&v, len, false);
	return v;
}

static void bar_wr(struct fx *f, uint32_t off, uint32_t len, uint64_t v)
{
	pci_mmio_io(&f->bus, f->t->pci.bar[0].addr + off - WIN_BASE, (uint8_t *)&v, len, true);
}

static uint64_t common_rd(struct fx *f, uint32_t reg, uint32_t len)
{
	return bar_rd(f, VIRTIO_PCI_COMMON + reg, len);
}

static void common_wr(struct fx *f, uint32_t reg, uint32_t len, uint64_t v)
{
	bar_wr(f, VIRTIO_PCI_COMMON + reg, len, v);
}

/* Finds the first capability of a vendor cfg_type (or any id when cfg_type < 0). */
static uint32_t find_cap(struct fx *f, uint32_t id, int cfg_type)
{
	uint32_t ptr = cfg_rd(f, PCI_CAPABILITY_LIST, 1) & 0xfc;

	for (unsigned int n = 0; ptr && n < 48; n++) {
		if (cfg_rd(f, ptr, 1) == id &&
		    (cfg_type < 0 || cfg_rd(f, ptr + 3, 1) == (uint32_t)cfg_type))
			return ptr;
		ptr = cfg_rd(f, ptr + 1, 1) & 0xfc;
	}
	return 0;
}

static void drive_features(struct fx *f)
{
	common_wr(f, VIRTIO_PCI_COMMON_STATUS, 1, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
	common_wr(f, VIRTIO_PCI_COMMON_GFSELECT, 4, 0);
	common_wr(f, VIRTIO_PCI_COMMON_GF, 4, 1u << 5);
	common_wr(f, VIRTIO_PCI_COMMON_GFSELECT, 4, 1);
	common_wr(f, VIRTIO_PCI_COMMON_GF, 4, 1); /* VERSION_1 */
	common_wr(f, VIRTIO_PCI_COMMON_STATUS, 1,
		  VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK);
}

/* Programs queue q at the test ring addresses (size 16) and enables it. */
static void drive_queue(struct fx *f, unsigned int q, uint64_t base)
{
	common_wr(f, VIRTIO_PCI_COMMON_Q_SELECT, 2, q);
	common_wr(f, VIRTIO_PCI_COMMON_Q_SIZE, 2, 16);
	/* desc in 32-bit halves, the others with 64-bit writes */
	common_wr(f, VIRTIO_PCI_COMMON_Q_DESC, 4, (uint32_t)(DESC_GPA + base));
	common_wr(f, VIRTIO_PCI_COMMON_Q_DESC + 4, 4, 0);
	common_wr(f, VIRTIO_PCI_COMMON_Q_AVAIL, 8, AVAIL_GPA + base);
	common_wr(f, VIRTIO_PCI_COMMON_Q_USED, 8, USED_GPA + base);
	common_wr(f, VIRTIO_PCI_COMMON_Q_ENABLE, 2, 1);
}

static void set_msix(struct fx *f, bool enable, bool maskall)
{
	uint32_t cap = find_cap(f, PCI_CAP_ID_MSIX, -1);

	cfg_wr(f, cap + 2, 2,
	       (enable ? MSIX_CONTROL_ENABLE : 0) | (maskall ? MSIX_CONTROL_MASKALL : 0));
}

static void program_vector(struct fx *f, unsigned int v, uint64_t addr, uint32_t data, bool masked)
{
	uint32_t e = VIRTIO_PCI_MSIX_TABLE + v * MSIX_ENTRY_SIZE;

	bar_wr(f, e, 4, (uint32_t)addr);
	bar_wr(f, e + 4, 4, (uint32_t)(addr >> 32));
	bar_wr(f, e + 8, 4, data);
	bar_wr(f, e + 12, 4, masked);
}

static const struct kvm_irq_routing_entry *msi_route(struct fx *f, uint32_t gsi)
{
	for (uint32_t i = 0; i < f->nroutes; i++)
		if (f->routes[i].gsi == gsi && f->routes[i].type == KVM_IRQ_ROUTING_MSI)
			return &f->routes[i];
	return NULL;
}

static uint64_t eventfd_count(int fd)
{
	uint64_t n = 0;

	if (read(fd, &n, sizeof(n)) != sizeof(n))
		return 0;
	return n;
}

static void signal_q(struct fx *f, unsigned int q)
{
	pthread_mutex_lock(&f->dev.lock);
	f->dev.signal_queue(&f->dev, q);
	pthread_mutex_unlock(&f->dev.lock);
}

TEST(virtio_pci_identity)
{
	struct fx *f = fx_new();

	REQUIRE(f);
	CHECK(f->slot == 1);
	CHECK(cfg_rd(f, PCI_VENDOR_ID, 2) == VIRTIO_PCI_VENDOR);
	CHECK(cfg_rd(f, PCI_DEVICE_ID, 2) == 0x1040 + VIRTIO_ID_BLOCK);
	CHECK(cfg_rd(f, PCI_REVISION_ID, 1) == 1);
	CHECK(cfg_rd(f, PCI_SUBSYSTEM_VENDOR_ID, 2) == VIRTIO_PCI_VENDOR);
	CHECK(cfg_rd(f, PCI_SUBSYSTEM_ID, 2) >= 0x40);
	CHECK(cfg_rd(f, PCI_REVISION_ID, 4) >> 8 == 0x018000);
	CHECK(cfg_rd(f, PCI_HEADER_TYPE, 1) == 0);
	CHECK(cfg_rd(f, PCI_INTERRUPT_PIN, 1) == 0);
	CHECK(cfg_rd(f, PCI_STATUS, 2) & PCI_STATUS_CAP_LIST);
	CHECK(cfg_rd(f, PCI_COMMAND, 2) & PCI_COMMAND_MEMORY);
	uint32_t lo = cfg_rd(f, PCI_BAR0, 4);
	CHECK((lo & 0xf) == PCI_BAR_MEM_TYPE_64);
	uint64_t addr = (lo & ~0xfull) | (uint64_t)cfg_rd(f, PCI_BAR0 + 4, 4) << 32;
	CHECK(addr == f->t->pci.bar[0].addr);
	CHECK(addr >= WIN_BASE && addr + VIRTIO_PCI_BAR_SIZE <= WIN_BASE + WIN_SIZE);
	/* sizing */
	cfg_wr(f, PCI_BAR0, 4, 0xffffffffu);
	CHECK(cfg_rd(f, PCI_BAR0, 4) == ((uint32_t)-VIRTIO_PCI_BAR_SIZE | PCI_BAR_MEM_TYPE_64));
	cfg_wr(f, PCI_BAR0, 4, (uint32_t)addr);
	CHECK(f->t->pci.bar[0].addr == addr);
	CHECK(virtio_pci_class(VIRTIO_ID_NET) == 0x020000);
	CHECK(virtio_pci_class(VIRTIO_ID_RNG) == 0x00ff00);
	CHECK(virtio_pci_class(VIRTIO_ID_VSOCK) == 0xff0000);
	fx_free(f);
}

TEST(virtio_pci_capabilities)
{
	struct fx *f = fx_new();
	static const struct {
		int type;
		uint32_t off, len, cap_len;
	} want[] = {
		{ VIRTIO_PCI_CAP_COMMON_CFG, VIRTIO_PCI_COMMON, VIRTIO_PCI_COMMON_LEN, 16 },
		{ VIRTIO_PCI_CAP_NOTIFY_CFG, VIRTIO_PCI_NOTIFY, NQ * VIRTIO_PCI_NOTIFY_MULT, 20 },
		{ VIRTIO_PCI_CAP_ISR_CFG, VIRTIO_PCI_ISR, 1, 16 },
		{ VIRTIO_PCI_CAP_DEVICE_CFG, VIRTIO_PCI_DEVICE_CFG, CFG_SIZE, 16 },
		{ VIRTIO_PCI_CAP_PCI_CFG, 0, 0, 20 },
	};

	REQUIRE(f);
	for (unsigned int i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		uint32_t c = find_cap(f, PCI_CAP_ID_VNDR, want[i].type);
		CHECK(c >= PCI_CAP_START && c % 4 == 0);
		if (!c)
			continue;
		CHECK(cfg_rd(f, c + 2, 1) == want[i].cap_len);
		CHECK(cfg_rd(f, c + 4, 1) == VIRTIO_PCI_BAR);
		uint32_t off = cfg_rd(f, c + 8, 4), len = cfg_rd(f, c + 12, 4);
		CHECK(off == want[i].off && len == want[i].len);
		CHECK(off + len <= VIRTIO_PCI_BAR_SIZE);
		if (want[i].type == VIRTIO_PCI_CAP_NOTIFY_CFG)
			CHECK(cfg_rd(f, c + 16, 4) == VIRTIO_PCI_NOTIFY_MULT);
	}
	uint32_t m = find_cap(f, PCI_CAP_ID_MSIX, -1);
	REQUIRE(m);
	CHECK((cfg_rd(f, m + 2, 2) & 0x7ff) == NQ); /* table size - 1 */
	CHECK(cfg_rd(f, m + 4, 4) == (VIRTIO_PCI_MSIX_TABLE | VIRTIO_PCI_BAR));
	CHECK(cfg_rd(f, m + 8, 4) == (VIRTIO_PCI_MSIX_PBA | VIRTIO_PCI_BAR));
	/* Table size and offsets are read-only; enable and mask-all are not. */
	cfg_wr(f, m + 2, 2, 0xffff);
	CHECK(cfg_rd(f, m + 2, 2) == (0xc000 | NQ));
	cfg_wr(f, m + 4, 4, 0);
	CHECK(cfg_rd(f, m + 4, 4) == (VIRTIO_PCI_MSIX_TABLE | VIRTIO_PCI_BAR));
	/* queue_notify_off of each queue stays inside the notify capability */
	for (unsigned int q = 0; q < NQ; q++) {
		common_wr(f, VIRTIO_PCI_COMMON_Q_SELECT, 2, q);
		uint32_t noff = (uint32_t)common_rd(f, VIRTIO_PCI_COMMON_Q_NOFF, 2);
		CHECK(noff == q);
		CHECK(noff * VIRTIO_PCI_NOTIFY_MULT + 2 <= NQ * VIRTIO_PCI_NOTIFY_MULT);
	}
	fx_free(f);
}

TEST(virtio_pci_feature_negotiation)
{
	struct fx *f = fx_new();

	REQUIRE(f);
	CHECK(common_rd(f, VIRTIO_PCI_COMMON_NUMQ, 2) == NQ);
	common_wr(f, VIRTIO_PCI_COMMON_DFSELECT, 4, 0);
	CHECK(common_rd(f, VIRTIO_PCI_COMMON_DF, 4) == ((1u << 0) | (1u << 5) | (1u << 29)));
	common_wr(f, VIRTIO_PCI_COMMON_DFSELECT, 4, 1);
	CHECK(common_rd(f, VIRTIO_PCI_COMMON_DF, 4) == 1); /* VERSION_1 */
	common_wr(f, VIRTIO_PCI_COMMON_DFSELECT, 4, 2);
	CHECK(common_rd(f, VIRTIO_PCI_COMMON_DF, 4) == 0);
	CHECK(common_rd(f, VIRTIO_PCI_COMMON_DFSELECT, 4) == 2);
	common_wr(f, VIRTIO_PCI_COMMON_DF, 4, 0xffffffff); /* read-only */

	drive_features(f);
	CHECK(common_rd(f, VIRTIO_PCI_COMMON_STATUS, 1) & VIRTIO_STATUS_FEATURES_OK);
	CHECK(f->dev.driver_features == ((1ULL << 5) | (1ULL << VIRTIO_F_VERSION_1)));
	common_wr(f, VIRTIO_PCI_COMMON_GFSELECT, 4, 0);
	CHECK(common_rd(f, VIRTIO_PCI_COMMON_GF, 4) == 1u << 5);
	/* Fixed after FEATURES_OK */
	common_wr(f, VIRTIO_PCI_COMMON_GF, 4, 1u << 0);
	CHECK(f->dev.driver_features == ((1ULL << 5) | (1ULL << VIRTIO_F_VERSION_1)));

	/* After a reset: a feature that was not offered makes FEATURES_OK fail */
	common_wr(f, VIRTIO_PCI_COMMON_STATUS, 1, 0);
	CHECK(common_rd(f, VIRTIO_PCI_COMMON_STATUS, 1) == 0);
	CHECK(f->dev.driver_features == 0);
	common_wr(f, VIRTIO_PCI_COMMON_GFSELECT, 4, 0);
	common_wr(f, VIRTIO_PCI_COMMON_GF, 4, 1u << 3);
	common_wr(f, VIRTIO_PCI_COMMON_GFSELECT, 4, 1);
	common_wr(f, VIRTIO_PCI_COMMON_GF, 4, 1);
	common_wr(f, VIRTIO_PCI_COMMON_STATUS, 1, VIRTIO_STATUS_FEATURES_OK);
	CHECK(!(common_rd(f, VIRTIO_PCI_COMMON_STATUS, 1) & VIRTIO_STATUS_FEATURES_OK));
	/* A select beyond the two halves is ignored */
	common_wr(f, VIRTIO_PCI_COMMON_GFSELECT, 4, 7);
	common_wr(f, VIRTIO_PCI_COMMON_GF, 4, 0xffffffff);
	CHECK(common_rd(f, VIRTIO_PCI_COMMON_GF, 4) == 0);
	fx_free(f);
}

/* Puts one chain (a readable then a writable buffer) on queue q's avail ring. */
static void post_chain(struct fx *f, uint64_t base, uint16_t idx)
{
	uint8_t *m = f->mem.host;
	uint64_t d = DESC_GPA + base, a = AVAIL_GPA + base;
	uint64_t desc0[2] = { BUF_GPA, 16 | ((uint64_t)VIRTQ_DESC_F_NEXT << 32) | (1ULL << 48) };
	uint64_t desc1[2] = { BUF_GPA + 0x100, 16 | ((uint64_t)VIRTQ_DESC_F_WRITE << 32) };
	uint16_t head = 0, next = (uint16_t)(idx + 1);

	memcpy(m + d, desc0, 16);
	memcpy(m + d + 16, desc1, 16);
	memcpy(m + a + 4 + 2 * (idx % 16), &head, 2);
	memcpy(m + a + 2, &next, 2);
}

TEST(virtio_pci_queue_setup_and_kick)
{
	struct fx *f = fx_new();

	REQUIRE(f);
	drive_features(f);
	common_wr(f, VIRTIO_PCI_COMMON_Q_SELECT, 2, 0);
	CHECK(common_rd(f, VIRTIO_PCI_COMMON_Q_SIZE, 2) == QMAX);
	CHECK(common_rd(f, VIRTIO_PCI_COMMON_Q_ENABLE, 2) == 0);
	drive_queue(f, 0, 0);
	CHECK(common_rd(f, VIRTIO_PCI_COMMON_Q_ENABLE, 2) == 1);
	CHECK(common_rd(f, VIRTIO_PCI_COMMON_Q_SIZE, 2) == 16);
	CHECK(common_rd(f, VIRTIO_PCI_COMMON_Q_DESC, 8) == DESC_GPA);
	CHECK(common_rd(f, VIRTIO_PCI_COMMON_Q_AVAIL, 4) == (uint32_t)AVAIL_GPA);
	CHECK(common_rd(f, VIRTIO_PCI_COMMON_Q_USED + 4, 4) == 0);
	CHECK(f->dev.q[0].ready && f->dev.q[0].size == 16 && f->dev.q[0].used_gpa == USED_GPA);
	/* Enabled: layout registers are frozen; writing 0 to queue_enable is ignored */
	common_wr(f, VIRTIO_PCI_COMMON_Q_SIZE, 2, 32);
	common_wr(f, VIRTIO_PCI_COMMON_Q_DESC, 8, 0x5000);
	common_wr(f, VIRTIO_PCI_COMMON_Q_ENABLE, 2, 0);
	CHECK(f->dev.q[0].size == 16 && f->dev.q[0].desc_gpa == DESC_GPA && f->dev.q[0].ready);

	common_wr(f, VIRTIO_PCI_COMMON_STATUS, 1,
		  VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK |
			  VIRTIO_STATUS_DRIVER_OK);
	CHECK(f->activates == 1);
	CHECK(virtio_dev_live(&f->dev));

	/* Kick as an MMIO exit (no ioeventfd took it): the device pops and completes. */
	post_chain(f, 0, 0);
	bar_wr(f, VIRTIO_PCI_NOTIFY, 2, 0);
	CHECK(f->notifies[0] == 1 && f->completions == 1);
	uint16_t used_idx;
	memcpy(&used_idx, f->mem.host + USED_GPA + 2, 2);
	CHECK(used_idx == 1);
	/* MSI-X is off: only the ISR says something happened */
	CHECK(bar_rd(f, VIRTIO_PCI_ISR, 1) == VIRTIO_ISR_QUEUE);
	CHECK(bar_rd(f, VIRTIO_PCI_ISR, 1) == 0);
	/* A kick for queue 1 (not enabled) or at an unaligned address does nothing */
	bar_wr(f, VIRTIO_PCI_NOTIFY + 4, 2, 1);
	bar_wr(f, VIRTIO_PCI_NOTIFY + 1, 1, 0);
	bar_wr(f, VIRTIO_PCI_NOTIFY + 4 * NQ, 2, 0);
	CHECK(f->notifies[0] == 1 && f->notifies[1] == 0);

	/* Kick through the ioeventfd: registered at the notify address, watched by the loop */
	REQUIRE(f->nwatch == NQ);
	bool found = false;
	for (unsigned int i = 0; i < f->nioev; i++)
		if (f->ioev[i].assign && f->ioev[i].fd == f->watch_fd[0] &&
		    f->ioev[i].addr == f->t->pci.bar[0].addr + VIRTIO_PCI_NOTIFY &&
		    f->ioev[i].len == 2)
			found = true;
	CHECK(found);
	post_chain(f, 0, 1);
	uint64_t one = 1;
	CHECK(write(f->watch_fd[0], &one, sizeof(one)) == sizeof(one));
	f->watch_fn[0](f->watch_opaque[0], EPOLLIN);
	CHECK(f->notifies[0] == 2 && f->completions == 2);
	/* A spurious wake-up with nothing to read does nothing */
	f->watch_fn[0](f->watch_opaque[0], EPOLLIN);
	CHECK(f->notifies[0] == 2);
	fx_free(f);
}

TEST(virtio_pci_invalid_queue_size)
{
	static const uint16_t bad[] = { 0, 3, 48, 128, 0xffff };

	for (unsigned int i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct fx *f = fx_new();
		REQUIRE(f);
		drive_features(f);
		common_wr(f, VIRTIO_PCI_COMMON_Q_SELECT, 2, 0);
		common_wr(f, VIRTIO_PCI_COMMON_Q_SIZE, 2, bad[i]);
		common_wr(f, VIRTIO_PCI_COMMON_Q_DESC, 8, DESC_GPA);
		common_wr(f, VIRTIO_PCI_COMMON_Q_AVAIL, 8, AVAIL_GPA);
		common_wr(f, VIRTIO_PCI_COMMON_Q_USED, 8, USED_GPA);
		common_wr(f, VIRTIO_PCI_COMMON_Q_ENABLE, 2, 1);
		CHECK(common_rd(f, VIRTIO_PCI_COMMON_Q_ENABLE, 2) == 0);
		CHECK(common_rd(f, VIRTIO_PCI_COMMON_STATUS, 1) & VIRTIO_STATUS_NEEDS_RESET);
		/* The config change is announced: ISR bit 1 */
		CHECK(bar_rd(f, VIRTIO_PCI_ISR, 1) == VIRTIO_ISR_CONFIG);
		/* Kicks on the broken device go nowhere */
		bar_wr(f, VIRTIO_PCI_NOTIFY, 2, 0);
		CHECK(f->notifies[0] == 0);
		/* A reset clears it and restores the offered size */
		common_wr(f, VIRTIO_PCI_COMMON_STATUS, 1, 0);
		CHECK(common_rd(f, VIRTIO_PCI_COMMON_STATUS, 1) == 0);
		CHECK(common_rd(f, VIRTIO_PCI_COMMON_Q_SIZE, 2) == QMAX);
		fx_free(f);
	}
	/* A ring outside RAM: the same */
	struct fx *f = fx_new();
	REQUIRE(f);
	drive_features(f);
	common_wr(f, VIRTIO_PCI_COMMON_Q_SIZE, 2, 16);
	common_wr(f, VIRTIO_PCI_COMMON_Q_DESC, 8, 0xfffffffffffff000ULL);
	common_wr(f, VIRTIO_PCI_COMMON_Q_ENABLE, 2, 1);
	CHECK(common_rd(f, VIRTIO_PCI_COMMON_STATUS, 1) & VIRTIO_STATUS_NEEDS_RESET);
	fx_free(f);
}

TEST(virtio_pci_queue_select_out_of_range)
{
	struct fx *f = fx_new();
	static const uint16_t sel[] = { NQ, VIRTIO_MAX_QUEUES, 0x7fff, 0xffff };

	REQUIRE(f);
	drive_features(f);
	for (unsigned int i = 0; i < sizeof(sel) / sizeof(sel[0]); i++) {
		common_wr(f, VIRTIO_PCI_COMMON_Q_SELECT, 2, sel[i]);
		CHECK(common_rd(f, VIRTIO_PCI_COMMON_Q_SELECT, 2) == sel[i]);
		common_wr(f, VIRTIO_PCI_COMMON_Q_SIZE, 2, 16);
		common_wr(f, VIRTIO_PCI_COMMON_Q_MSIX, 2, 0);
		common_wr(f, VIRTIO_PCI_COMMON_Q_DESC, 8, DESC_GPA);
		common_wr(f, VIRTIO_PCI_COMMON_Q_ENABLE, 2, 1);
		CHECK(common_rd(f, VIRTIO_PCI_COMMON_Q_SIZE, 2) == 0);
		CHECK(common_rd(f, VIRTIO_PCI_COMMON_Q_MSIX, 2) == 0);
		CHECK(common_rd(f, VIRTIO_PCI_COMMON_Q_ENABLE, 2) == 0);
		CHECK(common_rd(f, VIRTIO_PCI_COMMON_Q_DESC, 8) == 0);
		CHECK(common_rd(f, VIRTIO_PCI_COMMON_Q_NOFF, 2) == 0);
	}
	for (unsigned int q = 0; q < VIRTIO_MAX_QUEUES; q++)
		CHECK(!f->dev.q[q].ready &&
		      (q < NQ ? f->dev.q[q].size == QMAX : f->dev.q[q].size == 0));
	CHECK(!(f->dev.status & VIRTIO_STATUS_NEEDS_RESET));
	fx_free(f);
}

TEST(virtio_pci_msix_vectors_in_range)
{
	struct fx *f = fx_new();

	REQUIRE(f);
	CHECK(common_rd(f, VIRTIO_PCI_COMMON_MSIX, 2) == VIRTIO_PCI_NO_VECTOR);
	common_wr(f, VIRTIO_PCI_COMMON_MSIX, 2, NQ); /* the last valid vector */
	CHECK(common_rd(f, VIRTIO_PCI_COMMON_MSIX, 2) == NQ);
	common_wr(f, VIRTIO_PCI_COMMON_MSIX, 2, NQ + 1);
	CHECK(common_rd(f, VIRTIO_PCI_COMMON_MSIX, 2) == VIRTIO_PCI_NO_VECTOR);
	common_wr(f, VIRTIO_PCI_COMMON_Q_SELECT, 2, 1);
	CHECK(common_rd(f, VIRTIO_PCI_COMMON_Q_MSIX, 2) == VIRTIO_PCI_NO_VECTOR);
	common_wr(f, VIRTIO_PCI_COMMON_Q_MSIX, 2, 1);
	CHECK(common_rd(f, VIRTIO_PCI_COMMON_Q_MSIX, 2) == 1);
	common_wr(f, VIRTIO_PCI_COMMON_Q_MSIX, 2, 0x8000);
	CHECK(common_rd(f, VIRTIO_PCI_COMMON_Q_MSIX, 2) == VIRTIO_PCI_NO_VECTOR);
	fx_free(f);
}

TEST(virtio_pci_msix_route_and_irqfd)
{
	struct fx *f = fx_new();

	REQUIRE(f);
	set_msix(f, true, false);
	CHECK(f->t->msix_enabled && !f->t->msix_masked);
	program_vector(f, 1, 0xfee01000ULL, 0x4041, false);
	CHECK(bar_rd(f, VIRTIO_PCI_MSIX_TABLE + 16, 8) == 0xfee01000ULL);
	CHECK(bar_rd(f, VIRTIO_PCI_MSIX_TABLE + 24, 4) == 0x4041);
	CHECK(bar_rd(f, VIRTIO_PCI_MSIX_TABLE + 28, 4) == 0);
	common_wr(f, VIRTIO_PCI_COMMON_Q_SELECT, 2, 0);
	common_wr(f, VIRTIO_PCI_COMMON_Q_MSIX, 2, 1);

	signal_q(f, 0);
	int gsi = f->t->vec[1].gsi;
	CHECK(gsi >= GSI_MSI_BASE);
	const struct kvm_irq_routing_entry *e = msi_route(f, (uint32_t)gsi);
	CHECK(e && e->u.msi.address_lo == 0xfee01000u && e->u.msi.address_hi == 0 &&
	      e->u.msi.data == 0x4041);
	CHECK(f->nroutes == IRQ_ROUTING_DEFAULT_ENTRIES + 1);
	CHECK(f->irqfds == 1 && f->irqfd_gsi[0] == (uint32_t)gsi &&
	      f->irqfd_fd[0] == f->t->vec[1].fd);
	CHECK(eventfd_count(f->t->vec[1].fd) == 1);
	CHECK(f->msis == 0);

	/* Again: no new route, no new irqfd, one more interrupt */
	unsigned int commits = f->commits;
	signal_q(f, 0);
	CHECK(f->commits == commits && f->irqfds == 1);
	CHECK(eventfd_count(f->t->vec[1].fd) == 1);

	/* The guest retargets the vector: the route follows at the next interrupt */
	bar_wr(f, VIRTIO_PCI_MSIX_TABLE + 24, 4, 0x4042);
	signal_q(f, 0);
	e = msi_route(f, (uint32_t)gsi);
	CHECK(f->commits == commits + 1 && e && e->u.msi.data == 0x4042);
	CHECK(eventfd_count(f->t->vec[1].fd) == 1);

	/* A queue with no vector, or MSI-X off: nothing */
	common_wr(f, VIRTIO_PCI_COMMON_Q_SELECT, 2, 1);
	signal_q(f, 1);
	set_msix(f, false, false);
	signal_q(f, 0);
	CHECK(eventfd_count(f->t->vec[1].fd) == 0);
	CHECK(f->t->interrupts == 3);

	/* Config change on its own vector (a 64-bit table write) */
	set_msix(f, true, false);
	bar_wr(f, VIRTIO_PCI_MSIX_TABLE, 8, 0xfee02000ULL);
	bar_wr(f, VIRTIO_PCI_MSIX_TABLE + 8, 8, 0x4050); /* data, unmasked */
	common_wr(f, VIRTIO_PCI_COMMON_MSIX, 2, 0);
	uint32_t gen = common_rd(f, VIRTIO_PCI_COMMON_CFGGENERATION, 1);
	pthread_mutex_lock(&f->dev.lock);
	virtio_dev_config_changed(&f->dev); /* what a device whose config changed calls */
	pthread_mutex_unlock(&f->dev.lock);
	CHECK(common_rd(f, VIRTIO_PCI_COMMON_CFGGENERATION, 1) == ((gen + 1) & 0xff));
	CHECK(eventfd_count(f->t->vec[0].fd) == 1);
	e = msi_route(f, (uint32_t)f->t->vec[0].gsi);
	CHECK(e && e->u.msi.address_lo == 0xfee02000u && e->u.msi.data == 0x4050);
	/* (the queue bit is there from the interrupt sent while MSI-X was off) */
	CHECK(bar_rd(f, VIRTIO_PCI_ISR, 1) == (VIRTIO_ISR_CONFIG | VIRTIO_ISR_QUEUE));
	fx_free(f);
}

TEST(virtio_pci_msix_masking_and_pba)
{
	struct fx *f = fx_new();

	REQUIRE(f);
	set_msix(f, true, false);
	program_vector(f, 2, 0xfee00000ULL, 0x4061, true);
	common_wr(f, VIRTIO_PCI_COMMON_Q_SELECT, 2, 1);
	common_wr(f, VIRTIO_PCI_COMMON_Q_MSIX, 2, 2);
	/* Masked: pending bit, no interrupt */
	signal_q(f, 1);
	CHECK(bar_rd(f, VIRTIO_PCI_MSIX_PBA, 8) == 1u << 2);
	CHECK(f->t->interrupts == 0 && f->irqfds == 0);
	bar_wr(f, VIRTIO_PCI_MSIX_PBA, 8, 0); /* read-only */
	CHECK(bar_rd(f, VIRTIO_PCI_MSIX_PBA, 1) == 1u << 2);
	/* Unmask: it fires and the bit clears */
	bar_wr(f, VIRTIO_PCI_MSIX_TABLE + 2 * 16 + 12, 4, 0);
	CHECK(bar_rd(f, VIRTIO_PCI_MSIX_PBA, 8) == 0);
	CHECK(eventfd_count(f->t->vec[2].fd) == 1);
	const struct kvm_irq_routing_entry *e = msi_route(f, (uint32_t)f->t->vec[2].gsi);
	CHECK(e && e->u.msi.data == 0x4061);

	/* Function mask: the same, released by clearing the mask bit */
	set_msix(f, true, true);
	signal_q(f, 1);
	signal_q(f, 1);
	CHECK(bar_rd(f, VIRTIO_PCI_MSIX_PBA, 8) == 1u << 2);
	CHECK(eventfd_count(f->t->vec[2].fd) == 0);
	set_msix(f, true, false);
	CHECK(bar_rd(f, VIRTIO_PCI_MSIX_PBA, 8) == 0);
	CHECK(eventfd_count(f->t->vec[2].fd) == 1);

	/* Reserved vector-control bits read as zero */
	bar_wr(f, VIRTIO_PCI_MSIX_TABLE + 12, 4, 0xfffffffe);
	CHECK(bar_rd(f, VIRTIO_PCI_MSIX_TABLE + 12, 4) == 0);
	/* Entries past the table read as zero and ignore writes */
	bar_wr(f, VIRTIO_PCI_MSIX_TABLE + (NQ + 1) * 16, 8, ~0ULL);
	CHECK(bar_rd(f, VIRTIO_PCI_MSIX_TABLE + (NQ + 1) * 16, 8) == 0);
	fx_free(f);
}

TEST(virtio_pci_msi_fallback)
{
	struct fx *f = fx_new();

	REQUIRE(f);
	/* Without an irqfd the interrupt still gets through (KVM_SIGNAL_MSI) */
	f->plat.irqfd = NULL;
	set_msix(f, true, false);
	program_vector(f, 1, 0xfee03000ULL, 0x4070, false);
	common_wr(f, VIRTIO_PCI_COMMON_Q_MSIX, 2, 1);
	signal_q(f, 0);
	CHECK(f->msis == 1 && f->msi_addr == 0xfee03000ULL && f->msi_data == 0x4070);
	fx_free(f);
}

TEST(virtio_pci_isr_and_device_config)
{
	struct fx *f = fx_new();

	REQUIRE(f);
	pthread_mutex_lock(&f->dev.lock);
	f->dev.signal_config(&f->dev);
	f->dev.signal_queue(&f->dev, 0);
	pthread_mutex_unlock(&f->dev.lock);
	CHECK(bar_rd(f, VIRTIO_PCI_ISR + 1, 1) == 0); /* only byte 0 holds it */
	CHECK(bar_rd(f, VIRTIO_PCI_ISR, 4) == (VIRTIO_ISR_CONFIG | VIRTIO_ISR_QUEUE));
	CHECK(bar_rd(f, VIRTIO_PCI_ISR, 1) == 0);
	bar_wr(f, VIRTIO_PCI_ISR, 1, 0xff);
	CHECK(bar_rd(f, VIRTIO_PCI_ISR, 1) == 0);

	CHECK(bar_rd(f, VIRTIO_PCI_DEVICE_CFG, 4) == 0xa3a2a1a0u);
	CHECK(bar_rd(f, VIRTIO_PCI_DEVICE_CFG + 8, 4) == 0xabaaa9a8u);
	CHECK(bar_rd(f, VIRTIO_PCI_DEVICE_CFG + 11, 1) == 0xab);
	bar_wr(f, VIRTIO_PCI_DEVICE_CFG + 4, 2, 0x1234);
	CHECK(f->cfg[4] == 0x34 && f->cfg[5] == 0x12);
	/* Past the end, or straddling it: zeros, and nothing written */
	CHECK(bar_rd(f, VIRTIO_PCI_DEVICE_CFG + 10, 4) == 0);
	CHECK(bar_rd(f, VIRTIO_PCI_DEVICE_CFG + 12, 1) == 0);
	CHECK(bar_rd(f, VIRTIO_PCI_DEVICE_CFG + 0xffc, 4) == 0);
	uint8_t before[CFG_SIZE];
	memcpy(before, f->cfg, CFG_SIZE);
	bar_wr(f, VIRTIO_PCI_DEVICE_CFG + 8, 8, ~0ULL);
	bar_wr(f, VIRTIO_PCI_DEVICE_CFG + 12, 4, ~0ULL);
	CHECK(!memcmp(before, f->cfg, CFG_SIZE));
	/* Common cfg past its registers */
	CHECK(common_rd(f, VIRTIO_PCI_COMMON_LEN, 8) == 0);
	CHECK(common_rd(f, 0x7f8, 8) == 0);
	fx_free(f);
}

TEST(virtio_pci_cfg_access_window)
{
	struct fx *f = fx_new();

	REQUIRE(f);
	uint32_t c = find_cap(f, PCI_CAP_ID_VNDR, VIRTIO_PCI_CAP_PCI_CFG);
	REQUIRE(c);
	/* Read num_queues through the window */
	cfg_wr(f, c + 4, 1, VIRTIO_PCI_BAR);
	cfg_wr(f, c + 8, 4, VIRTIO_PCI_COMMON + VIRTIO_PCI_COMMON_NUMQ);
	cfg_wr(f, c + 12, 4, 2);
	CHECK(cfg_rd(f, c + 16, 2) == NQ);
	/* Write device_status through it */
	cfg_wr(f, c + 8, 4, VIRTIO_PCI_COMMON + VIRTIO_PCI_COMMON_STATUS);
	cfg_wr(f, c + 12, 4, 1);
	cfg_wr(f, c + 16, 4, VIRTIO_STATUS_ACKNOWLEDGE);
	CHECK(f->dev.status == VIRTIO_STATUS_ACKNOWLEDGE);
	/* Device config, 4 bytes */
	cfg_wr(f, c + 8, 4, VIRTIO_PCI_DEVICE_CFG + 4);
	cfg_wr(f, c + 12, 4, 4);
	CHECK(cfg_rd(f, c + 16, 4) == 0xa7a6a5a4u);

	/* Bad windows are ignored: other BAR, odd length, misaligned, past the BAR */
	static const struct {
		uint8_t bar;
		uint32_t off, len;
	} bad[] = {
		{ 1, VIRTIO_PCI_COMMON_STATUS, 1 },	{ 5, VIRTIO_PCI_COMMON_STATUS, 1 },
		{ 0xff, VIRTIO_PCI_COMMON_STATUS, 1 },	{ 0, VIRTIO_PCI_COMMON_STATUS, 3 },
		{ 0, VIRTIO_PCI_COMMON_STATUS, 8 },	{ 0, VIRTIO_PCI_COMMON_STATUS, 0 },
		{ 0, VIRTIO_PCI_COMMON_STATUS + 1, 2 }, { 0, VIRTIO_PCI_BAR_SIZE, 1 },
		{ 0, VIRTIO_PCI_BAR_SIZE - 2, 4 },	{ 0, 0xfffffffc, 4 },
	};
	for (unsigned int i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cfg_wr(f, c + 4, 1, bad[i].bar);
		cfg_wr(f, c + 8, 4, bad[i].off);
		cfg_wr(f, c + 12, 4, bad[i].len);
		cfg_wr(f, c + 16, 4, 0);
		cfg_rd(f, c + 16, 4);
		CHECK(f->dev.status == VIRTIO_STATUS_ACKNOWLEDGE);
	}
	fx_free(f);
}

static bool ioev_has(struct fx *f, unsigned int from, uint64_t addr, bool assign)
{
	for (unsigned int i = from; i < f->nioev; i++)
		if (f->ioev[i].addr == addr && f->ioev[i].assign == assign)
			return true;
	return false;
}

TEST(virtio_pci_bar_move_moves_ioeventfds)
{
	struct fx *f = fx_new();

	REQUIRE(f);
	uint64_t old = f->t->pci.bar[0].addr, neu = WIN_BASE + 0x800000;
	CHECK(ioev_has(f, 0, old + VIRTIO_PCI_NOTIFY, true));
	CHECK(ioev_has(f, 0, old + VIRTIO_PCI_NOTIFY + 4, true));

	unsigned int mark = f->nioev;
	cfg_wr(f, PCI_BAR0, 4, (uint32_t)neu | PCI_BAR_MEM_TYPE_64);
	CHECK(f->t->pci.bar[0].addr == neu);
	CHECK(ioev_has(f, mark, old + VIRTIO_PCI_NOTIFY, false));
	CHECK(ioev_has(f, mark, old + VIRTIO_PCI_NOTIFY + 4, false));
	CHECK(ioev_has(f, mark, neu + VIRTIO_PCI_NOTIFY, true));
	CHECK(ioev_has(f, mark, neu + VIRTIO_PCI_NOTIFY + 4, true));
	CHECK(common_rd(f, VIRTIO_PCI_COMMON_NUMQ, 2) == NQ); /* decodes at the new place */

	/* Decoding off: unregistered; registration failing: kicks still work by exit */
	mark = f->nioev;
	cfg_wr(f, PCI_COMMAND, 2, 0);
	CHECK(ioev_has(f, mark, neu + VIRTIO_PCI_NOTIFY, false));
	CHECK(!f->t->kick[0].registered && !f->t->kick[1].registered);
	f->ioev_fail = -EEXIST;
	cfg_wr(f, PCI_COMMAND, 2, PCI_COMMAND_MEMORY);
	CHECK(!f->t->kick[0].registered);
	drive_features(f);
	drive_queue(f, 0, 0);
	common_wr(f, VIRTIO_PCI_COMMON_STATUS, 1, 0x0f);
	post_chain(f, 0, 0);
	bar_wr(f, VIRTIO_PCI_NOTIFY, 2, 0);
	CHECK(f->notifies[0] == 1 && f->completions == 1);
	fx_free(f);
}

TEST(virtio_pci_reset_restores_transport)
{
	struct fx *f = fx_new();

	REQUIRE(f);
	drive_features(f);
	common_wr(f, VIRTIO_PCI_COMMON_MSIX, 2, 0);
	common_wr(f, VIRTIO_PCI_COMMON_Q_SELECT, 2, 1);
	common_wr(f, VIRTIO_PCI_COMMON_Q_MSIX, 2, 2);
	drive_queue(f, 1, 0x4000);
	CHECK(f->dev.q[1].ready);
	common_wr(f, VIRTIO_PCI_COMMON_STATUS, 1, 0);
	CHECK(f->resets == 1);
	CHECK(common_rd(f, VIRTIO_PCI_COMMON_STATUS, 1) == 0);
	CHECK(common_rd(f, VIRTIO_PCI_COMMON_Q_SELECT, 2) == 0);
	CHECK(common_rd(f, VIRTIO_PCI_COMMON_MSIX, 2) == VIRTIO_PCI_NO_VECTOR);
	common_wr(f, VIRTIO_PCI_COMMON_Q_SELECT, 2, 1);
	CHECK(common_rd(f, VIRTIO_PCI_COMMON_Q_MSIX, 2) == VIRTIO_PCI_NO_VECTOR);
	CHECK(common_rd(f, VIRTIO_PCI_COMMON_Q_SIZE, 2) == QMAX);
	CHECK(common_rd(f, VIRTIO_PCI_COMMON_Q_ENABLE, 2) == 0);
	fx_free(f);
}

TEST(virtio_pci_add_rejects)
{
	struct pci_bus bus;
	struct virtio_dev d;
	struct virtio_dev_ops ops = tdev_ops;

	pci_bus_init(&bus, WIN_BASE, WIN_SIZE, NULL);
	ops.num_queues = 0;
	virtio_dev_init(&d, &ops, NULL, NULL);
	CHECK(virtio_pci_add(&bus, &d) == -EINVAL);
	ops.num_queues = VIRTIO_MAX_QUEUES + 1;
	CHECK(virtio_pci_add(&bus, &d) == -EINVAL);
	ops.num_queues = 1;
	ops.device_id = 0x40;
	CHECK(virtio_pci_add(&bus, &d) == -EINVAL);
	ops.device_id = VIRTIO_ID_RNG;
	ops.config_size = VIRTIO_PCI_DEVICE_CFG_MAX + 1;
	CHECK(virtio_pci_add(&bus, &d) == -EINVAL);
	CHECK(d.transport == NULL && d.signal_queue == NULL);
	/* With no platform it still works (no irqfds, no kicks): every queue count fits */
	ops.config_size = 0;
	ops.num_queues = VIRTIO_MAX_QUEUES;
	CHECK(virtio_pci_add(&bus, &d) == 1);
	CHECK(d.transport != NULL);
	pci_bus_destroy(&bus);
}

static uint64_t rnd64(void)
{
	return ((uint64_t)rand() << 62) ^ ((uint64_t)rand() << 31) ^ (uint64_t)rand();
}

/* A live device: MSI-X on, every vector routed and unmasked, both queues running. */
static void bring_up(struct fx *f)
{
	common_wr(f, VIRTIO_PCI_COMMON_STATUS, 1, 0);
	set_msix(f, true, false);
	for (unsigned int v = 0; v < NQ + 1; v++)
		program_vector(f, v, 0xfee00000ULL, 0x4040 + v, false);
	drive_features(f);
	common_wr(f, VIRTIO_PCI_COMMON_MSIX, 2, 0);
	for (unsigned int q = 0; q < NQ; q++) {
		drive_queue(f, q, q * 0x4000);
		common_wr(f, VIRTIO_PCI_COMMON_Q_MSIX, 2, q + 1);
	}
	common_wr(f, VIRTIO_PCI_COMMON_STATUS, 1, 0x0f);
	memset(f->mem.host + AVAIL_GPA, 0, 0x100);
	memset(f->mem.host + USED_GPA, 0, 0x100);
}

TEST(virtio_pci_hostile_accesses)
{
	struct fx *f = fx_new();
	static const uint32_t lens[] = { 1, 2, 4, 8 };
	uint16_t posted = 0;

	REQUIRE(f);
	enum log_level level = log_get_level();
	log_set_level(LOG_ERROR); /* the guest's mistakes are logged as warnings */
	srand(7);
	/*
	 * Round 0: all-ones everywhere. Round 1: a live device, random values everywhere
	 * but the common registers (so queues keep running and interrupts keep flowing).
	 * Round 2: random values everywhere, configuration space included.
	 */
	for (unsigned int round = 0; round < 3; round++) {
		if (round > 0)
			bring_up(f);
		for (uint32_t off = 0; off < VIRTIO_PCI_BAR_SIZE + 16; off++) {
			if (round == 1 && off < VIRTIO_PCI_ISR)
				continue;
			for (unsigned int l = 0; l < 4; l++) {
				uint64_t v = round == 0 ? ~0ULL : rnd64();
				uint64_t addr = f->t->pci.bar[0].addr;
				if (round == 1 && off % 97 == 0 && l == 0) {
					post_chain(f, 0, posted++);
					bar_wr(f, VIRTIO_PCI_NOTIFY, 2, 0);
					signal_q(f, (unsigned int)rand() % (NQ + 2));
				}
				if (addr == PCI_BAR_UNMAPPED) {
					/* Reach the device directly while the guest hid its BAR */
					f->t->pci.bar_access(&f->t->pci, 0, off, (uint8_t *)&v,
							     lens[l], true);
					f->t->pci.bar_access(&f->t->pci, 0, off, (uint8_t *)&v,
							     lens[l], false);
					continue;
				}
				bar_wr(f, off, lens[l], v);
				bar_rd(f, off, lens[l]);
				if (round == 2 && (rand() % 64) == 0)
					signal_q(f, (unsigned int)rand() % (NQ + 2));
				if (round == 2 && (rand() % 512) == 0) {
					uint32_t c = (uint32_t)rand() % PCI_CFG_SIZE;
					cfg_wr(f, c, 1u << (rand() % 3), (uint32_t)rand());
				}
			}
		}
		/* Configuration space of the device: all offsets and widths, both ways */
		for (uint32_t c = 0; c < PCI_CFG_SIZE; c++) {
			for (unsigned int l = 0; l < 3; l++) {
				if (round == 2)
					cfg_wr(f, c, 1u << l, (uint32_t)rand());
				cfg_rd(f, c, 1u << l);
			}
		}
		/* The PCI configuration access window pointed everywhere */
		uint32_t cap = f->t->cfg_cap;
		for (uint32_t o = 0; o < VIRTIO_PCI_BAR_SIZE + 8; o += 1 + (uint32_t)rand() % 7) {
			cfg_wr(f, cap + 4, 1, (uint32_t)rand() % 2 ? 0 : (uint32_t)rand());
			cfg_wr(f, cap + 8, 4, o);
			cfg_wr(f, cap + 12, 4, (uint32_t)rand() % 6);
			cfg_wr(f, cap + 16, 4, (uint32_t)rand());
			cfg_rd(f, cap + 16, 1u << (rand() % 3));
		}
		/* Put the BAR back where the guest had it */
		cfg_wr(f, PCI_COMMAND, 2, PCI_COMMAND_MEMORY);
		cfg_wr(f, PCI_BAR0, 4, (uint32_t)WIN_BASE);
		cfg_wr(f, PCI_BAR0 + 4, 4, 0);
	}
	/* The fuzz reached the interesting paths */
	CHECK(f->completions > 0 && f->t->interrupts > 0 && f->commits > 0);
	/* Still a working device */
	CHECK(cfg_rd(f, PCI_VENDOR_ID, 2) == VIRTIO_PCI_VENDOR);
	CHECK(f->t->pci.bar[0].addr == WIN_BASE);
	common_wr(f, VIRTIO_PCI_COMMON_STATUS, 1, 0);
	CHECK(common_rd(f, VIRTIO_PCI_COMMON_STATUS, 1) == 0);
	CHECK(common_rd(f, VIRTIO_PCI_COMMON_NUMQ, 2) == NQ);
	log_set_level(level);
	fx_free(f);
}
