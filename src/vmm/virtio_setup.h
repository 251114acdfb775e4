/* The VM's virtio devices: creation from the configuration and attachment to a transport. */
#ifndef TERN_VMM_VIRTIO_SETUP_H
#define TERN_VMM_VIRTIO_SETUP_H

#include <stdbool.h>
#include <stddef.h>

#include "backend/disk.h"

struct vm;
struct vmm_config;
struct disk_config;
struct aml;

/* How drive c opens its image (at boot, and again when it moves: disk_swap.c). */
struct disk_open_args virtio_setup_disk_args(const struct vm *vm, const struct disk_config *c);
/* Creates every configured virtio device; bad user input exits with status 2. */
void virtio_setup(struct vm *vm);
/*
 * Does the VM put any device on its PCI bus (virtio-pci with at least one device)? Without
 * one, the DSDT has no PCI host bridge, and the kernel's acpi_init scans no bus (about
 * 60-80 ms of a lab boot). The guest's command line is left as it was given.
 */
bool virtio_setup_uses_pci(const struct vmm_config *c);
/* DSDT devices for the virtio transports (acpi_config.dsdt_devices). */
void virtio_setup_dsdt(struct aml *a, void *vm);
/* Appends " virtio_mmio.device=..." words for --virtio-mmio-cmdline into buf. */
void virtio_setup_cmdline(const struct vm *vm, char *buf, size_t len);

#endif
