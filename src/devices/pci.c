/*
 * PCI bus 0: configuration mechanism #1, the host bridge, BAR placement, decoding and
 * the MMIO window dispatch, and the host bridge's DSDT entry.
 */
#include "devices/pci.h"
#include "arch/x86/aml.h"
#include "arch/x86/layout.h"
#include "bus/bus.h"
#include "core/log.h"
#include "core/util.h"
#include "kvm/kvm.h"
#include "vmstate/vmstate.h"

#include <errno.h>
#include <string.h>
#include <sys/epoll.h>

#define CONFIG_ENABLE 0x80000000u
#define CONFIG_RESERVED 0x7f000000u /* includes AMD's extended-register bits 27:24 */
#define COMMAND_WMASK 0x0547	    /* I/O, memory, bus master, parity, SERR#, INTx disable */
#define STATUS_W1C 0xf900	    /* parity and abort flags */

uint32_t pci_cfg_get(const uint8_t *cfg, uint32_t off, uint32_t len)
{
	uint32_t v = 0;

	if (len > 4 || off >= PCI_CFG_SIZE || len > PCI_CFG_SIZE - off)
		return UINT32_MAX;
	for (uint32_t i = 0; i < len; i++)
		v |= (uint32_t)cfg[off + i] << (8 * i);
	return v;
}

void pci_cfg_put(uint8_t *cfg, uint32_t off, uint32_t len, uint32_t v)
{
	if (len > 4 || off >= PCI_CFG_SIZE || len > PCI_CFG_SIZE - off)
		return;
	for (uint32_t i = 0; i < len; i++)
		cfg[off + i] = (uint8_t)(v >> (8 * i));
}

void pci_dev_init(struct pci_dev *d, uint16_t vendor, uint16_t device, uint32_t class_code,
		  uint8_t revision, uint16_t subsys_vendor, uint16_t subsys_id)
{
	memset(d, 0, sizeof(*d));
	pci_cfg_put(d->cfg, PCI_VENDOR_ID, 2, vendor);
	pci_cfg_put(d->cfg, PCI_DEVICE_ID, 2, device);
	pci_cfg_put(d->cfg, PCI_REVISION_ID, 1, revision);
	pci_cfg_put(d->cfg, PCI_CLASS_PROG, 3, class_code);
	pci_cfg_put(d->cfg, PCI_SUBSYSTEM_VENDOR_ID, 2, subsys_vendor);
	pci_cfg_put(d->cfg, PCI_SUBSYSTEM_ID, 2, subsys_id);
	pci_cfg_put(d->wmask, PCI_COMMAND, 2, COMMAND_WMASK);
	pci_cfg_put(d->w1c, PCI_STATUS, 2, STATUS_W1C);
	d->wmask[0x0c] = 0xff; /* cache line size */
	d->wmask[PCI_INTERRUPT_LINE] = 0xff;
	d->cap_end = PCI_CAP_START;
	for (unsigned int i = 0; i < PCI_NUM_BARS; i++)
		d->bar[i].addr = PCI_BAR_UNMAPPED;
}

int pci_dev_set_bar(struct pci_dev *d, unsigned int bar, enum pci_bar_type type, uint64_t size)
{
	unsigned int nslots = type == PCI_BAR_MEM64 ? 2 : 1;

	if (bar >= PCI_NUM_BARS || bar + nslots > PCI_NUM_BARS || size < 16 ||
	    (size & (size - 1)) || (type == PCI_BAR_MEM32 && size > (1ULL << 31)) ||
	    (type != PCI_BAR_MEM32 && type != PCI_BAR_MEM64))
		return -EINVAL;
	for (unsigned int i = bar; i < bar + nslots; i++)
		if (d->bar[i].type != PCI_BAR_NONE ||
		    (i > 0 && d->bar[i - 1].type == PCI_BAR_MEM64))
			return -EBUSY;
	uint64_t mask = ~(size - 1) & ~0xfULL;
	uint32_t off = PCI_BAR0 + 4 * bar;
	pci_cfg_put(d->cfg, off, 4, type == PCI_BAR_MEM64 ? PCI_BAR_MEM_TYPE_64 : 0);
	pci_cfg_put(d->wmask, off, 4, (uint32_t)mask);
	if (type == PCI_BAR_MEM64)
		pci_cfg_put(d->wmask, off + 4, 4, (uint32_t)(mask >> 32));
	d->bar[bar] = (struct pci_bar){ type, size, PCI_BAR_UNMAPPED };
	return 0;
}

