/*
 * Boot-time guest state: the Linux zero page or PVH start_info, the command line,
 * GDT, identity page tables and the entry registers (Linux boot protocol 64-bit and
 * 32-bit entries; PVH: 32-bit protected mode, paging off, EBX = start_info).
 */
#include "arch/x86/bootparams.h"
#include "core/le.h"
#include "arch/x86/e820.h"
#include "arch/x86/layout.h"
#include "core/util.h"

#include <errno.h>
#include <string.h>

#define PVH_MAGIC 0x336ec578
#define BOOT_PARAMS_SIZE 4096

/* GDT selectors tern's boot GDT provides. */
#define SEL_CODE32 0x08
#define SEL_CODE64 0x10 /* __BOOT_CS */
#define SEL_DATA 0x18
#define SEL_TSS 0x20

struct hvm_start_info {
	uint32_t magic;
	uint32_t version;
	uint32_t flags;
	uint32_t nr_modules;
	uint64_t modlist_paddr;
	uint64_t cmdline_paddr;
	uint64_t rsdp_paddr;
	uint64_t memmap_paddr;
	uint32_t memmap_entries;
	uint32_t reserved;
};

struct hvm_modlist_entry {
	uint64_t paddr;
	uint64_t size;
	uint64_t cmdline_paddr;
	uint64_t reserved;
};

struct hvm_memmap_entry {
	uint64_t addr;
	uint64_t size;
	uint32_t type;
	uint32_t reserved;
};

int boot_place_initrd(const struct guest_mem *m, const struct boot_image *img, uint64_t size,
		      uint64_t *gpa)
{
	/* Without a header to say otherwise, stay below 2 GiB like other loaders do. */
	uint64_t max = 0x7fffffffULL + 1;

	if (img->kind == BOOT_BZIMAGE && img->initrd_addr_max)
		max = (uint64_t)img->initrd_addr_max + 1;
	if (max > m->low_size)
		max = m->low_size;
	if (size > max)
		return -ENOSPC;
	uint64_t at = align_down(max - size, 4096);
	if (at < img->end || at < LAYOUT_HIMEM)
		return -ENOSPC;
	*gpa = at;
	return 0;
}

#define DESC_CODE32 0x00cf9b000000ffffULL /* base 0, limit 4G, G, D, present, DPL0, exec/read */
#define DESC_CODE64 0x00af9b000000ffffULL /* the same with L=1 */

/*
 * GDT: null, flat 32-bit code, __BOOT_CS (0x10), flat data (__BOOT_DS, 0x18), a
 * minimal TSS. The Linux boot protocol wants CS = 0x10 for both of its entries, as
 * 64-bit code for the 64-bit entry and as 32-bit code for the 32-bit one.
 */
static void write_gdt(uint8_t *gdt, enum boot_entry entry)
{
	const uint64_t entries[] = {
		0,
		DESC_CODE32,
		entry == BOOT_ENTRY_LINUX32 ? DESC_CODE32 : DESC_CODE64,
		0x00cf93000000ffffULL, /* data: read/write, accessed */
		0x00008b0000000067ULL, /* TSS: busy, limit 0x67, base 0 */
	};

	memcpy(gdt, entries, sizeof(entries));
}

static void write_page_tables(const struct guest_mem *m)
{
	uint64_t *pml4 = guest_mem_ptr(m, LAYOUT_PML4, 4096);
	uint64_t *pdpt = guest_mem_ptr(m, LAYOUT_PDPT, 4096);
	uint64_t *pd = guest_mem_ptr(m, LAYOUT_PD, 4 * 4096);

	memset(pml4, 0, 4096);
	memset(pdpt, 0, 4096);
	pml4[0] = LAYOUT_PDPT | 0x3; /* present, writable */
	for (int i = 0; i < 4; i++)
		pdpt[i] = (LAYOUT_PD + (uint64_t)i * 4096) | 0x3;
	/* 4 GiB identity map in 2 MiB pages: covers any kernel, initrd and the boot structures. */
	for (uint64_t i = 0; i < 4 * 512; i++)
		pd[i] = (i << 21) | 0x83; /* present, writable, PS */
}

static int write_zero_page(const struct guest_mem *m, const struct boot_setup *b)
{
	uint8_t *bp = guest_mem_ptr(m, LAYOUT_ZERO_PAGE, BOOT_PARAMS_SIZE);
	struct e820_entry e820[E820_MAX];
	unsigned int n = e820_build(m, e820);

	memset(bp, 0, BOOT_PARAMS_SIZE);
	if (b->img->kind == BOOT_BZIMAGE) {
		memcpy(bp + BOOT_SETUP_HDR_OFF, b->file + BOOT_SETUP_HDR_OFF,
		       b->img->setup_hdr_len);
	} else {
		/* A vmlinux has no setup header: write the fields a bootloader would. */
		bp[0x1fe] = 0x55;
		bp[0x1ff] = 0xaa;
		memcpy(bp + 0x202, "HdrS", 4);
		bp[0x206] = 0x0f; /* protocol 2.15 */
		bp[0x207] = 0x02;
		le_put32(bp + 0x230, 0x1000000);			/* kernel_alignment */
		le_put32(bp + 0x238, (uint32_t)LAYOUT_CMDLINE_MAX - 1); /* cmdline_size */
	}
	bp[BP_HDR_TYPE_OF_LOADER] = 0xff; /* "undefined" boot loader */
	bp[BP_HDR_LOADFLAGS] |= 0x01;	  /* LOADED_HIGH */
	le_put32(bp + BP_HDR_CMD_LINE_PTR, (uint32_t)LAYOUT_CMDLINE);
	le_put32(bp + BP_HDR_RAMDISK_IMAGE, (uint32_t)b->initrd_gpa);
	le_put32(bp + BP_HDR_RAMDISK_SIZE, (uint32_t)b->initrd_size);
	le_put64(bp + BP_ACPI_RSDP, b->rsdp_gpa);
	bp[BP_E820_ENTRIES] = (uint8_t)n;
	memcpy(bp + BP_E820_TABLE, e820, n * sizeof(e820[0]));
	return 0;
}

