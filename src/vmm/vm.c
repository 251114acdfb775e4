/*
 * VM construction: everything is checked and built before the first vCPU runs, so
 * a bad kernel, initrd or option ends tern-vmm with status 2 and no guest started.
 */
#include "vmm/vm.h"
#include "arch/x86/acpi.h"
#include "arch/x86/boot.h"
#include "arch/x86/bootparams.h"
#include "arch/x86/layout.h"
#include "arch/x86/reset_vector.h"
#include "core/log.h"
#include "core/util.h"
#include "devices/power.h"
#include "vmm/virtio_setup.h"
#include "vmstate/mem_file.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#define MSR_IA32_MISC_ENABLE 0x1a0
#define MSR_MTRR_DEF_TYPE 0x2ff

static void machine_irq(void *ctx, unsigned int irq, int level)
{
	struct vm *vm = ctx;

	if (kvm_irq_line(&vm->kvm, irq, level))
		log_warn("cannot set IRQ %u: %s", irq, strerror(errno));
}

static void machine_stop_request(void *ctx, enum machine_stop why, int status)
{
	struct vm *vm = ctx;
	int expected = 0;
	uint64_t one = 1;

	if (!atomic_compare_exchange_strong(&vm->stopping, &expected, 1))
		return;
	vm->stop_why = why;
	vm->stop_status = status;
	if (why == MACHINE_DEBUG_EXIT) {
		/* Benchmarks separate the guest's last act from process teardown with this. */
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		log_debug("debug-exit at monotonic %lld.%09ld", (long long)ts.tv_sec, ts.tv_nsec);
	}
	if (write(vm->stop_fd, &one, sizeof(one)) < 0)
		log_error("cannot signal VM stop: %s", strerror(errno));
}

int vm_exit_status(const struct vm *vm)
{
	switch (vm->stop_why) {
	case MACHINE_POWEROFF:
	case MACHINE_RESET:
	case MACHINE_MIGRATED:
		return 0;
	case MACHINE_DEBUG_EXIT:
		return vm->stop_status;
	default:
		return 3;
	}
}

int vm_ram_create(struct guest_mem *mem, const struct vmm_config *cfg, char *err, size_t n)
{
	unsigned long long mib = (unsigned long long)cfg->mem_mib;
	int r;

	if (cfg->huge_pages == HUGE_PAGES_2M) {
		if ((r = guest_mem_create_hugetlb(mem, cfg->mem_mib * MIB)) == -ENOMEM)
			return fail_msg(err, n, r,
					"huge pages 2M: the host has fewer than %llu free 2 MiB "
					"pages (HugePages_Free in /proc/meminfo; sysctl "
					"vm.nr_hugepages reserves them)",
					mib / 2);
		if (r)
			return fail_msg(err, n, r, "huge pages 2M: %llu MiB of guest memory: %s",
					mib, strerror(-r));
		return 0;
	}
	if ((r = guest_mem_create(mem, cfg->mem_mib * MIB)))
		return fail_msg(err, n, r, "cannot allocate %llu MiB of guest memory: %s", mib,
				strerror(-r));
	/* Without huge pages the guest runs all the same, only slower: a warning. */
	if (cfg->huge_pages == HUGE_PAGES_TRANSPARENT && (r = guest_mem_advise_huge(mem)))
		log_warn("guest RAM: no transparent huge pages (MADV_HUGEPAGE: %s)", strerror(-r));
	return 0;
}

static void setup_memory(struct vm *vm, const struct vm_restore_mem *rm)
{
	uint64_t size = vm->cfg.mem_mib * MIB;
	char err[320];
	int r;

	if (rm->mem)
		vm->mem = *rm->mem; /* a boot's, or an incoming migration's */
	else if ((r = mem_file_map(&vm->mem, rm->path, size, rm->id, err, sizeof(err))))
		die_usage("%s", err);
	/* Diff snapshots need KVM to log the pages the guest writes (track_dirty_pages). */
	if ((r = vm_set_dirty_log(vm, vm->cfg.track_dirty)))
		die("KVM_SET_USER_MEMORY_REGION: %s", strerror(-r));
}

int vm_set_dirty_log(struct vm *vm, bool on)
{
	uint32_t flags = on ? KVM_MEM_LOG_DIRTY_PAGES : 0;
	int r;

	/* The same slots again with other flags: KVM keeps the memory, only logging changes. */
	if ((r = kvm_set_user_memory(&vm->kvm, 0, 0, vm->mem.low_size, vm->mem.host, flags)))
		return r;
	if (guest_mem_high_size(&vm->mem) &&
	    (r = kvm_set_user_memory(&vm->kvm, 1, GUEST_MEM_HIGH_BASE,
				     guest_mem_high_size(&vm->mem), vm->mem.host + vm->mem.low_size,
				     flags)))
		return r;
	vm->dirty_log_on = on;
	return 0;
}

