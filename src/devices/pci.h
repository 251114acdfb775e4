/*
 * PCI bus 0 behind configuration mechanism #1 (ports 0xcf8/0xcfc), with a host bridge
 * at 00.0, up to 31 more single-function devices, memory BARs placed by tern in the
 * PCI window (as firmware would) and moved wherever the guest puts them inside it.
 * The whole window is one range on the MMIO bus; accesses are dispatched here to the
 * BAR that decodes them. Every guest-written value is checked: a bad access reads
 * all-ones or is dropped, and breaks nothing but the device that was poked.
 */
#ifndef TERN_DEVICES_PCI_H
#define TERN_DEVICES_PCI_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/loop.h"

struct aml;
struct bus;
struct irq_routing;
struct kvm;
struct pci_bus;
struct vmstate_cursor;
struct vmstate_writer;

#define PCI_STATE_VERSION 1 /* section version of VMSTATE_TAG_PCI */

#define PCI_MAX_DEVS 32
#define PCI_NUM_BARS 6
#define PCI_CFG_SIZE 256
#define PCI_BAR_UNMAPPED UINT64_MAX /* pci_bar.addr when the BAR decodes nothing */

/* Standard configuration header (type 0) offsets and bits. */
#define PCI_VENDOR_ID 0x00
#define PCI_DEVICE_ID 0x02
#define PCI_COMMAND 0x04
#define PCI_COMMAND_IO 0x1
#define PCI_COMMAND_MEMORY 0x2
#define PCI_COMMAND_MASTER 0x4
#define PCI_STATUS 0x06
#define PCI_STATUS_CAP_LIST 0x10
#define PCI_REVISION_ID 0x08
#define PCI_CLASS_PROG 0x09
#define PCI_HEADER_TYPE 0x0e
#define PCI_BAR0 0x10
#define PCI_SUBSYSTEM_VENDOR_ID 0x2c
#define PCI_SUBSYSTEM_ID 0x2e
#define PCI_ROM_ADDRESS 0x30
#define PCI_CAPABILITY_LIST 0x34
#define PCI_INTERRUPT_LINE 0x3c
#define PCI_INTERRUPT_PIN 0x3d
#define PCI_CAP_START 0x40

#define PCI_CAP_ID_MSIX 0x11
#define PCI_CAP_ID_VNDR 0x09

#define PCI_BAR_MEM_TYPE_64 0x4

/* The host bridge's identity (a generic PCIe host bridge ID; Linux has no quirks for it). */
#define PCI_HOST_VENDOR 0x1b36
#define PCI_HOST_DEVICE 0x0008
#define PCI_CLASS_HOST_BRIDGE 0x060000

enum pci_bar_type { PCI_BAR_NONE, PCI_BAR_MEM32, PCI_BAR_MEM64 };

struct pci_bar {
	enum pci_bar_type type; /* a MEM64 BAR also uses the next slot (its high half) */
	uint64_t size;		/* a power of two */
	uint64_t addr;		/* where it decodes now, or PCI_BAR_UNMAPPED */
};

/*
 * One function. The device fills cfg (with pci_dev_init(), pci_dev_set_bar(),
 * pci_cap_add()) and the hooks before pci_dev_add(); the bus owns it afterwards.
 * Hooks run with the bus lock held (so they must not call back into the bus).
 */
struct pci_dev {
	uint8_t cfg[PCI_CFG_SIZE];
	uint8_t wmask[PCI_CFG_SIZE]; /* bits the guest may change */
	uint8_t w1c[PCI_CFG_SIZE];   /* bits a guest write of 1 clears */
	struct pci_bar bar[PCI_NUM_BARS];
	const char *name;
	void *opaque;
	/* An access inside a decoded BAR, off+len <= bar size, len 1..8. */
	void (*bar_access)(struct pci_dev *d, unsigned int bar, uint64_t off, uint8_t *data,
			   uint32_t len, bool is_write);
	/* The BAR now decodes at addr (PCI_BAR_UNMAPPED: nowhere). */
	void (*bar_moved)(struct pci_dev *d, unsigned int bar, uint64_t addr);
	/* Before a configuration read of [off, off+len): the device may refresh cfg. */
	void (*cfg_read)(struct pci_dev *d, uint32_t off, uint32_t len);
	/* After a configuration write to [off, off+len) landed in cfg (wmask applied). */
	void (*cfg_written)(struct pci_dev *d, uint32_t off, uint32_t len);
	/* Releases the device (pci_bus_destroy). May be NULL. */
	void (*destroy)(struct pci_dev *d);
	/* Set by the bus. */
	struct pci_bus *bus;
	unsigned int slot;
	uint8_t cap_last; /* offset of the last capability, 0 for none */
	uint16_t cap_end; /* first free byte for the next capability */
};

/*
 * What the bus's devices need from the VM for MSI-X and notifications: the GSI
 * routing table, irqfd, ioeventfd, MSI injection and the event loop. pci_platform_kvm()
 * fills in the real thing; unit tests put fakes in the function pointers.
 */
