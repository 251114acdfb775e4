/*
 * The kernel and initrd a VM boots, read and checked before anything is built, so bad
 * input is refused with a message (exit 2 on the command line, a 400 through the API)
 * while nothing is running yet.
 */
#ifndef TERN_VMM_BOOT_INPUTS_H
#define TERN_VMM_BOOT_INPUTS_H

#include <stddef.h>
#include <stdint.h>

#include "arch/x86/boot.h"
#include "vmm/config.h"

struct boot_inputs {
	uint8_t *kernel;
	size_t kernel_len;
	struct boot_image img;
	enum boot_entry entry;
	uint8_t *initrd;
	size_t initrd_len;
	uint64_t initrd_gpa;
};

/* How messages name the inputs: the command line's options or the API's fields. */
struct boot_input_names {
	const char *kernel, *initrd, *memory, *entry;
};
extern const struct boot_input_names boot_names_cli, boot_names_api;

/* Reads and checks cfg's kernel and initrd. 0, or -EINVAL with err. */
int boot_inputs_load(const struct vmm_config *cfg, const struct boot_input_names *names,
		     struct boot_inputs *in, char *err, size_t errlen);
void boot_inputs_free(struct boot_inputs *in);

#endif
