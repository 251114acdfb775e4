/* Builds the configured virtio devices and puts each on the chosen transport. */
#include "vmm/virtio_setup.h"
#include "arch/x86/layout.h"
#include "backend/slirp.h"
#include "backend/tap.h"
#include "core/log.h"
#include "virtio/mmio.h"
#include "virtio/pci.h"
#include "virtio/rng.h"
#include "virtio/vsock.h"
#include "vmm/vm.h"

#include <errno.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void set_irq_line(void *ctx, unsigned int gsi, int level)
{
	struct vm *vm = ctx;

	vm->machine.set_irq(vm, gsi, level);
}

/*
 * Each queue's QueueNotify write (its index, 4 bytes) signals an eventfd in KVM instead of
 * exiting to the vCPU thread, which then goes on running the guest while the event loop
 * serves the queue, as on virtio-pci. Where KVM refuses, kicks exit as before.
 */
static void mmio_kicks(struct vm *vm, struct virtio_mmio *t)
{
	for (unsigned int q = 0; q < t->dev->ops->num_queues && q < VIRTIO_MAX_QUEUES; q++) {
		struct virtio_mmio_kick *k = &t->kick[q];
		int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK), r = fd < 0 ? -errno : 0;
		if (!r)
			r = kvm_ioeventfd_datamatch(&vm->kvm, fd,
						    t->base + VIRTIO_MMIO_QUEUE_NOTIFY, 4, q);
		if (!r && (r = loop_add(vm->loop, fd, EPOLLIN, virtio_mmio_kick_ready, k)))
			kvm_ioeventfd_remove_datamatch(&vm->kvm, fd,
						       t->base + VIRTIO_MMIO_QUEUE_NOTIFY, 4, q);
		if (r) {
			log_debug("%s: queue %u kicks exit to the vCPU (no ioeventfd: %s)",
				  t->dev->ops->name, q, strerror(-r));
			if (fd >= 0)
				close(fd);
			continue;
		}
		k->fd = fd;
	}
}

static void attach(struct vm *vm, struct virtio_dev *d)
{
	if (vm->cfg.transport == TRANSPORT_PCI) {
		int r = virtio_pci_add(&vm->pci, d);
		if (r == -ENOSPC)
			die_usage("too many virtio devices: at most %d on PCI", PCI_MAX_DEVS - 1);
		if (r < 0)
			die("cannot place %s on PCI: %s", d->ops->name, strerror(-r));
		return;
	}
	if (vm->nmmio == LAYOUT_VIRTIO_MMIO_MAX)
		die_usage("too many virtio devices: at most %d on virtio-mmio",
			  LAYOUT_VIRTIO_MMIO_MAX);
	unsigned int i = vm->nmmio++;
	int r = virtio_mmio_attach(&vm->mmio_dev[i], d, &vm->mmio,
				   LAYOUT_VIRTIO_MMIO_BASE + i * LAYOUT_VIRTIO_MMIO_STRIDE,
				   IRQ_VIRTIO_MMIO_BASE + i, set_irq_line, vm);
	if (r)
		die("cannot place %s on virtio-mmio: %s", d->ops->name, strerror(-r));
	mmio_kicks(vm, &vm->mmio_dev[i]);
}

struct disk_open_args virtio_setup_disk_args(const struct vm *vm, const struct disk_config *c)
{
	return (struct disk_open_args){
		.path = c->path,
		.readonly = c->readonly,
		.direct = c->cache == DISK_CACHE_NONE,
		.engine = c->engine,
		.format = c->format,
		.l2_cache_bytes = c->l2_cache,
		.loop = vm->loop,
		.no_lock = vm->cfg.disks_unlocked,
	};
}

static void add_disk(struct vm *vm, unsigned int i)
{
	const struct disk_config *c = &vm->cfg.disks[i];
	struct virtio_blk *b = calloc(1, sizeof(*b));
	const char *why = "";
	char *name;

	if (!b)
		die("out of memory");
	/* Nothing is left allocated on a usage exit: LeakSanitizer checks those too. */
	struct disk_open_args a = virtio_setup_disk_args(vm, c);
	int r = disk_open(&b->disk, &a, &why);
	if (r) {
		char msg[1024]; /* why may point into b */

		snprintf(msg, sizeof(msg), "--disk: '%s' %s: %s", c->path, why, strerror(-r));
		free(b);
		die_usage("%s", msg);
	}
	if (b->disk.size == 0) {
		disk_close(&b->disk);
		free(b);
		die_usage("--disk: '%s' is smaller than one 512-byte sector", c->path);
	}
	name = malloc(48);
	if (!name)
		die("out of memory");
	snprintf(name, 48, "virtio-blk%u%s%s", i, c->id[0] ? ":" : "", c->id);
	virtio_blk_init(b, &vm->mem, name, c->cache == DISK_CACHE_WRITEBACK, c->id);
	log_debug("%s: %s (%s), %llu bytes, %s%s, engine %s", name, c->path,
		  disk_format_name(b->disk.format), (unsigned long long)b->disk.size,
		  b->disk.readonly ? "read-only" : "read-write", b->disk.direct ? ", O_DIRECT" : "",
		  disk_engine_name(&b->disk));
	vm->blk[i] = b;
	attach(vm, &b->dev);
}

