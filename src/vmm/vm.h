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
#include "devices/ged.h"
#include "devices/i8042.h"
#include "devices/pci.h"
#include "devices/machine.h"
#include "devices/rtc.h"
#include "devices/serial.h"
#include "devices/vmgenid.h"
#include "kvm/guest_mem.h"
#include "kvm/irq_routing.h"
#include "kvm/kvm.h"
#include "virtio/blk.h"
#include "virtio/mmio.h"
#include "virtio/net.h"
#include "virtio/rng.h"
#include "virtio/vsock.h"
#include "vmm/boot_inputs.h"
#include "vmm/config.h"
#include "vmstate/mem_file.h"

struct vm;

/*
 * Where guest RAM comes from: mem, made beforehand (vm_ram_create), which the VM takes
 * over: a boot's, or an incoming migration's already filled; else a snapshot's memory
 * file (vmstate/mem_file.h).
 */
struct vm_restore_mem {
	const char *path;
	uint8_t id[16];
	const struct guest_mem *mem;
};

/*
 * Exits by kind, for the metrics file (src/vmm/metrics.h). Only the vCPU's own thread
 * writes them, with a relaxed load and store (no locked instruction on the exit path);
 * the event-loop thread reads them.
 */
struct vcpu_stats {
	_Atomic unsigned long long exit_io_in, exit_io_out, exit_mmio_read, exit_mmio_write;
	_Atomic unsigned long long exit_emulation; /* completed by the software-KVM module */
	_Atomic unsigned long long failures;	   /* exits that crashed the VM as tern's fault */
};

struct vcpu {
	struct vm *vm;
	struct kvm_vcpu_fd k;
	pthread_t thread;
	struct vcpu_stats stats;
	uint64_t throttle_woke_ns; /* when its last throttle sleep ended (vcpu.c) */
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
	struct ged ged;		/* event selector: VM generation ID, power button */
	struct vmgenid vmgenid; /* a restore as a clone calls vmgenid_changed() */
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
	/* Snapshots (snapshot.c) */
	uint8_t *dirty_pending; /* pages written since the last snapshot on disk */
	bool resume_kick;	/* restored: devices pick up at the first resume */
	struct {
		bool valid;
		char path[MEM_FILE_BASE_PATH_MAX + 1]; /* absolute */
		uint8_t id[16];
	} last_mem;		  /* the memory file a diff snapshot builds on */
	bool dirty_log_on;	  /* KVM logs the pages the guest writes */
	atomic_uint throttle_pct; /* migration's auto-converge: share of time vCPUs sleep */
	/* Pause (vm_pause.c): vCPUs park in vcpu_pause_point() while want is set. */
	struct {
		atomic_bool want;
		pthread_mutex_t lock;
		pthread_cond_t cond;
		unsigned int parked, exited; /* vCPU threads parked / returned */
	} pause;
	/* Stop request: the first one wins; the main thread waits on stop_fd. */
	int stop_fd;
	atomic_int stopping;
	enum machine_stop stop_why;
	int stop_status;
};

/*
 * Builds the whole VM from cfg, RAM from rm and the checked kernel/initrd in (which it
 * frees; NULL when RAM holds the kernel already) on loop (the main thread's event loop);
 * missing access or devices that cannot open exit with status 2.
 */
void vm_create(struct vm *vm, const struct vmm_config *cfg, struct loop *loop,
	       struct boot_inputs *in, const struct vm_restore_mem *rm);
/* Starts one thread per vCPU. */
void vm_start(struct vm *vm);
/* The same, with the VM paused from the start (a restore that is not resumed yet). */
void vm_start_paused(struct vm *vm);
/*
 * Pause: every vCPU leaves KVM_RUN and waits, and the event loop stops serving device fds;
 * returns once all vCPUs are parked (0) or -ETIMEDOUT. Both are no-ops when already so.
 * Called on the event-loop thread.
 */
int vm_pause(struct vm *vm);
void vm_resume(struct vm *vm);
bool vm_is_paused(const struct vm *vm);
/*
 * Guest RAM of cfg's size as --huge-pages says: anonymous memory advised for transparent
 * huge pages (a warning if the kernel refuses), left on 4 KiB pages, or on 2 MiB hugetlbfs
 * pages. 0, or -errno with err.
 */
int vm_ram_create(struct guest_mem *mem, const struct vmm_config *cfg, char *err, size_t n);
/* Turns KVM's dirty page logging on or off for all of RAM. 0 or -errno. */
int vm_set_dirty_log(struct vm *vm, bool on);
/* The signal that kicks a vCPU out of KVM_RUN (installed on first use). */
int vm_kick_signal(void);
/* vCPU side: parks while a pause is requested. */
void vcpu_pause_point(struct vcpu *v);
/* vCPU side: the thread is returning (so a pause does not wait for it). */
void vcpu_exited(struct vcpu *v);
/* Turns a stop reason into tern-vmm's exit status. */
int vm_exit_status(const struct vm *vm);

/* vcpu.c */
void *vcpu_thread(void *arg);
void vcpu_dump(const struct vcpu *v, const char *why);

#endif