struct pci_platform {
	struct irq_routing *routing;
	struct kvm *kvm;
	struct loop *loop;
	void *opaque; /* for fakes */
	int (*irqfd)(const struct pci_platform *p, int efd, uint32_t gsi, bool assign);
	int (*ioeventfd)(const struct pci_platform *p, int efd, uint64_t addr, uint32_t len,
			 bool assign);
	int (*signal_msi)(const struct pci_platform *p, uint64_t addr, uint32_t data);
	int (*watch)(const struct pci_platform *p, int fd, loop_fn fn, void *opaque);
	int (*unwatch)(const struct pci_platform *p, int fd);
};

void pci_platform_kvm(struct pci_platform *p, struct kvm *kvm, struct loop *loop,
		      struct irq_routing *routing);

struct pci_bus {
	/*
	 * Writers: configuration accesses (they can move BARs). Readers: MMIO dispatch.
	 * Lock order: bus lock, then a device's own lock.
	 */
	pthread_rwlock_t lock;
	uint32_t config_addr; /* the 0xcf8 register */
	struct pci_dev *dev[PCI_MAX_DEVS];
	struct pci_dev host;
	uint64_t mmio_base, mmio_size;
	uint64_t mmio_next; /* BAR placement cursor */
	const struct pci_platform *platform;
};

/*
 * Sets up an empty bus with the host bridge at 00.0, BARs to be placed in
 * [mmio_base, mmio_base + mmio_size). platform may be NULL (no MSI-capable devices).
 */
void pci_bus_init(struct pci_bus *b, uint64_t mmio_base, uint64_t mmio_size,
		  const struct pci_platform *platform);
/* Releases every device added (their destroy hooks). */
void pci_bus_destroy(struct pci_bus *b);
/*
 * Registers ports 0xcf8 (address; 1 byte so 0xcf9's reset register stays separate),
 * 0xcfc-0xcff (data) and the MMIO window. Set-up only (the buses are read-only later).
 */
int pci_bus_attach(struct pci_bus *b, struct bus *pio, struct bus *mmio);

/* Fills the standard header: IDs, class (base/sub/prog-if), revision, write masks. */
void pci_dev_init(struct pci_dev *d, uint16_t vendor, uint16_t device, uint32_t class_code,
		  uint8_t revision, uint16_t subsys_vendor, uint16_t subsys_id);
/* Declares a memory BAR (size a power of two, >= 16; MEM64 takes bar and bar+1). */
int pci_dev_set_bar(struct pci_dev *d, unsigned int bar, enum pci_bar_type type, uint64_t size);
/*
 * Appends a capability (cap[0] is its ID; cap[1], the next pointer, is filled in).
 * Returns its offset in configuration space, or -ENOSPC.
 */
int pci_cap_add(struct pci_dev *d, const void *cap, uint8_t len);
/*
 * Places d's BARs, enables memory decoding (as firmware leaves it) and puts d in the
 * first free slot. Returns the slot, -ENOSPC (no slot or no window space) or -EINVAL.
 */
int pci_dev_add(struct pci_bus *b, struct pci_dev *d);

/* Little-endian helpers over a configuration space. */
uint32_t pci_cfg_get(const uint8_t *cfg, uint32_t off, uint32_t len);
void pci_cfg_put(uint8_t *cfg, uint32_t off, uint32_t len, uint32_t v);

/* Port and MMIO handlers (exposed for unit tests and fuzzing). */
void pci_config_addr_io(void *opaque, uint64_t off, uint8_t *data, uint32_t len, bool is_write);
void pci_config_data_io(void *opaque, uint64_t off, uint8_t *data, uint32_t len, bool is_write);
void pci_mmio_io(void *opaque, uint64_t off, uint8_t *data, uint32_t len, bool is_write);

/*
 * Snapshot state of the bus, inside a section the caller opened (VMSTATE_TAG_PCI,
 * version PCI_STATE_VERSION): the window (to check it matches), the 0xcf8 register and,
 * for each function, its 256 configuration bytes (command register and BARs included)
 * and its BARs' types, sizes and decoded addresses. What a device keeps outside its
 * configuration space (virtio-pci's MSI-X table) is that device's to save. Always 0
 * (the writer keeps the first error).
 */
int pci_save(struct pci_bus *b, struct vmstate_writer *w);
/*
 * Loads a pci_save() payload into a bus built exactly as at boot (same functions in the
 * same slots). The payload is untrusted: the window, the set of functions, every
 * read-only configuration bit and every BAR's type and size must match this bus, and
 * each saved decoded address must follow from the saved registers; otherwise -EINVAL
 * with err naming the function and field, and the bus unchanged.
 *
 * Once loaded, BARs are decoded again as after a guest's configuration write, so each
 * device's bar_moved hook sees every BAR that moved (MMIO dispatch and ioeventfds follow).
 * cfg_written hooks are not called: replaying them would repeat a guest write's side
 * effects (virtio-pci's configuration access window writes into the device), so state a
 * device derives from its configuration space (virtio-pci's MSI-X enable and mask bits)
 * is for the device's own restore to set, from its own section or from cfg.
 */
int pci_restore(struct pci_bus *b, struct vmstate_cursor *c, char *err, size_t errlen);

/* Writes Device(PCI0) (the host bridge, its bus range, ports and window) into the DSDT. */
void pci_dsdt(struct aml *a, const struct pci_bus *b);

#endif
