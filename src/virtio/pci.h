/*
 * virtio-pci, modern interface only (virtio 1.x, 4.1): one 64-bit memory BAR holding
 * the common configuration, ISR, device configuration, notification area and the
 * MSI-X table and PBA; vendor capabilities pointing into it, plus the PCI
 * configuration access capability. Interrupts are MSI-X vectors delivered through
 * KVM irqfds over MSI routes; queue kicks arrive on KVM ioeventfds watched by the
 * event loop (or as MMIO exits when an ioeventfd could not be registered).
 * Legacy INTx is not implemented: with MSI-X disabled no interrupt is raised.
 */
#ifndef TERN_VIRTIO_PCI_H
#define TERN_VIRTIO_PCI_H

#include <stdbool.h>
#include <stdint.h>

#include "devices/pci.h"
#include "virtio/device.h"

#define VIRTIO_PCI_VENDOR 0x1af4
#define VIRTIO_PCI_DEVICE_BASE 0x1040 /* + virtio device ID (non-transitional) */
#define VIRTIO_PCI_REVISION 1

/* The BAR and its layout: each region on its own 2 KiB boundary, MSI-X on its own page. */
#define VIRTIO_PCI_BAR 0
#define VIRTIO_PCI_BAR_SIZE 0x4000
#define VIRTIO_PCI_COMMON 0x0000
#define VIRTIO_PCI_COMMON_LEN 0x38 /* up to queue_device; no notify_data/queue_reset */
#define VIRTIO_PCI_ISR 0x0800
#define VIRTIO_PCI_DEVICE_CFG 0x1000
#define VIRTIO_PCI_DEVICE_CFG_MAX 0x1000
#define VIRTIO_PCI_NOTIFY 0x2000
#define VIRTIO_PCI_NOTIFY_MULT 4 /* queue q is kicked at NOTIFY + 4 * q */
#define VIRTIO_PCI_MSIX_TABLE 0x3000
#define VIRTIO_PCI_MSIX_PBA 0x3800

/* virtio_pci_cap.cfg_type */
#define VIRTIO_PCI_CAP_COMMON_CFG 1
#define VIRTIO_PCI_CAP_NOTIFY_CFG 2
#define VIRTIO_PCI_CAP_ISR_CFG 3
#define VIRTIO_PCI_CAP_DEVICE_CFG 4
#define VIRTIO_PCI_CAP_PCI_CFG 5

/* Common configuration register offsets */
#define VIRTIO_PCI_COMMON_DFSELECT 0x00
#define VIRTIO_PCI_COMMON_DF 0x04
#define VIRTIO_PCI_COMMON_GFSELECT 0x08
#define VIRTIO_PCI_COMMON_GF 0x0c
#define VIRTIO_PCI_COMMON_MSIX 0x10
#define VIRTIO_PCI_COMMON_NUMQ 0x12
#define VIRTIO_PCI_COMMON_STATUS 0x14
#define VIRTIO_PCI_COMMON_CFGGENERATION 0x15
#define VIRTIO_PCI_COMMON_Q_SELECT 0x16
#define VIRTIO_PCI_COMMON_Q_SIZE 0x18
#define VIRTIO_PCI_COMMON_Q_MSIX 0x1a
#define VIRTIO_PCI_COMMON_Q_ENABLE 0x1c
#define VIRTIO_PCI_COMMON_Q_NOFF 0x1e
#define VIRTIO_PCI_COMMON_Q_DESC 0x20
#define VIRTIO_PCI_COMMON_Q_AVAIL 0x28
#define VIRTIO_PCI_COMMON_Q_USED 0x30

#define VIRTIO_PCI_NO_VECTOR 0xffff
#define VIRTIO_PCI_MAX_VECTORS (VIRTIO_MAX_QUEUES + 1) /* config + one per queue */

