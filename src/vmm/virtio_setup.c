/* Builds the configured virtio devices and puts each on the chosen transport. */
#include "vmm/virtio_setup.h"
#include "arch/x86/layout.h"
#include "core/log.h"
#include "virtio/mmio.h"
#include "virtio/rng.h"
#include "vmm/vm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void set_irq_line(void *ctx, unsigned int gsi, int level)
{
	struct vm *vm = ctx;

	vm->machine.set_irq(vm, gsi, level);
}

static void attach(struct vm *vm, struct virtio_dev *d)
{
	if (vm->cfg.transport == TRANSPORT_PCI)
		die_usage("--virtio-transport: pci is not implemented yet; use --virtio-transport "
			  "mmio");
	if (vm->nmmio == LAYOUT_VIRTIO_MMIO_MAX)
		die_usage("too many virtio devices: at most %d on virtio-mmio",
			  LAYOUT_VIRTIO_MMIO_MAX);
	unsigned int i = vm->nmmio++;
	int r = virtio_mmio_attach(&vm->mmio_dev[i], d, &vm->mmio,
				   LAYOUT_VIRTIO_MMIO_BASE + i * LAYOUT_VIRTIO_MMIO_STRIDE,
				   IRQ_VIRTIO_MMIO_BASE + i, set_irq_line, vm);
	if (r)
		die("cannot place %s on virtio-mmio: %s", d->ops->name, strerror(-r));
}

void virtio_setup(struct vm *vm)
{
	if (vm->cfg.rng) {
		vm->rng = calloc(1, sizeof(*vm->rng));
		if (!vm->rng)
			die("out of memory");
		virtio_rng_init(vm->rng, &vm->mem);
		attach(vm, &vm->rng->dev);
	}
}

void virtio_setup_dsdt(struct aml *a, void *opaque)
{
	struct vm *vm = opaque;

	for (unsigned int i = 0; i < vm->nmmio; i++)
		virtio_mmio_dsdt(a, &vm->mmio_dev[i], i);
}

void virtio_setup_cmdline(const struct vm *vm, char *buf, size_t len)
{
	size_t n = strlen(buf);

	for (unsigned int i = 0; i < vm->nmmio && n < len; i++)
		n += (size_t)snprintf(buf + n, len - n, " virtio_mmio.device=4K@0x%llx:%u",
				      (unsigned long long)vm->mmio_dev[i].base,
				      vm->mmio_dev[i].gsi);
}