static int write_pvh_start_info(const struct guest_mem *m, const struct boot_setup *b)
{
	struct e820_entry e820[E820_MAX];
	unsigned int n = e820_build(m, e820);
	uint64_t mod_gpa = LAYOUT_PVH_START_INFO + 0x100;
	uint64_t map_gpa = LAYOUT_PVH_START_INFO + 0x200;
	struct hvm_start_info si = {
		.magic = PVH_MAGIC,
		.version = 1,
		.cmdline_paddr = LAYOUT_CMDLINE,
		.rsdp_paddr = b->rsdp_gpa,
		.memmap_paddr = map_gpa,
		.memmap_entries = n,
	};

	if (b->initrd_size) {
		struct hvm_modlist_entry mod = { .paddr = b->initrd_gpa, .size = b->initrd_size };
		si.nr_modules = 1;
		si.modlist_paddr = mod_gpa;
		if (guest_mem_write(m, mod_gpa, &mod, sizeof(mod)))
			return -EFAULT;
	}
	for (unsigned int i = 0; i < n; i++) {
		struct hvm_memmap_entry e = { e820[i].addr, e820[i].size, e820[i].type, 0 };
		if (guest_mem_write(m, map_gpa + i * sizeof(e), &e, sizeof(e)))
			return -EFAULT;
	}
	return guest_mem_write(m, LAYOUT_PVH_START_INFO, &si, sizeof(si));
}

int boot_write_params(const struct guest_mem *m, const struct boot_setup *b)
{
	size_t len = strlen(b->cmdline);
	uint64_t limit = LAYOUT_CMDLINE_MAX;

	if (b->img->kind == BOOT_BZIMAGE && b->img->cmdline_size < limit - 1)
		limit = (uint64_t)b->img->cmdline_size + 1;
	if (len + 1 > limit)
		return -E2BIG;
	if (m->low_size < LAYOUT_HIMEM || guest_mem_write(m, LAYOUT_CMDLINE, b->cmdline, len + 1))
		return -EFAULT;
	write_gdt(guest_mem_ptr(m, LAYOUT_GDT, 40), b->entry);
	memset(guest_mem_ptr(m, LAYOUT_IDT, 8), 0, 8);
	write_page_tables(m);
	if (b->entry == BOOT_ENTRY_PVH)
		return write_pvh_start_info(m, b);
	return write_zero_page(m, b);
}

static void seg(struct kvm_segment *s, uint16_t sel, uint8_t type, int code64, int db)
{
	*s = (struct kvm_segment){
		.base = 0,
		.limit = 0xffffffff,
		.selector = sel,
		.type = type,
		.present = 1,
		.dpl = 0,
		.db = (uint8_t)db,
		.s = 1,
		.l = (uint8_t)code64,
		.g = 1,
	};
}

void boot_cpu_state(const struct boot_setup *b, struct kvm_regs *regs, struct kvm_sregs *sregs)
{
	int long_mode = b->entry == BOOT_ENTRY_LINUX64;

	memset(regs, 0, sizeof(*regs));
	regs->rflags = 0x2;
	regs->rsp = LAYOUT_BOOT_STACK;
	switch (b->entry) {
	case BOOT_ENTRY_LINUX64:
		regs->rip = b->img->entry64;
		regs->rsi = LAYOUT_ZERO_PAGE;
		break;
	case BOOT_ENTRY_LINUX32:
		regs->rip = b->img->entry32;
		regs->rsi = LAYOUT_ZERO_PAGE;
		break;
	case BOOT_ENTRY_PVH:
		regs->rip = b->img->pvh_entry;
		regs->rbx = LAYOUT_PVH_START_INFO;
		break;
	}

	if (long_mode)
		seg(&sregs->cs, SEL_CODE64, 0xb, 1, 0);
	else if (b->entry == BOOT_ENTRY_LINUX32)
		seg(&sregs->cs, SEL_CODE64, 0xb, 0, 1); /* __BOOT_CS, 32-bit in this GDT */
	else
		seg(&sregs->cs, SEL_CODE32, 0xb, 0, 1);
	seg(&sregs->ds, SEL_DATA, 0x3, 0, 1);
	sregs->es = sregs->fs = sregs->gs = sregs->ss = sregs->ds;
	sregs->tr = (struct kvm_segment){
		.base = 0, .limit = 0x67, .selector = SEL_TSS, .type = 0xb, .present = 1
	};
	sregs->ldt = (struct kvm_segment){
		.selector = 0, .type = 0x2, .present = 1, .limit = 0xffff, .unusable = 1
	};
	sregs->gdt.base = LAYOUT_GDT;
	sregs->gdt.limit = 40 - 1;
	sregs->idt.base = LAYOUT_IDT;
	sregs->idt.limit = 0;
	sregs->cr0 = 0x11; /* PE | ET */
	sregs->cr4 = 0;
	sregs->efer = 0;
	if (long_mode) {
		sregs->cr0 |= 0x80000000; /* PG */
		sregs->cr3 = LAYOUT_PML4;
		sregs->cr4 |= 0x20;   /* PAE */
		sregs->efer |= 0x500; /* LME | LMA */
	}
}
