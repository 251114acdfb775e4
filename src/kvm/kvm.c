/* Thin wrappers over /dev/kvm system and VM ioctls. */
#include "kvm/kvm.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

int kvm_open(struct kvm *k, const char *dev)
{
	int err;

	memset(k, 0, sizeof(*k));
	k->vm_fd = -1;
	k->sys_fd = open(dev, O_RDWR | O_CLOEXEC);
	if (k->sys_fd < 0)
		return -errno;
	if (ioctl(k->sys_fd, KVM_GET_API_VERSION, 0) != KVM_API_VERSION) {
		err = -ENOTSUP;
		goto fail;
	}
	k->run_size = ioctl(k->sys_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (k->run_size < (int)sizeof(struct kvm_run)) {
		err = -ENOTSUP;
		goto fail;
	}
	/* KVM_CREATE_VM can fail with EINTR while the host is busy; retry like QEMU does. */
	do
		k->vm_fd = ioctl(k->sys_fd, KVM_CREATE_VM, 0);
	while (k->vm_fd < 0 && errno == EINTR);
	if (k->vm_fd < 0) {
		err = -errno;
		goto fail;
	}
	return 0;
fail:
	close(k->sys_fd);
	k->sys_fd = -1;
	return err;
}

int kvm_check_cap(const struct kvm *k, long cap)
{
	int r = ioctl(k->vm_fd >= 0 ? k->vm_fd : k->sys_fd, KVM_CHECK_EXTENSION, cap);

	return r < 0 ? 0 : r;
}

int kvm_set_user_memory(const struct kvm *k, uint32_t slot, uint64_t gpa, uint64_t size, void *host,
			uint32_t flags)
{
	struct kvm_userspace_memory_region r = {
		.slot = slot,
		.flags = flags,
		.guest_phys_addr = gpa,
		.memory_size = size,
		.userspace_addr = (uint64_t)(uintptr_t)host,
	};

	return ioctl(k->vm_fd, KVM_SET_USER_MEMORY_REGION, &r) < 0 ? -errno : 0;
}

int kvm_get_dirty_log(const struct kvm *k, uint32_t slot, void *bitmap)
{
	struct kvm_dirty_log d = { .slot = slot, .dirty_bitmap = bitmap };

	return ioctl(k->vm_fd, KVM_GET_DIRTY_LOG, &d) < 0 ? -errno : 0;
}

int kvm_create_irqchip_and_pit(const struct kvm *k)
{
	/* The speaker port (0x61) stays in the kernel: Linux reads PIT channel 2 through it. */
	struct kvm_pit_config pit = { .flags = 0 };

	/* The TSS and identity-map pages must sit outside RAM and our MMIO (VT-x needs them). */
	if (ioctl(k->vm_fd, KVM_SET_TSS_ADDR, 0xfffbd000UL) < 0 && errno != EINVAL)
		return -errno;
	uint64_t idmap = 0xfffbc000ULL;
	if (ioctl(k->vm_fd, KVM_SET_IDENTITY_MAP_ADDR, &idmap) < 0 && errno != EINVAL)
		return -errno;
	if (ioctl(k->vm_fd, KVM_CREATE_IRQCHIP, 0) < 0)
		return -errno;
	if (ioctl(k->vm_fd, KVM_CREATE_PIT2, &pit) < 0)
		return -errno;
	return 0;
}

int kvm_irq_line(const struct kvm *k, uint32_t irq, int level)
{
	struct kvm_irq_level l = { .irq = irq, .level = (uint32_t)level };

	return ioctl(k->vm_fd, KVM_IRQ_LINE, &l) < 0 ? -errno : 0;
}

int kvm_vcpu_create(const struct kvm *k, unsigned int id, struct kvm_vcpu_fd *v)
{
	v->id = id;
	v->fd = ioctl(k->vm_fd, KVM_CREATE_VCPU, (unsigned long)id);
	if (v->fd < 0)
		return -errno;
	void *p = mmap(NULL, (size_t)k->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, v->fd, 0);
	if (p == MAP_FAILED) {
		int err = -errno;
		close(v->fd);
		return err;
	}
	v->run = p;
	return 0;
}

struct kvm_cpuid2 *kvm_get_supported_cpuid(const struct kvm *k)
{
	for (unsigned int n = 128; n <= 4096; n *= 2) {
		struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + n * sizeof(struct kvm_cpuid_entry2));
		if (!c)
			return NULL;
		c->nent = n;
		if (ioctl(k->sys_fd, KVM_GET_SUPPORTED_CPUID, c) == 0)
			return c;
		int e = errno;
		free(c);
		if (e != E2BIG) {
			errno = e;
			return NULL;
		}
	}
	errno = E2BIG;
	return NULL;
}

