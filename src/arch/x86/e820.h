/* The guest's physical memory map as the e820 table Linux and PVH guests read. */
#ifndef TERN_ARCH_X86_E820_H
#define TERN_ARCH_X86_E820_H

#include <stdint.h>

#include "kvm/guest_mem.h"

#define E820_RAM 1
#define E820_RESERVED 2
#define E820_MAX 8

struct e820_entry {
	uint64_t addr;
	uint64_t size;
	uint32_t type;
} __attribute__((packed));

/* Fills out[] (E820_MAX entries) for the given RAM layout; returns the count. */
unsigned int e820_build(const struct guest_mem *m, struct e820_entry *out);

#endif