int pci_cap_add(struct pci_dev *d, const void *cap, uint8_t len)
{
	unsigned int off =
		(unsigned int)align_up(d->cap_end > PCI_CAP_START ? d->cap_end : PCI_CAP_START, 4);

	if (len < 2 || off + len > PCI_CFG_SIZE)
		return -ENOSPC;
	memcpy(&d->cfg[off], cap, len);
	d->cfg[off + 1] = 0;
	if (d->cap_last)
		d->cfg[d->cap_last + 1] = (uint8_t)off;
	else
		d->cfg[PCI_CAPABILITY_LIST] = (uint8_t)off;
	d->cfg[PCI_STATUS] |= PCI_STATUS_CAP_LIST;
	d->cap_last = (uint8_t)off;
	d->cap_end = (uint16_t)(off + len);
	return (int)off;
}

/*
 * Where d's BAR i decodes given the command register and the BAR registers in cfg
 * (d->cfg, or a restored configuration space not yet committed).
 */
static uint64_t bar_decode(const struct pci_bus *b, const struct pci_dev *d, const uint8_t *cfg,
			   unsigned int i)
{
	const struct pci_bar *bar = &d->bar[i];
	uint32_t off = PCI_BAR0 + 4 * i;
	uint64_t addr = pci_cfg_get(cfg, off, 4) & ~0xfULL;

	if (bar->type == PCI_BAR_MEM64)
		addr |= (uint64_t)pci_cfg_get(cfg, off + 4, 4) << 32;
	if (!(cfg[PCI_COMMAND] & PCI_COMMAND_MEMORY) || addr < b->mmio_base ||
	    addr - b->mmio_base > b->mmio_size || bar->size > b->mmio_size - (addr - b->mmio_base))
		return PCI_BAR_UNMAPPED;
	return addr;
}

/* Recomputes d's decoding after a configuration write; tells the device what moved. */
static void update_bars(struct pci_bus *b, struct pci_dev *d)
{
	for (unsigned int i = 0; i < PCI_NUM_BARS; i++) {
		if (d->bar[i].type == PCI_BAR_NONE)
			continue;
		uint64_t addr = bar_decode(b, d, d->cfg, i);
		if (addr == d->bar[i].addr)
			continue;
		d->bar[i].addr = addr;
		if (d->bar_moved)
			d->bar_moved(d, i, addr);
	}
}

static void add_host_bridge(struct pci_bus *b)
{
	struct pci_dev *h = &b->host;

	pci_dev_init(h, PCI_HOST_VENDOR, PCI_HOST_DEVICE, PCI_CLASS_HOST_BRIDGE, 0, 0, 0);
	h->cfg[PCI_COMMAND] = PCI_COMMAND_MEMORY | PCI_COMMAND_IO;
	h->name = "host-bridge";
	h->bus = b;
	h->slot = 0;
	b->dev[0] = h;
}

void pci_bus_init(struct pci_bus *b, uint64_t mmio_base, uint64_t mmio_size,
		  const struct pci_platform *platform)
{
	memset(b, 0, sizeof(*b));
	pthread_rwlock_init(&b->lock, NULL);
	b->mmio_base = mmio_base;
	b->mmio_size = mmio_size;
	b->mmio_next = mmio_base;
	b->platform = platform;
	add_host_bridge(b);
}

void pci_bus_destroy(struct pci_bus *b)
{
	for (unsigned int i = 0; i < PCI_MAX_DEVS; i++) {
		struct pci_dev *d = b->dev[i];
		b->dev[i] = NULL;
		if (d && d->destroy)
			d->destroy(d);
	}
	pthread_rwlock_destroy(&b->lock);
}