static void add_pio(struct vm *vm, uint64_t base, uint64_t len, bus_handler_fn fn, void *opaque,
		    const char *name)
{
	if (bus_register(&vm->pio, base, len, fn, opaque, name))
		die("cannot register %s at port 0x%llx", name, (unsigned long long)base);
}

static void on_serial_flush(void *opaque, uint32_t events)
{
	struct serial *s = opaque;
	uint64_t n;

	(void)events;
	if (read(s->flush_timer, &n, sizeof(n)) < 0 && errno != EAGAIN)
		log_debug("serial: flush timer: %s", strerror(errno));
	serial_flush(s);
}

static void setup_devices(struct vm *vm)
{
	vm->machine = (struct machine){ machine_irq, machine_stop_request, vm };
	serial_init(&vm->serial, &vm->machine, IRQ_SERIAL_COM1, STDOUT_FILENO);
	/* A service: what the guest wrote before a pause still shows. Without it, a write per byte. */
	int t = loop_add_timer(vm->loop, 0, 0, on_serial_flush, &vm->serial, true);
	if (t >= 0)
		serial_set_flush_timer(&vm->serial, t);
	i8042_init(&vm->i8042, &vm->machine);
	rtc_init(&vm->rtc);
	ged_init(&vm->ged, &vm->machine, IRQ_GED, PORT_GED);
	vmgenid_init(&vm->vmgenid, &vm->mem, &vm->ged);
	add_pio(vm, PORT_SERIAL_COM1, 8, serial_io, &vm->serial, "serial");
	add_pio(vm, PORT_I8042_DATA, 5, i8042_io, &vm->i8042, "i8042");
	add_pio(vm, PORT_RTC, 2, rtc_io, &vm->rtc, "rtc");
	add_pio(vm, PORT_ACPI_SLEEP_CTL, 3, power_acpi_io, &vm->machine, "acpi-power");
	add_pio(vm, PORT_PCI_RESET, 1, power_cf9_io, &vm->machine, "reset-control");
	add_pio(vm, PORT_GED, GED_REG_LEN, ged_io, &vm->ged, "ged");
	if (vm->cfg.debug_exit)
		add_pio(vm, PORT_DEBUG_EXIT, 1, power_debug_exit_io, &vm->machine, "debug-exit");
	/* A PCI host bridge is always there, as on a PC; virtio-pci devices sit behind it. */
	irq_routing_init(&vm->irq_routing, irq_routing_set_kvm, &vm->kvm);
	pci_platform_kvm(&vm->pci_platform, &vm->kvm, vm->loop, &vm->irq_routing);
	pci_bus_init(&vm->pci, LAYOUT_PCI_MMIO_BASE, LAYOUT_PCI_MMIO_SIZE, &vm->pci_platform);
	if (pci_bus_attach(&vm->pci, &vm->pio, &vm->mmio))
		die("cannot register the PCI host bridge (ports 0xcf8/0xcfc, MMIO window)");
}

static char *compose_cmdline(struct vm *vm)
{
	const char *extra = vm->software_kvm ? swkvm_cmdline_extra() : "";
	size_t len = strlen(vm->cfg.cmdline) + strlen(extra) + 2 + 64 * LAYOUT_VIRTIO_MMIO_MAX;
	char *s = malloc(len);

	if (!s)
		die("out of memory");
	snprintf(s, len, "%s%s%s", vm->cfg.cmdline, *extra ? " " : "", extra);
	if (vm->cfg.mmio_cmdline)
		virtio_setup_cmdline(vm, s, len);
	if (*extra)
		log_info("software KVM backend: appended to the kernel command line: %s", extra);
	return s;
}