/* MSI-X table entry layout and message control bits */
#define MSIX_ENTRY_SIZE 16
#define MSIX_ENTRY_CTRL 12
#define MSIX_CTRL_MASKED 0x1
#define MSIX_CONTROL_ENABLE 0x8000
#define MSIX_CONTROL_MASKALL 0x4000

struct virtio_pci;

struct virtio_pci_kick {
	struct virtio_pci *t;
	unsigned int q;
	int fd;		 /* eventfd, or -1 */
	bool registered; /* a KVM ioeventfd signals fd on writes to addr */
	uint64_t addr;
};

struct virtio_pci_vector {
	int gsi;	  /* MSI route, or -1 (then KVM_SIGNAL_MSI is used) */
	int fd;		  /* irqfd eventfd, or -1 */
	bool irqfd_bound; /* KVM injects gsi when fd is written */
	bool route_ok;	  /* the route holds this entry's address/data */
	bool route_failed;
};

struct virtio_pci {
	struct pci_dev pci;
	struct virtio_dev *dev;
	const struct pci_platform *platform;
	unsigned int nq, nvec;
	uint8_t msix_cap, cfg_cap; /* capability offsets in configuration space */
	/* Everything below is under dev->lock. */
	uint32_t device_feature_select, driver_feature_select;
	uint16_t queue_select;
	uint16_t msix_config;
	uint16_t queue_vector[VIRTIO_MAX_QUEUES];
	uint8_t isr;
	bool msix_enabled, msix_masked;
	uint8_t msix_table[VIRTIO_PCI_MAX_VECTORS * MSIX_ENTRY_SIZE];
	uint64_t pba;
	struct virtio_pci_vector vec[VIRTIO_PCI_MAX_VECTORS];
	/* Changed only under the bus lock (BAR moves). */
	struct virtio_pci_kick kick[VIRTIO_MAX_QUEUES];
	unsigned long long interrupts, fallback_msis;
};

/*
 * Puts d on bus as a new PCI function: sets d's transport and interrupt hooks, creates
 * the eventfds, MSI GSIs and loop watches it needs (through bus->platform), places its
 * BAR. d must stay alive as long as the bus. Returns the slot, or a negative errno
 * (-EINVAL for a device the transport cannot carry, -ENOSPC when the bus is full).
 */
int virtio_pci_add(struct pci_bus *bus, struct virtio_dev *d);

/* The PCI class code tern gives each virtio device type. */
uint32_t virtio_pci_class(uint32_t device_id);

/* d's virtio-pci transport, or NULL when d is not on virtio-pci. */
struct virtio_pci *virtio_pci_of(struct virtio_dev *d);

/*
 * Snapshot state: the payload of d's VMSTATE_TAG_VIRTIO section (virtio/device.h), the
 * core part then u32 device and driver feature selects, u16 queue select, u16 config
 * vector, u16 vector of each queue, u8 ISR, bools MSI-X enable and function mask, u32
 * table size, each entry (u64 address, u32 data, u32 vector control), u64 PBA. Save
 * takes the device lock; 0, or -EBUSY while requests are in flight (the section is then
 * unusable: abandon the snapshot, drain, try again).
 */
int virtio_pci_save(struct virtio_pci *t, struct vmstate_writer *w);
/*
 * Loads a virtio_pci_save() payload into a transport and device set up as at boot from the
 * same configuration. Everything is checked before anything changes (-EINVAL, err naming
 * the device and field, and the device as it was); the payload must be used up exactly.
 * Then, as the guest's own writes would: the MSI-X table goes in through the table write
 * path and each programmed vector gets its MSI route and irqfd, and the queue-notify
 * ioeventfds follow the BAR to wherever it now decodes (VMSTATE_TAG_PCI's restore moves
 * it; either may come first). Takes the PCI bus lock, then the device lock. Nothing runs
 * until virtio_dev_resume_kick().
 */
int virtio_pci_restore(struct virtio_pci *t, struct vmstate_cursor *c, char *err, size_t errlen);

#endif