int pci_dev_add(struct pci_bus *b, struct pci_dev *d)
{
	uint64_t next = b->mmio_next, end = b->mmio_base + b->mmio_size;
	uint64_t place[PCI_NUM_BARS] = { 0 };
	unsigned int slot;
	bool any = false;

	pthread_rwlock_wrlock(&b->lock);
	for (slot = 0; slot < PCI_MAX_DEVS && b->dev[slot]; slot++)
		;
	if (slot == PCI_MAX_DEVS) {
		pthread_rwlock_unlock(&b->lock);
		return -ENOSPC;
	}
	for (unsigned int i = 0; i < PCI_NUM_BARS; i++) {
		uint64_t size = d->bar[i].size;
		if (d->bar[i].type == PCI_BAR_NONE)
			continue;
		uint64_t addr = align_up(next, size);
		if (addr < next || addr > end || size > end - addr) {
			pthread_rwlock_unlock(&b->lock);
			return -ENOSPC;
		}
		place[i] = addr;
		next = addr + size;
		any = true;
	}
	for (unsigned int i = 0; i < PCI_NUM_BARS; i++) {
		if (d->bar[i].type == PCI_BAR_NONE)
			continue;
		uint32_t off = PCI_BAR0 + 4 * i;
		pci_cfg_put(d->cfg, off, 4, (uint32_t)place[i] | (d->cfg[off] & 0xf));
		if (d->bar[i].type == PCI_BAR_MEM64)
			pci_cfg_put(d->cfg, off + 4, 4, (uint32_t)(place[i] >> 32));
	}
	if (any)
		d->cfg[PCI_COMMAND] |= PCI_COMMAND_MEMORY;
	b->mmio_next = next;
	d->bus = b;
	d->slot = slot;
	b->dev[slot] = d;
	update_bars(b, d);
	pthread_rwlock_unlock(&b->lock);
	log_debug("pci: %s at 00:%02x.0", d->name ? d->name : "device", slot);
	return (int)slot;
}

/* The function the 0xcf8 register selects, with the register offset; NULL for none. */
static struct pci_dev *target(struct pci_bus *b, uint32_t *reg)
{
	uint32_t a = b->config_addr;

	if (!(a & CONFIG_ENABLE) || (a & CONFIG_RESERVED) || ((a >> 16) & 0xff) || ((a >> 8) & 7))
		return NULL;
	*reg = a & 0xfc;
	return b->dev[(a >> 11) & 0x1f];
}

static void cfg_write(struct pci_bus *b, struct pci_dev *d, uint32_t off, uint32_t len, uint32_t v)
{
	for (uint32_t i = 0; i < len; i++) {
		uint8_t byte = (uint8_t)(v >> (8 * i)), m = d->wmask[off + i];
		d->cfg[off + i] = (uint8_t)((d->cfg[off + i] & ~m) | (byte & m));
		d->cfg[off + i] &= (uint8_t) ~(byte & d->w1c[off + i]);
	}
	if (d->cfg_written)
		d->cfg_written(d, off, len);
	update_bars(b, d);
}

void pci_config_addr_io(void *opaque, uint64_t off, uint8_t *data, uint32_t len, bool is_write)
{
	struct pci_bus *b = opaque;

	/* Only whole-dword accesses reach the address register (a byte to 0xcfb is ignored). */
	if (off != 0 || len != 4) {
		if (!is_write)
			memset(data, 0xff, len);
		return;
	}
	pthread_rwlock_wrlock(&b->lock);
	if (is_write) {
		uint32_t v;
		memcpy(&v, data, 4);
		b->config_addr = v & ~3u;
	} else {
		memcpy(data, &b->config_addr, 4);
	}
	pthread_rwlock_unlock(&b->lock);
}

void pci_config_data_io(void *opaque, uint64_t off, uint8_t *data, uint32_t len, bool is_write)
{
	struct pci_bus *b = opaque;
	struct pci_dev *d;
	uint32_t reg = 0, v = UINT32_MAX;

	/* An access must stay inside the selected dword (in 0xcfd with len 4 does not). */
	if (off >= 4 || len == 0 || len > 4 - off) {
		if (!is_write)
			memset(data, 0xff, len);
		return;
	}
	pthread_rwlock_wrlock(&b->lock);
	d = target(b, &reg);
	reg += (uint32_t)off;
	if (d && is_write) {
		v = 0;
		memcpy(&v, data, len);
		cfg_write(b, d, reg, len, v);
	} else if (d) {
		if (d->cfg_read)
			d->cfg_read(d, reg, len);
		v = pci_cfg_get(d->cfg, reg, len);
	}
	pthread_rwlock_unlock(&b->lock);
	if (!is_write)
		memcpy(data, &v, len);
}