/* Kernel and initrd already checked by boot_inputs_load(). */
static void load_guest(struct vm *vm, const uint8_t *kernel, const struct boot_image *img,
		       enum boot_entry entry, const uint8_t *initrd, uint64_t initrd_len,
		       uint64_t initrd_gpa)
{
	struct boot_setup b = { .img = img,
				.file = kernel,
				.entry = entry,
				.initrd_gpa = initrd_gpa,
				.initrd_size = initrd_len };
	int r;

	uint64_t t = monotonic_ns();
	if (boot_image_load(img, kernel, &vm->mem))
		die_usage("--kernel: '%s' loads outside guest RAM", vm->cfg.kernel);
	if (initrd_len && guest_mem_write(&vm->mem, initrd_gpa, initrd, initrd_len))
		die("cannot copy the initrd into guest RAM");
	log_debug("kernel and initrd copied into guest RAM in %.1f ms",
		  (double)(monotonic_ns() - t) / 1e6);

	struct acpi_config acpi = {
		.ncpus = vm->ncpus,
		.ioapic_addr = (uint32_t)LAYOUT_IOAPIC,
		.ioapic_id = (uint8_t)vm->ncpus,
		.sleep_ctl_port = PORT_ACPI_SLEEP_CTL,
		.sleep_sts_port = PORT_ACPI_SLEEP_STS,
		.reset_port = PORT_ACPI_RESET,
		.reset_value = ACPI_RESET_VALUE,
		.dsdt_devices = virtio_setup_dsdt,
		.dsdt_opaque = vm,
	};
	long n = acpi_build(guest_mem_ptr(&vm->mem, LAYOUT_ACPI_BASE, LAYOUT_ACPI_SIZE),
			    LAYOUT_ACPI_SIZE, LAYOUT_ACPI_BASE, &acpi);
	if (n < 0)
		die("cannot build ACPI tables: %s", strerror((int)-n));
	b.rsdp_gpa = LAYOUT_ACPI_BASE;
	if (reset_vector_write(&vm->mem, PORT_ACPI_RESET, ACPI_RESET_VALUE))
		die("cannot write the reset vector");
	/* A restore keeps the ID in its RAM; only a clone gets a new one (vmgenid_changed). */
	if ((r = vmgenid_write_new(&vm->vmgenid)))
		die("cannot write the VM generation ID: %s", strerror(-r));

	char *cmdline = compose_cmdline(vm);
	b.cmdline = cmdline;
	r = boot_write_params(&vm->mem, &b);
	if (r == -E2BIG)
		die_usage("--cmdline: %zu bytes is longer than the kernel accepts",
			  strlen(cmdline));
	if (r)
		die("cannot write boot parameters: %s", strerror(-r));
	free(cmdline);

	struct kvm_regs regs;
	struct kvm_sregs sregs;
	struct vcpu *bsp = &vm->vcpus[0];
	if (ioctl(bsp->k.fd, KVM_GET_SREGS, &sregs) < 0)
		die("KVM_GET_SREGS: %s", strerror(errno));
	boot_cpu_state(&b, &regs, &sregs);
	if (ioctl(bsp->k.fd, KVM_SET_SREGS, &sregs) < 0 ||
	    ioctl(bsp->k.fd, KVM_SET_REGS, &regs) < 0)
		die("cannot set boot vCPU registers: %s", strerror(errno));
	static const char *const names[] = { "64-bit Linux boot protocol", "PVH",
					     "32-bit Linux boot protocol" };
	log_debug("entering the kernel at 0x%llx (%s)", (unsigned long long)regs.rip, names[entry]);
}

static void setup_vcpu(struct vm *vm, unsigned int id)
{
	struct vcpu *v = &vm->vcpus[id];
	int r;

	v->vm = vm;
	if ((r = kvm_vcpu_create(&vm->kvm, id, &v->k)))
		die("KVM_CREATE_VCPU %u: %s", id, strerror(-r));
	cpuid_set_topology(vm->cpuid, id, vm->ncpus);
	if (ioctl(v->k.fd, KVM_SET_CPUID2, vm->cpuid) < 0)
		die("KVM_SET_CPUID2: %s", strerror(errno));

	/* Firmware leaves fast strings on and MTRRs enabled with write-back as the default type. */
	if (kvm_vcpu_set_msr(v->k.fd, MSR_IA32_MISC_ENABLE, 1) ||
	    kvm_vcpu_set_msr(v->k.fd, MSR_MTRR_DEF_TYPE, (1 << 11) | 6))
		log_debug("vCPU %u: not every initial MSR was accepted", id);

	struct kvm_fpu fpu = { .fcw = 0x37f, .mxcsr = 0x1f80 };
	if (ioctl(v->k.fd, KVM_SET_FPU, &fpu) < 0)
		die("KVM_SET_FPU: %s", strerror(errno));

	/* Virtual-wire mode as firmware leaves it: LINT0 takes the PIC (ExtINT), LINT1 is NMI. */
	struct kvm_lapic_state lapic;
	if (ioctl(v->k.fd, KVM_GET_LAPIC, &lapic) == 0) {
		uint32_t *lint0 = (uint32_t *)&lapic.regs[0x350],
			 *lint1 = (uint32_t *)&lapic.regs[0x360];
		*lint0 = (*lint0 & ~0x700u & ~0x10000u) | 0x700;
		*lint1 = (*lint1 & ~0x700u & ~0x10000u) | 0x400;
		if (ioctl(v->k.fd, KVM_SET_LAPIC, &lapic) < 0)
			die("KVM_SET_LAPIC: %s", strerror(errno));
	}
}

