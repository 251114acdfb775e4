/* The VM's virtio devices: creation from the configuration and attachment to a transport. */
#ifndef TERN_VMM_VIRTIO_SETUP_H
#define TERN_VMM_VIRTIO_SETUP_H

#include <stddef.h>

struct vm;
struct aml;

/* Creates every configured virtio device; bad user input exits with status 2. */
void virtio_setup(struct vm *vm);
/* DSDT devices for the virtio transports (acpi_config.dsdt_devices). */
void virtio_setup_dsdt(struct aml *a, void *vm);
/* Appends " virtio_mmio.device=..." words for --virtio-mmio-cmdline into buf. */
void virtio_setup_cmdline(const struct vm *vm, char *buf, size_t len);

#endif