void pci_mmio_io(void *opaque, uint64_t off, uint8_t *data, uint32_t len, bool is_write)
{
	struct pci_bus *b = opaque;
	uint64_t addr = b->mmio_base + off;

	pthread_rwlock_rdlock(&b->lock);
	for (unsigned int s = 0; s < PCI_MAX_DEVS; s++) {
		struct pci_dev *d = b->dev[s];
		if (!d)
			continue;
		for (unsigned int i = 0; i < PCI_NUM_BARS; i++) {
			const struct pci_bar *bar = &d->bar[i];
			if (bar->addr == PCI_BAR_UNMAPPED || addr < bar->addr ||
			    addr - bar->addr >= bar->size)
				continue;
			/* An access straddling the end of a BAR is claimed by nobody. */
			if (len == 0 || len > 8 || len > bar->size - (addr - bar->addr))
				goto unclaimed;
			if (d->bar_access)
				d->bar_access(d, i, addr - bar->addr, data, len, is_write);
			else if (!is_write)
				memset(data, 0, len);
			pthread_rwlock_unlock(&b->lock);
			return;
		}
	}
unclaimed:
	pthread_rwlock_unlock(&b->lock);
	if (!is_write)
		memset(data, 0xff, len);
}

int pci_bus_attach(struct pci_bus *b, struct bus *pio, struct bus *mmio)
{
	int r;

	if ((r = bus_register(pio, PORT_PCI_CONFIG_ADDR, 1, pci_config_addr_io, b, "pci-addr")) ||
	    (r = bus_register(pio, PORT_PCI_CONFIG_DATA, 4, pci_config_data_io, b, "pci-data")) ||
	    (r = bus_register(mmio, b->mmio_base, b->mmio_size, pci_mmio_io, b, "pci-window")))
		return r;
	return 0;
}

/* ---- snapshot state ---- */

int pci_save(struct pci_bus *b, struct vmstate_writer *w)
{
	uint32_t present = 0;

	/* Read lock: configuration writes (which move BARs) wait; MMIO dispatch goes on. */
	pthread_rwlock_rdlock(&b->lock);
	vmstate_put_u64(w, b->mmio_base);
	vmstate_put_u64(w, b->mmio_size);
	vmstate_put_u32(w, b->config_addr);
	for (unsigned int s = 0; s < PCI_MAX_DEVS; s++)
		if (b->dev[s])
			present |= 1u << s;
	vmstate_put_u32(w, present);
	for (unsigned int s = 0; s < PCI_MAX_DEVS; s++) {
		const struct pci_dev *d = b->dev[s];
		if (!d)
			continue;
		vmstate_put(w, d->cfg, PCI_CFG_SIZE);
		/* Redundant with cfg, but lets restore check it decodes the BARs where they were. */
		for (unsigned int i = 0; i < PCI_NUM_BARS; i++) {
			vmstate_put_u8(w, (uint8_t)d->bar[i].type);
			vmstate_put_u64(w, d->bar[i].size);
			vmstate_put_u64(w, d->bar[i].addr);
		}
	}
	pthread_rwlock_unlock(&b->lock);
	return 0;
}

static const char *dev_name(const struct pci_dev *d)
{
	return d->name ? d->name : "device";
}

/* One function's saved configuration space and BARs, checked against d. */
static int check_function(const struct pci_bus *b, const struct pci_dev *d,
			  struct vmstate_cursor *c, uint8_t *cfg, char *err, size_t errlen)
{
	uint8_t type[PCI_NUM_BARS];
	uint64_t size[PCI_NUM_BARS], addr[PCI_NUM_BARS];