/* struct kvm_msrs ends in a flexible array: build it in a buffer of the right size. */
static int msr_ioctl(int vcpu_fd, unsigned long req, uint32_t index, uint64_t *value)
{
	union {
		struct kvm_msrs h;
		uint8_t raw[sizeof(struct kvm_msrs) + sizeof(struct kvm_msr_entry)];
	} u;

	memset(&u, 0, sizeof(u));
	u.h.nmsrs = 1;
	u.h.entries[0].index = index;
	u.h.entries[0].data = *value;
	if (ioctl(vcpu_fd, req, &u) != 1)
		return -EIO;
	*value = u.h.entries[0].data;
	return 0;
}

int kvm_vcpu_get_msr(int vcpu_fd, uint32_t index, uint64_t *value)
{
	*value = 0;
	return msr_ioctl(vcpu_fd, KVM_GET_MSRS, index, value);
}

int kvm_vcpu_set_msr(int vcpu_fd, uint32_t index, uint64_t value)
{
	return msr_ioctl(vcpu_fd, KVM_SET_MSRS, index, &value);
}

int kvm_irqfd(const struct kvm *k, int efd, uint32_t gsi)
{
	struct kvm_irqfd f = { .fd = (uint32_t)efd, .gsi = gsi };

	return ioctl(k->vm_fd, KVM_IRQFD, &f) < 0 ? -errno : 0;
}

int kvm_irqfd_remove(const struct kvm *k, int efd, uint32_t gsi)
{
	struct kvm_irqfd f = { .fd = (uint32_t)efd, .gsi = gsi, .flags = KVM_IRQFD_FLAG_DEASSIGN };

	return ioctl(k->vm_fd, KVM_IRQFD, &f) < 0 ? -errno : 0;
}

static int ioeventfd(const struct kvm *k, int efd, uint64_t addr, uint32_t len, int pio,
		     uint32_t extra)
{
	struct kvm_ioeventfd io = {
		.addr = addr,
		.len = len,
		.fd = efd,
		.flags = (pio ? KVM_IOEVENTFD_FLAG_PIO : 0) | extra,
	};

	return ioctl(k->vm_fd, KVM_IOEVENTFD, &io) < 0 ? -errno : 0;
}

int kvm_ioeventfd(const struct kvm *k, int efd, uint64_t addr, uint32_t len, int pio)
{
	return ioeventfd(k, efd, addr, len, pio, 0);
}

int kvm_ioeventfd_remove(const struct kvm *k, int efd, uint64_t addr, uint32_t len, int pio)
{
	return ioeventfd(k, efd, addr, len, pio, KVM_IOEVENTFD_FLAG_DEASSIGN);
}

static int ioeventfd_datamatch(const struct kvm *k, int efd, uint64_t addr, uint32_t len,
			       uint64_t data, uint32_t extra)
{
	struct kvm_ioeventfd io = {
		.datamatch = data,
		.addr = addr,
		.len = len,
		.fd = efd,
		.flags = KVM_IOEVENTFD_FLAG_DATAMATCH | extra,
	};

	return ioctl(k->vm_fd, KVM_IOEVENTFD, &io) < 0 ? -errno : 0;
}

int kvm_ioeventfd_datamatch(const struct kvm *k, int efd, uint64_t addr, uint32_t len,
			    uint64_t data)
{
	return ioeventfd_datamatch(k, efd, addr, len, data, 0);
}

int kvm_ioeventfd_remove_datamatch(const struct kvm *k, int efd, uint64_t addr, uint32_t len,
				   uint64_t data)
{
	return ioeventfd_datamatch(k, efd, addr, len, data, KVM_IOEVENTFD_FLAG_DEASSIGN);
}

int kvm_signal_msi(const struct kvm *k, uint64_t addr, uint32_t data)
{
	struct kvm_msi m = { .address_lo = (uint32_t)addr,
			     .address_hi = (uint32_t)(addr >> 32),
			     .data = data };

	/* Returns >0 when delivered, 0 when the guest blocked it: both are fine. */
	return ioctl(k->vm_fd, KVM_SIGNAL_MSI, &m) < 0 ? -errno : 0;
}

int kvm_set_gsi_routing(const struct kvm *k, const struct kvm_irq_routing_entry *e, uint32_t n)
{
	struct kvm_irq_routing *r = calloc(1, sizeof(*r) + n * sizeof(*e));
	int err = 0;

	if (!r)
		return -ENOMEM;
	r->nr = n;
	memcpy(r->entries, e, n * sizeof(*e));
	if (ioctl(k->vm_fd, KVM_SET_GSI_ROUTING, r) < 0)
		err = -errno;
	free(r);
	return err;
}