static void add_net(struct vm *vm, unsigned int i)
{
	const struct net_config *c = &vm->cfg.nets[i];
	struct virtio_net *n = calloc(1, sizeof(*n));
	struct net_backend *be = NULL;
	char err[320], *name;
	int r;

	if (!n)
		die("out of memory");
	if (c->kind == NET_TAP) {
		r = tap_open(&be, c->tap_name, c->mtu, err, sizeof(err));
	} else if (c->kind == NET_TAP_FD) {
		r = tap_open_fd(&be, c->tap_fd, c->mtu, err, sizeof(err));
	} else {
		struct slirp_backend_opts o = {
			.mtu = c->mtu,
			.nhostfwd = c->nhostfwd,
			.hostfwd = c->hostfwd,
		};
		r = slirp_backend_open(&be, &o, vm->loop, err, sizeof(err));
	}
	if (r == -ENOMEM || r == -EMFILE || r == -ENFILE)
		die("--net: %s", err);
	if (r) {
		free(n);
		die_usage("--net: %s", err);
	}
	name = malloc(32);
	if (!name)
		die("out of memory");
	snprintf(name, 32, "virtio-net%u", i);
	r = virtio_net_init(n, &vm->mem, name, be, c->mac, c->mtu, vm->loop);
	if (r)
		die("%s: cannot watch its backend on the event loop: %s", name, strerror(-r));
	log_debug("%s: %s, MAC %02x:%02x:%02x:%02x:%02x:%02x%s%s", name, be->name, c->mac[0],
		  c->mac[1], c->mac[2], c->mac[3], c->mac[4], c->mac[5],
		  c->mac_given ? "" : " (random)", be->features ? ", offloads" : "");
	n->keep_mac = vm->cfg.clone;
	vm->net[i] = n;
	attach(vm, &n->dev);
}

static void add_vsock(struct vm *vm)
{
	const struct vsock_config *c = &vm->cfg.vsock;
	const char *why;
	int r;

	vm->vsock = calloc(1, sizeof(*vm->vsock));
	if (!vm->vsock)
		die("out of memory");
	r = virtio_vsock_init(vm->vsock, &vm->mem, vm->loop, c->cid, c->path, &why);
	if (r == -ENOMEM || r == -EMFILE || r == -ENFILE)
		die("--vsock: %s: %s", why, strerror(-r));
	if (r)
		die_usage("--vsock: uds='%s' %s: %s", c->path, why, strerror(-r));
	log_debug("virtio-vsock: guest CID %llu, host socket %s", (unsigned long long)c->cid,
		  c->path);
	attach(vm, &vm->vsock->dev);
}

void virtio_setup(struct vm *vm)
{
	for (unsigned int i = 0; i < vm->cfg.ndisks; i++)
		add_disk(vm, i);
	if (vm->cfg.rng) {
		vm->rng = calloc(1, sizeof(*vm->rng));
		if (!vm->rng)
			die("out of memory");
		virtio_rng_init(vm->rng, &vm->mem);
		attach(vm, &vm->rng->dev);
	}
	for (unsigned int i = 0; i < vm->cfg.nnets; i++)
		add_net(vm, i);
	if (vm->cfg.vsock.enabled)
		add_vsock(vm);
}

bool virtio_setup_uses_pci(const struct vmm_config *c)
{
	return c->transport == TRANSPORT_PCI &&
	       (c->ndisks || c->nnets || c->rng || c->vsock.enabled);
}

void virtio_setup_dsdt(struct aml *a, void *opaque)
{
	struct vm *vm = opaque;

	/* The bus still answers on 0xcf8/0xcfc (a snapshot of a VM that scanned it restores). */
	if (virtio_setup_uses_pci(&vm->cfg))
		pci_dsdt(a, &vm->pci);
	vmgenid_dsdt(a, &vm->vmgenid);
	ged_dsdt(a, &vm->ged);
	/* Announced on the command line instead: a second announcement would clash (EBUSY). */
	if (vm->cfg.mmio_cmdline)
		return;
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
