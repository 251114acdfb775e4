/*
 * The runtime's GDT (layout in segments.h) and the TSS. CS is not reloaded: the
 * kernel selectors match tern's boot GDT.
 */
#include "tiny.h"

struct tss {
	uint32_t reserved0;
	uint64_t rsp[3];
	uint64_t reserved1;
	uint64_t ist[7];
	uint64_t reserved2;
	uint16_t reserved3;
	uint16_t iomap_base;
} __attribute__((packed));

static uint64_t gdt[] __attribute__((aligned(16))) = {
	[0] = 0,
	[SEL_KCODE32 / 8] = 0x00cf9b000000ffff,
	[SEL_KCODE / 8] = 0x00af9b000000ffff,
	[SEL_KDATA / 8] = 0x00cf93000000ffff,
	[SEL_UCODE32 / 8] = 0x00cffb000000ffff,
	[SEL_UDATA / 8] = 0x00cff3000000ffff,
	[SEL_UCODE / 8] = 0x00affb000000ffff,
	[SEL_TSS / 8] = 0, /* two slots, filled by tiny_tss_init */
	[SEL_TSS / 8 + 1] = 0,
};

static struct tss tss __attribute__((aligned(16)));

struct dtr {
	uint16_t limit;
	uint64_t base;
} __attribute__((packed));

void tiny_idt_load(void);

void tiny_cpu_init(void)
{
	struct dtr d = { sizeof(gdt) - 1, (uint64_t)gdt };

	asm volatile("lgdt %0" : : "m"(d));
	asm volatile("mov %0, %%ds; mov %0, %%es; mov %0, %%ss" : : "r"(SEL_KDATA));
	tiny_idt_load();
}

void tiny_tss_init(uint64_t rsp0)
{
	uint64_t base = (uint64_t)&tss;

	tss.rsp[0] = rsp0;
	tss.iomap_base = sizeof(tss); /* no I/O bitmap: ring 3 port I/O faults */
	gdt[SEL_TSS / 8] = (sizeof(tss) - 1) | (base & 0xffffff) << 16 | 0x89UL << 40 |
			   (base >> 24 & 0xff) << 56;
	gdt[SEL_TSS / 8 + 1] = base >> 32;
	asm volatile("ltr %w0" : : "r"(SEL_TSS));
}
