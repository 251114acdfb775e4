/*
 * Thin wrappers over /dev/kvm: the system fd, one VM fd, vCPU fds with their
 * shared kvm_run page. Library style: functions return 0 or -errno.
 */
#ifndef TERN_KVM_KVM_H
#define TERN_KVM_KVM_H

#include <linux/kvm.h>
#include <stdint.h>

struct kvm {
	int sys_fd;
	int vm_fd;
	int run_size;
};

struct kvm_vcpu_fd {
	int fd;
	unsigned int id;
	struct kvm_run *run;
};

/* Opens /dev/kvm, checks the API version and creates a VM. */
int kvm_open(struct kvm *k, const char *dev);
int kvm_check_cap(const struct kvm *k, long cap);
int kvm_set_user_memory(const struct kvm *k, uint32_t slot, uint64_t gpa, uint64_t size, void *host,
			uint32_t flags);
/* KVM_GET_DIRTY_LOG: one bit per page of the slot (in 64-bit words), cleared as read. */
int kvm_get_dirty_log(const struct kvm *k, uint32_t slot, void *bitmap);
int kvm_create_irqchip_and_pit(const struct kvm *k);
int kvm_irq_line(const struct kvm *k, uint32_t irq, int level);
int kvm_vcpu_create(const struct kvm *k, unsigned int id, struct kvm_vcpu_fd *v);
/* Binds an eventfd to a GSI: a write to efd raises the interrupt (irqfd). */
int kvm_irqfd(const struct kvm *k, int efd, uint32_t gsi);
int kvm_irqfd_remove(const struct kvm *k, int efd, uint32_t gsi);
/*
 * A guest write to [addr, addr+len) (MMIO, or port I/O when pio) signals efd in
 * the kernel instead of exiting to tern (ioeventfd). len 0 matches any width.
 */
int kvm_ioeventfd(const struct kvm *k, int efd, uint64_t addr, uint32_t len, int pio);
int kvm_ioeventfd_remove(const struct kvm *k, int efd, uint64_t addr, uint32_t len, int pio);
/* An MMIO ioeventfd that fires only for writes of exactly data (a virtio-mmio queue's index). */
int kvm_ioeventfd_datamatch(const struct kvm *k, int efd, uint64_t addr, uint32_t len,
			    uint64_t data);
int kvm_ioeventfd_remove_datamatch(const struct kvm *k, int efd, uint64_t addr, uint32_t len,
				   uint64_t data);
/* Raises one MSI (address/data as the guest programmed them). */
int kvm_signal_msi(const struct kvm *k, uint64_t addr, uint32_t data);
/* Replaces the whole GSI routing table (KVM_SET_GSI_ROUTING). */
int kvm_set_gsi_routing(const struct kvm *k, const struct kvm_irq_routing_entry *e, uint32_t n);

/* One MSR of a vCPU. 0 or -EIO (KVM refused the index). */
int kvm_vcpu_get_msr(int vcpu_fd, uint32_t index, uint64_t *value);
int kvm_vcpu_set_msr(int vcpu_fd, uint32_t index, uint64_t value);
/* Returns a malloc'ed list of what KVM can expose, or NULL with errno set. */
struct kvm_cpuid2 *kvm_get_supported_cpuid(const struct kvm *k);

#endif
