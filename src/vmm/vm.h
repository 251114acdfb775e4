/* One virtual machine: KVM objects, guest RAM, buses, devices and vCPU threads. */
#ifndef TERN_VMM_VM_H
#define TERN_VMM_VM_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "arch/x86/layout.h"
#include "arch/x86/swkvm.h"
#include "bus/bus.h"
#include "core/loop.h"
#include "devices/i8042.h"
#include "devices/pci.h"
#include "devices/machine.h"
#include "devices/rtc.h"
#include "devices/serial.h"
#include "kvm/guest_mem.h"
#include "kvm/irq_routing.h"
#include "kvm/kvm.h"
#include "virtio/blk.h"
#include "virtio/mmio.h"
#include "virtio/net.h"
#include "virtio/rng.h"
#include "virtio/vsock.h"
#include "vmm/config.h"

struct vm;

struct vcpu {
	struct vm *vm;
	struct kvm_vcpu_fd k;
	pthread_t thread;
};

struct vm {
	struct vmm_config cfg;
	struct kvm kvm;
	struct guest_mem mem;
	struct bus pio, mmio;
	struct loop *loop; /* the main thread's event loop: console, device fds, timers */
	struct machine machine;
	struct serial serial;
	struct i8042 i8042;
	struct rtc rtc;
	struct irq_routing irq_routing;
	struct pci_platform pci_platform;
	struct pci_bus pci;
	struct kvm_cpuid2 *cpuid;
	bool software_kvm;
	struct swkvm swkvm;
	unsigned int ncpus;
	struct vcpu *vcpus;
	/* virtio devices and their transports */
	struct virtio_rng *rng;
	struct virtio_blk *blk[VMM_MAX_DISKS];
	struct virtio_net *net[VMM_MAX_NETS];
	struct virtio_vsock *vsock;
	unsigned int nmmio;
	struct virtio_mmio mmio_dev[LAYOUT_VIRTIO_MMIO_MAX];
	/* Stop request: the first one wins; the main thread waits on stop_fd. */
	int stop_fd;
	atomic_int stopping;
	enum machine_stop stop_why;
	int stop_status;
};

/* Builds the whole VM from cfg; bad input or missing access exits with status 2. */
void vm_create(struct vm *vm, const struct vmm_config *cfg);
/* Starts one thread per vCPU. */
void vm_start(struct vm *vm);
/* Turns a stop reason into tern-vmm's exit status. */
int vm_exit_status(const struct vm *vm);

/* vcpu.c */
void *vcpu_thread(void *arg);
void vcpu_dump(const struct vcpu *v, const char *why);

#endif