	vmstate_get(c, cfg, PCI_CFG_SIZE);
	for (unsigned int i = 0; i < PCI_NUM_BARS; i++) {
		type[i] = vmstate_get_u8(c);
		size[i] = vmstate_get_u64(c);
		addr[i] = vmstate_get_u64(c);
	}
	if (c->error)
		return vmstate_cursor_size_error(c, "pci", err, errlen);
	/*
	 * Bits the guest cannot write are the device's identity (IDs, class, BAR types,
	 * capabilities): the same machine has the same ones, so a difference means another
	 * device or a damaged file. Writable and write-1-to-clear bits are the saved state.
	 */
	for (unsigned int i = 0; i < PCI_CFG_SIZE; i++) {
		uint8_t ro = (uint8_t) ~(d->wmask[i] | d->w1c[i]);
		if ((cfg[i] ^ d->cfg[i]) & ro)
			return fail_msg(
				err, errlen, -EINVAL,
				"pci: 00:%02x.0 (%s): config byte 0x%02x is 0x%02x in the file; "
				"its read-only bits (0x%02x) are 0x%02x here",
				d->slot, dev_name(d), i, cfg[i], ro, d->cfg[i] & ro);
	}
	for (unsigned int i = 0; i < PCI_NUM_BARS; i++) {
		const struct pci_bar *bar = &d->bar[i];
		if (type[i] != bar->type || size[i] != bar->size)
			return fail_msg(
				err, errlen, -EINVAL,
				"pci: 00:%02x.0 (%s): BAR %u is type %u size 0x%llx in the file, "
				"type %u size 0x%llx here",
				d->slot, dev_name(d), i, type[i], (unsigned long long)size[i],
				bar->type, (unsigned long long)bar->size);
		uint64_t want =
			bar->type == PCI_BAR_NONE ? PCI_BAR_UNMAPPED : bar_decode(b, d, cfg, i);
		if (addr[i] != want)
			return fail_msg(
				err, errlen, -EINVAL,
				"pci: 00:%02x.0 (%s): BAR %u decodes at 0x%llx in the file, its "
				"registers say 0x%llx",
				d->slot, dev_name(d), i, (unsigned long long)addr[i],
				(unsigned long long)want);
	}
	return 0;
}

int pci_restore(struct pci_bus *b, struct vmstate_cursor *c, char *err, size_t errlen)
{
	uint8_t cfg[PCI_MAX_DEVS][PCI_CFG_SIZE];
	uint64_t base, size;
	uint32_t config_addr, present, here = 0;
	int r = -EINVAL;

	/*
	 * The write lock for the whole load: every function's bytes are checked against the
	 * bus as it is and committed with no configuration access in between.
	 */
	pthread_rwlock_wrlock(&b->lock);
	base = vmstate_get_u64(c);
	size = vmstate_get_u64(c);
	config_addr = vmstate_get_u32(c);
	present = vmstate_get_u32(c);
	if (c->error) {
		r = vmstate_cursor_size_error(c, "pci", err, errlen);
		goto out;
	}
	if (base != b->mmio_base || size != b->mmio_size) {
		r = fail_msg(err, errlen, -EINVAL,
			     "pci: window 0x%llx+0x%llx in the file, 0x%llx+0x%llx here",
			     (unsigned long long)base, (unsigned long long)size,
			     (unsigned long long)b->mmio_base, (unsigned long long)b->mmio_size);
		goto out;
	}
	/* pci_config_addr_io() keeps bits 1:0 at zero; every other value can be latched. */
	if (config_addr & 3) {
		r = fail_msg(err, errlen, -EINVAL, "pci: config address 0x%08x has bits 1:0 set",
			     config_addr);
		goto out;
	}
	for (unsigned int s = 0; s < PCI_MAX_DEVS; s++)
		if (b->dev[s])
			here |= 1u << s;
	if (present != here) {
		unsigned int s = (unsigned int)__builtin_ctz(present ^ here);
		if (present & (1u << s))
			r = fail_msg(err, errlen, -EINVAL,
				     "pci: the file has a function at 00:%02x.0, this bus none", s);
		else
			r = fail_msg(err, errlen, -EINVAL, "pci: 00:%02x.0 (%s) is not in the file",
				     s, dev_name(b->dev[s]));
		goto out;
	}
	for (unsigned int s = 0; s < PCI_MAX_DEVS; s++)
		if (b->dev[s] && (r = check_function(b, b->dev[s], c, cfg[s], err, errlen)))
			goto out;
	if (vmstate_cursor_done(c)) {
		r = vmstate_cursor_size_error(c, "pci", err, errlen);
		goto out;
	}

	b->config_addr = config_addr;
	for (unsigned int s = 0; s < PCI_MAX_DEVS; s++) {
		struct pci_dev *d = b->dev[s];
		if (!d)
			continue;
		memcpy(d->cfg, cfg[s], PCI_CFG_SIZE);
		/* The path a guest's BAR or command write takes: bar_moved for what moved. */
		update_bars(b, d);
	}
	r = 0;
out:
	pthread_rwlock_unlock(&b->lock);
	return r;
}