/*
 * Everything about the user's files that can be known without KVM: a bad file or a
 * size that cannot work is the user's mistake and is reported before /dev/kvm is touched.
 */
void vm_create(struct vm *vm, const struct vmm_config *cfg, struct loop *loop,
	       struct boot_inputs *in, const struct vm_restore_mem *rm)
{
	int r;

	memset(vm, 0, sizeof(*vm));
	vm->cfg = *cfg;
	vm->ncpus = cfg->cpus;
	if ((r = kvm_open(&vm->kvm, cfg->kvm_dev)))
		die_usage("cannot use %s: %s%s", cfg->kvm_dev, strerror(-r),
			  r == -EACCES ? " (needs read/write access, e.g. the kvm group)" : "");
	if (!kvm_check_cap(&vm->kvm, KVM_CAP_IRQCHIP) || !kvm_check_cap(&vm->kvm, KVM_CAP_PIT2))
		die("this KVM lacks the in-kernel irqchip or PIT");
	int max = kvm_check_cap(&vm->kvm, KVM_CAP_MAX_VCPUS);
	if (max > 0 && vm->ncpus > (unsigned int)max)
		die_usage("--cpus: %u is more than this KVM allows (1 to %d)", vm->ncpus, max);

	vm->software_kvm = swkvm_detect();
	if (vm->software_kvm)
		log_info("software KVM backend detected (guest kernel code is emulated): "
			 "enabling tern's instruction completion and CPUID trimming");
	vm->stop_fd = eventfd(0, EFD_CLOEXEC);
	vm->loop = loop;
	pthread_mutex_init(&vm->pause.lock, NULL);
	pthread_cond_init(&vm->pause.cond, NULL);
	if (vm->stop_fd < 0)
		die("cannot create the event loop: %s", strerror(errno));

	setup_memory(vm, rm);
	if (vm->cfg.track_dirty) {
		vm->dirty_pending = calloc((vm->mem.size / MEM_FILE_PAGE + 7) / 8, 1);
		if (!vm->dirty_pending || guest_mem_track_dirty(&vm->mem))
			die("out of memory");
	}
	swkvm_init(&vm->swkvm, &vm->mem);
	if ((r = kvm_create_irqchip_and_pit(&vm->kvm)))
		die("cannot create the in-kernel irqchip and PIT: %s", strerror(-r));
	setup_devices(vm);
	virtio_setup(vm);

	vm->cpuid = kvm_get_supported_cpuid(&vm->kvm);
	if (!vm->cpuid)
		die("KVM_GET_SUPPORTED_CPUID: %s", strerror(errno));
	if (cpuid_add_topology_leaves(&vm->cpuid))
		die("out of memory");
	enum cpu_template t = cfg->template_set ? cfg->cpu_template :
			      vm->software_kvm	? CPU_TEMPLATE_COMPAT :
						  CPU_TEMPLATE_HOST;
	cpuid_apply_template(vm->cpuid, t);
	if (vm->software_kvm)
		swkvm_cpuid_fixup(vm->cpuid);
	log_debug("CPU template: %s", cpuid_template_name(t));

	vm->vcpus = calloc(vm->ncpus, sizeof(*vm->vcpus));
	if (!vm->vcpus)
		die("out of memory");
	for (unsigned int i = 0; i < vm->ncpus; i++)
		setup_vcpu(vm, i);
	/* A restored VM's RAM already holds its kernel, tables and boot data. */
	if (in) {
		load_guest(vm, in->kernel, &in->img, in->entry, in->initrd, in->initrd_len,
			   in->initrd_gpa);
		boot_inputs_free(in);
	}
}

void vm_start(struct vm *vm)
{
	for (unsigned int i = 0; i < vm->ncpus; i++) {
		int r = pthread_create(&vm->vcpus[i].thread, NULL, vcpu_thread, &vm->vcpus[i]);
		if (r)
			die("cannot start vCPU %u: %s", i, strerror(r));
	}
}