/* The platform over real KVM and the VM's event loop. */
static int kvm_irqfd_op(const struct pci_platform *p, int efd, uint32_t gsi, bool assign)
{
	return assign ? kvm_irqfd(p->kvm, efd, gsi) : kvm_irqfd_remove(p->kvm, efd, gsi);
}

static int kvm_ioeventfd_op(const struct pci_platform *p, int efd, uint64_t addr, uint32_t len,
			    bool assign)
{
	return assign ? kvm_ioeventfd(p->kvm, efd, addr, len, 0) :
			kvm_ioeventfd_remove(p->kvm, efd, addr, len, 0);
}

static int kvm_signal_msi_op(const struct pci_platform *p, uint64_t addr, uint32_t data)
{
	return kvm_signal_msi(p->kvm, addr, data);
}

static int loop_watch_op(const struct pci_platform *p, int fd, loop_fn fn, void *opaque)
{
	return loop_add(p->loop, fd, EPOLLIN, fn, opaque);
}

static int loop_unwatch_op(const struct pci_platform *p, int fd)
{
	return loop_del(p->loop, fd);
}

void pci_platform_kvm(struct pci_platform *p, struct kvm *kvm, struct loop *loop,
		      struct irq_routing *routing)
{
	*p = (struct pci_platform){
		.routing = routing,
		.kvm = kvm,
		.loop = loop,
		.irqfd = kvm_irqfd_op,
		.ioeventfd = kvm_ioeventfd_op,
		.signal_msi = kvm_signal_msi_op,
		.watch = loop_watch_op,
		.unwatch = loop_unwatch_op,
	};
}

/* ACPI address space descriptors (large items), as ASL's WordIO/WordBusNumber/DWordMemory. */
#define RES_DWORD_ADDRESS 0x87
#define RES_WORD_ADDRESS 0x88
#define SPACE_MEMORY 0
#define SPACE_IO 1
#define SPACE_BUS 2
#define GEN_MIN_FIXED 0x04
#define GEN_MAX_FIXED 0x08
#define IO_RANGE_ENTIRE 0x03
#define MEM_READ_WRITE 0x01 /* non-cacheable */

static void put_le(uint8_t *p, uint64_t v, unsigned int n)
{
	for (unsigned int i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* A producer range [min, max] the bridge decodes positively; width 2 (Word) or 4 (DWord). */
static void res_address(struct aml *a, unsigned int width, uint8_t space, uint8_t type_flags,
			uint64_t min, uint64_t max)
{
	uint8_t d[3 + 3 + 5 * 4];
	unsigned int body = 3 + 5 * width;

	d[0] = width == 2 ? RES_WORD_ADDRESS : RES_DWORD_ADDRESS;
	put_le(&d[1], body, 2);
	d[3] = space;
	d[4] = GEN_MIN_FIXED | GEN_MAX_FIXED;
	d[5] = type_flags;
	put_le(&d[6], 0, width);			 /* granularity */
	put_le(&d[6 + width], min, width);		 /* minimum */
	put_le(&d[6 + 2 * width], max, width);		 /* maximum */
	put_le(&d[6 + 3 * width], 0, width);		 /* translation offset */
	put_le(&d[6 + 4 * width], max - min + 1, width); /* length */
	aml_raw(a, d, 3 + body);
}

void pci_dsdt(struct aml *a, const struct pci_bus *b)
{
	size_t dev = aml_device_open(a, "PCI0");

	aml_name_eisaid(a, "_HID", "PNP0A03");
	aml_name_integer(a, "_UID", 0);
	aml_name_integer(a, "_SEG", 0);
	aml_name_integer(a, "_BBN", 0);
	aml_name(a, "_CRS");
	size_t res = aml_restemplate_open(a);
	res_address(a, 2, SPACE_BUS, 0, 0, 0xff);
	aml_res_io(a, PORT_PCI_CONFIG_ADDR, 8); /* consumed by the bridge itself */
	res_address(a, 2, SPACE_IO, IO_RANGE_ENTIRE, 0, PORT_PCI_CONFIG_ADDR - 1);
	res_address(a, 2, SPACE_IO, IO_RANGE_ENTIRE, PORT_PCI_CONFIG_ADDR + 8, 0xffff);
	res_address(a, 4, SPACE_MEMORY, MEM_READ_WRITE, b->mmio_base,
		    b->mmio_base + b->mmio_size - 1);
	aml_restemplate_close(a, res);
	aml_close(a, dev);
}
